#!/usr/bin/env bash
# expt against a real MLflow server (tests/mlflow/up, the "mlflow" ctest fixture; or one this
# script starts when EXPT_MLFLOW_DIR is unset): a script that only calls mlflow.log_* writes
# into the run `expt run` created, which ends FINISHED or FAILED from the real exit; the sink's
# points arrive exactly once, across a server stopped and started again mid-run; show reads the
# server back; sync pushes runs recorded only in the store, once. Exit 77: no MLflow to be had.
# EXPT_MLFLOW_PARTS (default: all) picks the parts by name: interop sink sync restart auth;
# EXPT_MLFLOW_DB (sqlite, postgres) is the store the server must have. The PostgreSQL-backed
# fixture (mlflow-pg) runs the first three parts against its server.
. "$(dirname "$0")/../cli/lib.sh"

# The servers this script starts itself are stopped however it ends.
cleanup() {
	local d
	for d in "$T/mlflow-fixture" "$T/restart" "$T/auth"; do
		[ -d "$d/run" ] && "$SRC/tests/mlflow/down" --dir "$d" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
if [ -z "${EXPT_MLFLOW_DIR:-}" ] || [ ! -f "$EXPT_MLFLOW_DIR/env" ]; then
	EXPT_MLFLOW_DIR="$T/mlflow-fixture"
	"$SRC/tests/mlflow/up" --dir "$EXPT_MLFLOW_DIR" --db "${EXPT_MLFLOW_DB:-sqlite}" >/dev/null
	rc=$?
	[ "$rc" = 77 ] && { echo "skipped: no MLflow server"; exit 77; }
	[ "$rc" = 0 ] || { echo "not ok - tests/mlflow/up failed ($rc)"; exit 1; }
fi
. "$EXPT_MLFLOW_DIR/env"
if [ "${EXPT_TEST_MLFLOW_DB:-sqlite}" != "${EXPT_MLFLOW_DB:-sqlite}" ]; then
	echo "not ok - the server in $EXPT_MLFLOW_DIR has a ${EXPT_TEST_MLFLOW_DB:-sqlite} store, not ${EXPT_MLFLOW_DB}"
	exit 1
fi
PY=$EXPT_TEST_MLFLOW_PYTHON
URI=$EXPT_TEST_MLFLOW_URI

# api URI METHOD PATH [BODY]: the server's JSON answer.
api() {
	if [ "$2" = GET ]; then curl -sf "$1/api/2.0/mlflow/$3"
	else curl -sf -X POST -H 'Content-Type: application/json' -d "$4" "$1/api/2.0/mlflow/$3"; fi
}
# mlflow_id RUN: the MLflow run expt linked to RUN (its store tag).
mlflow_id() { "$EXPT" show "$1" -o json | json 'd["tags"]["mlflow.run_id"]'; }
# run_info URI MLFLOW_RUN EXPR: EXPR over the server's run `r` ({"info","data"}).
run_info() { api "$1" GET "runs/get?run_id=$2" | json "(lambda r: $3)(d['run'])"; }
# history URI MLFLOW_RUN KEY: the steps of the points of KEY, as "points=N steps=S0..S1" when
# they are exactly S0..S1, each once (else the sorted list, shortened).
history() {
	api "$1" GET "metrics/get-history?run_id=$2&metric_key=$3&max_results=100000" |
		json "(lambda s: f'points={len(s)} steps={s[0]}..{s[-1]}' if s and s == list(range(s[0], s[0] + len(s))) else f'points={len(s)} steps={s[:20]}...')(sorted(int(m.get('step', 0)) for m in d.get('metrics', [])))"
}
# exp_runs URI NAME: how many runs the experiment NAME has on the server.
exp_runs() {
	local id
	id=$(api "$1" GET "experiments/get-by-name?experiment_name=$2" | json 'd["experiment"]["experiment_id"]') || { echo 0; return; }
	api "$1" POST runs/search "{\"experiment_ids\":[\"$id\"],\"max_results\":1000}" | json 'len(d.get("runs", []))'
}
seq_csv() { echo "points=$(($2 - $1 + 1)) steps=$1..$2"; }
# part NAME: whether this run includes the part NAME.
part() { case " ${EXPT_MLFLOW_PARTS:-interop sink sync restart auth} " in *" $1 "*) return 0 ;; esac; return 1; }
echo "# MLflow server: ${EXPT_TEST_MLFLOW_DB:-sqlite} store, parts: ${EXPT_MLFLOW_PARTS:-all}"

