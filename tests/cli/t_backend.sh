#!/usr/bin/env bash
# What every backend must do, asked only through expt (EXPT_TEST_BACKEND picks the backend):
# a queued run that is stopped never starts; runs started with -d are seen by ps from another
# terminal; logs -f follows a run across a retry; the lifecycle leaves one end per run.
# (A run keeps what must outlive its attempt in the `state` output: a pod's output directory
# is its own.)
. "$(dirname "$0")/lib.sh"

cat > expt.yaml <<'YAML'
name: own
command: python3 job.py
args: auto
params: {n: 3, fail_first: 0, hold: 0}
parallel: 1
outputs: {state: ./state}
YAML
backend_spec expt.yaml
cat > job.py <<'PY'
import os, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
n, fail_first = int(args["--n"]), int(args["--fail_first"])
if int(args["--hold"]):  # until the test lets it go
    while not os.path.exists(os.path.join(os.environ["EXPT_OUTPUT_STATE"], "release")):
        time.sleep(0.05)
marker = os.path.join(os.environ["EXPT_OUTPUT_STATE"], os.environ["EXPT_RUN_ID"] + ".started")
first = not os.path.exists(marker)
open(marker, "a").write("x")
for i in range(n):
    print(f"tick {i}", flush=True)
    time.sleep(0.2)
if fail_first and first:
    print("failing the first attempt", file=sys.stderr, flush=True)
    sys.exit(3)
print("end", flush=True)
PY

# A queued run that is stopped never starts (parallel 1: own-2 waits behind own-1).
expect_code "two runs, one at a time, detached" 0 "$EXPT" run $RUN_BACKEND -d n=100,3
wait_status own-1 running
equals "the second waits" "$(status_of own-2)" "queued"
expect_code "stop the queued run" 0 "$EXPT" stop own-2
contains "stop says so" "$out" "own-2 stopped"
equals "it is stopped at once" "$(status_of own-2)" "stopped"
expect_code "stop the running one" 0 "$EXPT" stop own-1 --grace 1
wait_status own-1 stopped
sleep 1 # the supervisor would have started own-2 by now, were it going to
equals "the queued run stayed stopped" "$(status_of own-2)" "stopped"
if [ -e state/own-2.started ]; then fail "own-2 never started" "its process ran"; else pass "own-2 never started"; fi
if [ "$BACKEND" = local ]; then # the local backend opens an attempt's logs before it forks
	if [ -e .expt/runs/own-2/logs/stdout.log ]; then fail "no attempt of own-2 was made" "$(ls .expt/runs/own-2/logs)"; else pass "no attempt of own-2 was made"; fi
fi
expect_code "debug says why" 0 "$EXPT" debug own-2 -o json
equals "stopped before it started" "$(echo "$out" | json 'd["status"]')" "stopped"
equals "one end event" "$(echo "$out" | json 'len([e for e in d["events"] if e["kind"] in ("stopped","exit","signal","error")])')" "1"

# ps from a new terminal, after the launching one is gone: the detached runs are known.
expect_code "run -d" 0 setsid "$EXPT" run $RUN_BACKEND -d n=5 </dev/null
rid=$(echo "$out" | grep -o 'own-[0-9]*' | head -1)
wait_status "$rid" running
out=$(env -i PATH="$PATH" HOME="$HOME" ${KUBECONFIG:+KUBECONFIG="$KUBECONFIG"} bash -c "cd '$T' && '$EXPT' ps own -o json")
equals "a new shell sees it" "$(echo "$out" | json "[r['status'] for r in d if r['id']=='$rid'][0]")" "running"
equals "with its backend" "$(echo "$out" | json "[r['backend'] for r in d if r['id']=='$rid'][0]")" "$BACKEND"
if [ "$BACKEND" = kubernetes ]; then # the Job's name
	equals "and the engine's name for it" "$(echo "$out" | json "[r['backend_ref'] for r in d if r['id']=='$rid'][0]")" "$rid"
else
	contains "and the engine's name for it" "$(echo "$out" | json "[r['backend_ref'] for r in d if r['id']=='$rid'][0]")" ":"
fi
wait_status "$rid" succeeded