# Experiment names of their own: the fixture's server outlives this script.
X=$(printf '%04x%04x' $RANDOM $RANDOM)
git init -q . && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m init

# --- 1. An unmodified MLflow script under expt run -------------------------------------------
if part interop; then
cat > train.py <<'PY'
import sys, mlflow
mlflow.log_param("alpha", "0.5")
for i in range(5):
    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
mlflow.set_tag("phase", "train")
if "fail" in sys.argv:
    raise SystemExit(3)
PY
cat > expt.yaml <<YAML
name: interop-$X
command: $PY train.py
args: auto
sweep: {mode: [ok, fail]}
tracking: {uri: "$URI"}
YAML
expect_code "a sweep of two runs, the second fails" 1 "$EXPT" run
m1=$(mlflow_id interop-$X-1)
m2=$(mlflow_id interop-$X-2)
[ -n "$m1" ] && pass "interop-1 is linked to an MLflow run" || fail "interop-1 is linked to an MLflow run"
[ -n "$m1" ] && [ -n "$m2" ] && [ "$m1" != "$m2" ] && pass "each run has its own MLflow run" || fail "each run has its own MLflow run" "$m1 / $m2"
equals "the script's points landed in the run expt created" "$(history "$URI" "$m1" loss)" "$(seq_csv 0 4)"
equals "its param too" "$(run_info "$URI" "$m1" "[p['value'] for p in r['data']['params'] if p['key']=='alpha'][0]")" "0.5"
equals "and expt's params (the sweep's)" "$(run_info "$URI" "$m1" "[p['value'] for p in r['data']['params'] if p['key']=='mode'][0]")" "ok"
equals "tagged with the expt run id" "$(run_info "$URI" "$m1" "[t['value'] for t in r['data']['tags'] if t['key']=='expt.run_id'][0]")" "interop-$X-1"
equals "and mlflow.runName" "$(run_info "$URI" "$m1" "r['info']['run_name']")" "interop-$X-1"
equals "and the git commit" "$(run_info "$URI" "$m1" "[t['value'] for t in r['data']['tags'] if t['key']=='mlflow.source.git.commit'][0]")" "$(git rev-parse HEAD)"
equals "the run that exited 0 is FINISHED" "$(run_info "$URI" "$m1" "r['info']['status']")" "FINISHED"
equals "the run that exited 3 is FAILED" "$(run_info "$URI" "$m2" "r['info']['status']")" "FAILED"
equals "it has an end time" "$(run_info "$URI" "$m2" "int(r['info'].get('end_time', 0)) > 0")" "True"
equals "no other run was made (the scripts attached)" "$(exp_runs "$URI" "interop-$X")" "2"
expect_code "show" 0 "$EXPT" show interop-$X-1
contains "show gives the MLflow URL" "$out" "$URI/#/experiments/"
contains "show lists what the script logged to MLflow" "$out" "alpha"
expect_code "compare" 0 "$EXPT" compare "interop-$X" -o json
equals "compare reads the script's metric from MLflow" "$(echo "$out" | json "[r['metrics']['loss']['last'] for r in d['runs']] if isinstance(d, dict) else [r['metrics']['loss']['last'] for r in d]")" "[0.2, 0.2]"
equals "and its param" "$(echo "$out" | json "[r['params']['alpha'] for r in (d['runs'] if isinstance(d, dict) else d)]")" "['0.5', '0.5']"
expect_code "ps -o wide" 0 "$EXPT" ps -o wide
contains "has the MLflow columns" "$out" "MLFLOW STATUS"
equals "the MLflow run and its status on the server" \
	"$(echo "$out" | awk -v r="interop-$X-1" '$1 == r {print $(NF-1), $NF}')/$(echo "$out" | awk -v r="interop-$X-2" '$1 == r {print $(NF-1), $NF}')" \
	"$m1 FINISHED/$m2 FAILED"