# run --attach: back to a run still going (held until the test lets it go), to its end.
expect_code "a held run, detached" 0 "$EXPT" run $RUN_BACKEND -d n=1 hold=1
rid=$(echo "$out" | grep -o 'own-[0-9]*' | head -1)
wait_status "$rid" running
"$EXPT" run --attach own >attach.out 2>&1 &
apid=$!
for _ in $(seq 300); do grep -q "attached to" attach.out 2>/dev/null && break; sleep 0.1; done
touch state/release
wait $apid
equals "run --attach follows it to its end" "$?" "0"
contains "and sums it up as a foreground run does" "$(cat attach.out)" "1 run: 1 succeeded, 0 failed"
equals "it ended" "$(status_of "$rid")" "succeeded"
rm -f state/release
expect_code "nothing left to attach to" 3 "$EXPT" run --attach own

# logs -f across a retry: both attempts' lines, then it ends by itself.
expect_code "a run that fails once, then succeeds" 0 "$EXPT" run $RUN_BACKEND -d n=2 fail_first=1 retries=1
rid=$(echo "$out" | grep -o 'own-[0-9]*' | head -1)
expect_code "logs -f follows until the last attempt ends" 0 timeout 60 "$EXPT" logs -f "$rid"
equals "both attempts' ticks" "$(echo "$out" | grep -c '^tick 0')" "2"
contains "the first attempt's failure" "$out" "failing the first attempt"
equals "the end, once" "$(echo "$out" | grep -c '^end$')" "1"
equals "succeeded on the retry" "$(status_of "$rid")" "succeeded"

# The supervisor dies, the run goes on: ps asks the engine and tells the truth; stop still works.
# (A quiet run: a local run that prints dies with its supervisor, the reader of its pipe. A
# timeout, so that -d has a supervisor on every backend: an engine that keeps runs going needs
# none for a run that starts at once and is never timed.)
if [ "$BACKEND" = kubernetes ]; then
	# Its -d leaves no supervisor to kill (tests/cluster/t_kube_detach.sh: what ps reads then).
	echo "# skipped on kubernetes: the supervisor that dies (there is none)"
else
mkdir -p quiet && printf 'name: quiet\ncommand: ["sleep", "60"]\nargs: none\n' > quiet/expt.yaml
expect_code "a long quiet run, detached" 0 "$EXPT" run $RUN_BACKEND -d -f quiet/expt.yaml timeout=1h
rid=$(echo "$out" | grep -o 'quiet-[0-9]*' | head -1)
wait_status "$rid" running
sup=$("$EXPT" ps quiet -o json | json "[r['supervisor_pid'] for r in d if r['id']=='$rid'][0]")
if [ "${sup:-0}" -gt 0 ] 2>/dev/null; then kill -9 "$sup"; else fail "a supervisor pid" "'$sup'"; fi
sleep 0.2
expect_code "ps after its supervisor died" 0 "$EXPT" ps quiet -o json
equals "still running, as the engine says" "$(echo "$out" | json "[r['status'] for r in d if r['id']=='$rid'][0]")" "running"
expect_code "debug shows the engine took it" 0 "$EXPT" debug "$rid" -o json
equals "an adopted event" "$(echo "$out" | json '[e["kind"] for e in d["events"]].count("adopted")')" "1"
expect_code "stop the orphan" 0 "$EXPT" stop "$rid" --grace 1
wait_status "$rid" stopped
expect_code "ps again" 0 "$EXPT" ps quiet -o json
equals "stays stopped" "$(echo "$out" | json "[r['status'] for r in d if r['id']=='$rid'][0]")" "stopped"
if pgrep -f "^sleep 60" >/dev/null; then fail "its process is gone" "$(pgrep -af '^sleep 60')"; else pass "its process is gone"; fi

# rm: gone from the store and the engine.
expect_code "rm" 0 "$EXPT" rm "$rid"
run_gone "$rid"
if [ -e ".expt/runs/$rid" ]; then fail "its files are gone" "$(ls .expt/runs)"; else pass "its files are gone"; fi
fi