contains "and what the script logged to MLflow (only there) in PARAMS and METRICS" \
	"$(echo "$out" | awk -v r="interop-$X-1" '$1 == r')" "alpha=0.5"
contains "its latest metric too" "$(echo "$out" | awk -v r="interop-$X-1" '$1 == r')" "loss=0.2"
fi

# --- 2. The sink: expt's own logging API, many points, exactly once ---------------------------
if part sink; then
cat > sink.py <<'PY'
import os, expt
expt.param(lr=0.01)
for i in range(3000):
    expt.log({"loss": 1.0 / (i + 1), "odd key:x": i}, step=i)
open("model.txt", "w").write("weights v1\n")
os.makedirs("ckpt/sub", exist_ok=True)
open("ckpt/sub/state.bin", "wb").write(bytes(range(256)) * 64)
expt.artifact("model.txt")
expt.artifact("ckpt", name="checkpoints/ckpt")
PY
cat > expt.yaml <<YAML
name: sink-$X
command: python3 sink.py
env: $(binding_env)
tracking: {uri: "$URI", sinks: [store, mlflow]}
YAML
expect_code "a run logging 6000 points through the sink" 0 "$EXPT" run
m=$(mlflow_id sink-$X-1)
equals "every loss point arrived once" "$(history "$URI" "$m" loss)" "$(seq_csv 0 2999)"
equals "a key MLflow refuses is renamed, not lost" "$(history "$URI" "$m" "odd%20key_x")" "$(seq_csv 0 2999)"
equals "the param" "$(run_info "$URI" "$m" "[p['value'] for p in r['data']['params'] if p['key']=='lr'][0]")" "0.01"
equals "FINISHED" "$(run_info "$URI" "$m" "r['info']['status']")" "FINISHED"
# The mlflow client reads back the artifacts the sink put through the server's artifact proxy.
got=$("$PY" - "$URI" "$m" <<'PY' 2>&1
import hashlib, sys, mlflow
uri, run = sys.argv[1], sys.argv[2]
c = mlflow.tracking.MlflowClient(uri)
print(sorted(a.path for a in c.list_artifacts(run)), sorted(a.path for a in c.list_artifacts(run, "checkpoints/ckpt/sub")))
m = mlflow.artifacts.download_artifacts(run_id=run, artifact_path="model.txt", tracking_uri=uri)
b = mlflow.artifacts.download_artifacts(run_id=run, artifact_path="checkpoints/ckpt/sub/state.bin", tracking_uri=uri)
print(open(m).read().strip(), hashlib.sha256(open(b, "rb").read()).hexdigest())
PY
)
equals "the artifacts, as the mlflow client lists and reads them" "$got" "['checkpoints', 'model.txt'] ['checkpoints/ckpt/sub/state.bin']
weights v1 $(python3 -c 'import hashlib; print(hashlib.sha256(bytes(range(256)) * 64).hexdigest())')"
expect_code "artifacts ls" 0 "$EXPT" artifacts ls "sink-$X-1"
contains "lists the file, here and on the server" "$out" "checkpoints/ckpt/sub/state.bin"
contains "with where it is" "$out" "local, mlflow"
rm -rf ".expt/runs/sink-$X-1/output/artifacts"
expect_code "artifacts get, once the local copy is gone" 0 "$EXPT" artifacts get "sink-$X-1" checkpoints/ckpt/sub/state.bin "$T/state.bin"
equals "comes from the server, byte for byte" "$(sha256sum < "$T/state.bin" | cut -d' ' -f1)" "$(python3 -c 'import hashlib; print(hashlib.sha256(bytes(range(256)) * 64).hexdigest())')"
expect_code "a file nobody has" 3 "$EXPT" artifacts get "sink-$X-1" nope.txt "$T/nope"
contains "says so" "$out" "has no artifact 'nope.txt'"
fi