# inputs and outputs where the run sees them: the same spec on every backend.
mkdir -p io/data && echo "hello data" > io/data/in.txt
cat > io/expt.yaml <<'YAML'
name: io
command: python3 io.py
args: "--src {inputs.data} --dst {outputs.model}"
inputs: {data: ./data}
outputs: {model: {to: ./model}}
YAML
backend_spec io/expt.yaml
cat > io/io.py <<'PY'
import os, sys
src, dst = sys.argv[2], sys.argv[4]
assert src == os.environ["EXPT_INPUT_DATA"], (src, os.environ["EXPT_INPUT_DATA"])
assert dst == os.environ["EXPT_OUTPUT_MODEL"], (dst, os.environ["EXPT_OUTPUT_MODEL"])
text = open(os.path.join(src, "in.txt")).read()
open(os.path.join(dst, "out.txt"), "w").write(text.upper())
print("copied", flush=True)
PY
expect_code "a run with inputs and outputs" 0 "$EXPT" run $RUN_BACKEND -f io/expt.yaml
equals "it read the input and wrote the output" "$(cat io/model/out.txt 2>/dev/null)" "HELLO DATA"
expect_code "plan shows the placeholders resolved" 0 "$EXPT" plan -f io/expt.yaml -o json
equals "plan: the input as the run sees it" "$(echo "$out" | json 'd["runs"][0]["env"]["EXPT_INPUT_DATA"]')" "$(echo "$out" | json 'd["runs"][0]["argv"][3]')"
equals "plan: the whole environment" "$(echo "$out" | json '"EXPT_SINKS" in d["runs"][0]["env"] and "EXPT_STORE" in d["runs"][0]["env"]')" "True"
expect_code "an unknown output in the template is a spec error" 2 "$EXPT" run $RUN_BACKEND -f io/expt.yaml 'args=--dst {outputs.nope}'
contains "names the placeholder" "$out" "'{outputs.nope}' names no param"
if [ "$BACKEND" = local ]; then
	expect_code "local cannot mount nfs" 5 "$EXPT" run -f io/expt.yaml inputs.data=nfs://server/x
	contains "says what would" "$out" "needs the container or kubernetes backend"
	equals "nothing was created" "$("$EXPT" ps io -o json | json 'len(d)')" "1"
	expect_code "plan says it too" 5 "$EXPT" plan -f io/expt.yaml inputs.data=nfs://server/x
	expect_code "a missing input" 5 "$EXPT" run -f io/expt.yaml inputs.data=./nope
	contains "names the path" "$out" "nope does not exist"
fi

# Metrics that travel with the output: a run whose logging library cannot reach the store
# (as in a container or a pod) prints records; whoever reads the output feeds them in, once.
# It needs the Python binding and libexpt where the run is (the container backend mounts this
# expt's), and a Python with ctypes: on another backend, only with an image whose Python has it
# (EXPT_TEST_IMAGE_HAS_BINDING=1); the offline test image's does not.
if [ "$BACKEND" != local ] && [ -z "${EXPT_TEST_IMAGE_HAS_BINDING:-}" ]; then
	echo "# skipped on $BACKEND: records from libexpt (the test image has no binding)"
else
	mkdir -p far
	cat > far/expt.yaml <<-YAML
	name: far
	command: python3 far.py
	args: none
	env: $(binding_env)
	YAML
	backend_spec far/expt.yaml
	cat > far/far.py <<-'PY'
	import os
	os.environ.pop("EXPT_STORE", None)  # as if the store were on another machine
	os.chdir("/")                        # and no store above the working directory either
	import expt
	expt.param(notes="a b=c")
	expt.tag(phase="train")
	for step in range(5):
	    expt.log(loss=1.0 / (step + 1), step=step)
	expt.finish()
	print("trained", flush=True)
	PY
	expect_code "a run that cannot reach the store" 0 "$EXPT" run $RUN_BACKEND -f far/expt.yaml
	rid=$(echo "$out" | grep -o 'far-[0-9]*' | head -1)
	expect_code "logs show the records" 0 "$EXPT" logs "$rid"
	contains "a metric record" "$out" "expt: metric loss=0.2 step=4"
	for k in 1 2; do expect_code "logs again ($k)" 0 "$EXPT" logs "$rid"; done
	expect_code "show" 0 "$EXPT" show "$rid" -o json
	equals "each point once" "$(echo "$out" | json '(d["metrics"]["loss"]["count"], d["metrics"]["loss"]["last"])')" "(5, 0.2)"
	equals "the param" "$(echo "$out" | json 'd["params"].get("notes")')" "a b=c"
	equals "the tag" "$(echo "$out" | json 'd["tags"].get("phase")')" "train"
fi

finish