# --- 3. expt sync: runs recorded only in the store, pushed once ------------------------------
if part sync; then
cat > offline.sh <<'SH'
for i in $(seq 0 1499); do echo "expt: loss=$i acc=0.5 step=$i"; done
[ "$2" = fail ] && exit 2 || exit 0
SH
cat > expt.yaml <<YAML
name: offline-$X
command: sh offline.sh
args: auto
sweep: {mode: [ok, fail]}
YAML
expect_code "two runs with no MLflow at all" 1 "$EXPT" run
expect_code "sync pushes them" 0 "$EXPT" sync "offline-$X" --uri "$URI"
contains "sync says how many" "$out" "pushed 2 runs (6000 metric points)"
equals "two runs on the server" "$(exp_runs "$URI" "offline-$X")" "2"
o1=$(mlflow_id "offline-$X-1")
o2=$(mlflow_id "offline-$X-2")
equals "every point of the first" "$(history "$URI" "$o1" loss)" "$(seq_csv 0 1499)"
equals "and of the second" "$(history "$URI" "$o2" acc)" "$(seq_csv 0 1499)"
equals "statuses from the store" "$(run_info "$URI" "$o1" "r['info']['status']")/$(run_info "$URI" "$o2" "r['info']['status']")" "FINISHED/FAILED"
equals "the sweep's param" "$(run_info "$URI" "$o2" "[p['value'] for p in r['data']['params'] if p['key']=='mode'][0]")" "fail"
expect_code "a second sync" 0 "$EXPT" sync --uri "$URI"
contains "adds nothing" "$out" "pushed 0 runs (0 metric points)"
equals "still two runs" "$(exp_runs "$URI" "offline-$X")" "2"
if [ "${EXPT_TEST_MLFLOW_DB:-sqlite}" = postgres ]; then
	# Counted in the PostgreSQL store itself: the server keeps its runs there, once each.
	equals "two rows in PostgreSQL's runs table" "$(/usr/lib/postgresql/15/bin/psql "${EXPT_TEST_MLFLOW_DB_URI/+psycopg2/}" -tAc \
		"SELECT count(*) FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id WHERE e.name = 'offline-$X'" 2>&1)" "2"
fi
equals "still each point once" "$(history "$URI" "$o1" loss)" "$(seq_csv 0 1499)"
# A store that lost its links (the answer of a first sync never recorded): the server's
# expt.run_key finds the runs again; nothing is made twice.
sqlite3 .expt/expt.db "DELETE FROM tags WHERE key LIKE 'mlflow.%' AND run IN (SELECT id FROM runs WHERE run_id LIKE 'offline-%')"
expect_code "sync with the links gone" 0 "$EXPT" sync "offline-$X" --uri "$URI"
equals "finds the same two runs" "$(exp_runs "$URI" "offline-$X")" "2"
equals "and adds no point" "$(history "$URI" "$o1" loss)" "$(seq_csv 0 1499)"
expect_code "sync without a server" 2 env -u MLFLOW_TRACKING_URI "$EXPT" sync
contains "says what to give" "$out" "--uri"
fi

# --- 4. The server stops mid-run and comes back on the same port ------------------------------
if part restart; then
R="$T/restart"
"$SRC/tests/mlflow/up" --dir "$R" >/dev/null || { fail "a second server for the restart test"; finish; exit; }
. "$R/env"
RURI=$EXPT_TEST_MLFLOW_URI
RPORT=$EXPT_TEST_MLFLOW_PORT
. "$EXPT_MLFLOW_DIR/env"
cat > restart.py <<'PY'
import os, time, expt
def wait(name):
    while not os.path.exists(name):
        time.sleep(0.05)
def delivered():
    for _ in range(600):           # flush() answers False at once while the sink fails
        if expt.flush(1):
            return
        time.sleep(0.2)
    raise SystemExit("not delivered")
for i in range(100):
    expt.log(x=i, step=i)
delivered()
open("phase1", "w").close(); wait("server-down")
for i in range(100, 300):          # logged while the server is down: queued, retried
    expt.log(x=i, step=i)
open("phase2", "w").close(); wait("server-up")
delivered()                        # the sink retries with backoff until the server is back
for i in range(300, 400):
    expt.log(x=i, step=i)
PY
cat > expt.yaml <<YAML
name: restart-$X
command: python3 restart.py
env: $(binding_env)
workdir: project
tracking: {uri: "$RURI"}
YAML
rm -f phase1 phase2 server-down server-up
"$EXPT" run -d >/dev/null 2>&1
for _ in $(seq 600); do [ -e phase1 ] && break; sleep 0.1; done
"$SRC/tests/mlflow/down" --dir "$R" 2>/dev/null
touch server-down
for _ in $(seq 600); do [ -e phase2 ] && break; sleep 0.1; done
sleep 1 # let the sink try (and fail) against the stopped server
"$SRC/tests/mlflow/up" --dir "$R" --port "$RPORT" >/dev/null || fail "the server starts again on port $RPORT"
touch server-up
wait_status restart-$X-1 succeeded 180
m=$(mlflow_id restart-$X-1)
equals "all 400 points arrived exactly once across the restart" "$(history "$RURI" "$m" x)" "$(seq_csv 0 399)"
equals "the run ended FINISHED" "$(run_info "$RURI" "$m" "r['info']['status']")" "FINISHED"
"$SRC/tests/mlflow/down" --dir "$R" 2>/dev/null
expect_code "ps -o wide with that server gone" 0 "$EXPT" ps -o wide
equals "the run's MLflow id, its status unknown" "$(echo "$out" | awk -v r="restart-$X-1" '$1 == r {print $(NF-1), $NF}')" "$m ?"
contains "and a warning that says why" "$out" "warning: MLflow status not read: MLflow server $RURI"
fi

# --- 5. A server that wants credentials ---------------------------------------------------
if part auth; then
A="$T/auth"
if "$SRC/tests/mlflow/up" --dir "$A" --auth >/dev/null; then
	. "$A/env"
	AURI=$EXPT_TEST_MLFLOW_URI AUSER=$EXPT_TEST_MLFLOW_USER APASS=$EXPT_TEST_MLFLOW_PASSWORD
	. "$EXPT_MLFLOW_DIR/env"
	cat > auth.py <<'PY'
import expt
for i in range(50):
    expt.log(x=i, step=i)
PY
	cat > expt.yaml <<YAML
name: auth-$X
command: python3 auth.py
env: $(binding_env)
tracking: {uri: "$AURI"}
YAML
	expect_code "without credentials the run still completes" 0 env -u MLFLOW_TRACKING_USERNAME -u MLFLOW_TRACKING_PASSWORD -u MLFLOW_TRACKING_TOKEN "$EXPT" run
	contains "with a clear error: the 401" "$out" "HTTP 401"
	contains "and what to set" "$out" "MLFLOW_TRACKING_USERNAME"
	equals "its points are in the store" "$("$EXPT" show "auth-$X-1" -o json | json "d['metrics']['x']['count']")" "50"
	expect_code "with credentials" 0 env MLFLOW_TRACKING_USERNAME="$AUSER" MLFLOW_TRACKING_PASSWORD="$APASS" "$EXPT" run
	not_contains "no error" "$out" "401"
	m=$(mlflow_id "auth-$X-2")
	equals "the points reached the server" "$(curl -sf -u "$AUSER:$APASS" "$AURI/api/2.0/mlflow/metrics/get-history?run_id=$m&metric_key=x" | json "len(d['metrics'])")" "50"
	"$SRC/tests/mlflow/down" --dir "$A" 2>/dev/null
else
	fail "a basic-auth server (tests/mlflow/up --auth)"
fi
fi

finish
