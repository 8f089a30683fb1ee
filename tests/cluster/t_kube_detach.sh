#!/usr/bin/env bash
# expt run -d on Kubernetes with nothing local left running: the cluster keeps the Jobs, and
# every later expt (ps, logs -f, compare, debug) reads what happened from the cluster — the
# run's state and end, its output (metrics included), why it waits, the evidence — without
# creating anything twice. Against the real control plane of tests/cluster (kwok nodes).
. "$(dirname "$0")/../cli/lib.sh"

. "$SRC/tests/cluster/testenv.sh"
cluster_test_env
LOGS=$EXPT_CLUSTER_LOGS/$NS
E=kd$(date +%s | tail -c 5)$RANDOM
trap 'K delete jobs -l "expt.dev/experiment in ($E,${E}s,${E}w,${E}f)" --wait=false >/dev/null 2>&1; rm -rf "$T"' EXIT

spec() {
	cat >expt.yaml <<EOF
name: $1
image: registry.local/does/not/matter:1
command: python3 train.py
kubernetes:
  namespace: $NS
${3:-}
  pod_template:
    metadata:
      annotations: {expt-test/run-for: "3s"}
${2:-}
EOF
}


# ---- a sweep that fits `parallel`: -d creates its Jobs and leaves
spec "$E" "parallel: 3
sweep: {lr: [1, 2, 3]}"
for i in 1 2 3; do : >"$LOGS/$E-$i.log"; done
expect_code "expt run -d returns at once" 0 "$EXPT" run -d --backend kubernetes
# What the pods print comes after expt has gone (kwok serves the file as it is when asked).
for i in 1 2 3; do
	"$SRC/tests/cluster/write-log" "$LOGS/$E-$i.log" "hello from run $i" "expt: loss=0.$i step=1" "expt: loss=0.0$i step=2"
done
contains "it says the cluster keeps them going" "$out" "which keeps them going without expt"
not_contains "no supervisor is forked" "$out" "supervisor pid"
equals "no expt process supervises them" \
	"$("$EXPT" ps "$E" -o json | json 'sorted(set(str(r.get("supervisor_pid") or 0) for r in d))')" "['0']"
equals "three Jobs exist" "$(K get jobs -l "expt.dev/experiment=$E" -o name | wc -l)" "3"
out=$("$EXPT" ps "$E" -o json 2>&1)
equals "ps from a new process: all three running" \
	"$(printf '%s' "$out" | json '",".join(sorted(r["status"] for r in d))')" "running,running,running"

# logs -f from a new process follows every pod and ends when they end
out=$(timeout 60 "$EXPT" logs -f "$E" 2>&1)
equals "logs -f ends by itself" "$?" "0"
contains "with run 1's output" "$out" "$E-1 | hello from run 1"
contains "and run 3's" "$out" "$E-3 | hello from run 3"
equals "each line once" "$(printf '%s\n' "$out" | grep -c "hello from run 2")" "1"
out=$("$EXPT" ps "$E" -o json 2>&1)
equals "ps: all three succeeded" \
	"$(printf '%s' "$out" | json '",".join(sorted(r["status"] for r in d))')" "succeeded,succeeded,succeeded"
equals "the node each ran on is recorded" \
	"$(printf '%s' "$out" | json 'all(r.get("node", "").startswith("node-") for r in d)')" "True"
out=$("$EXPT" compare "$E" -o json 2>&1)
contains "metrics read from the pods reach compare" "$out" "0.03"
equals "no run got a metric twice" \
	"$("$EXPT" show "$E-2" -o json | json 'd["metrics"]["loss"]["count"]')" "2"
equals "still three Jobs: nothing created twice" "$(K get jobs -l "expt.dev/experiment=$E" -o name | wc -l)" "3"
out=$("$EXPT" logs "$E-1" 2>&1)
equals "the run's log is kept here, whole" "$(printf '%s\n' "$out" | grep -c .)" "3"

# ---- a run nobody follows ends badly: ps and debug tell from the cluster
spec "${E}f" "cleanup: {failed: 1s}"
sed -i 's/run-for: "3s"}/run-for: "1s", expt-test\/exit-code: "3"}/' expt.yaml
: >"$LOGS/${E}f-1.log"
expect_code "a failing run, detached" 0 "$EXPT" run -d --backend kubernetes
"$SRC/tests/cluster/write-log" "$LOGS/${E}f-1.log" "about to fail"
expect_code "run --attach: the failure is its exit status" 1 "$EXPT" run --attach "${E}f"
contains "with the summary" "$out" "1 run: 0 succeeded, 1 failed"
wait_status "${E}f-1" failed 60
equals "its exit code, from the pod" "$("$EXPT" ps "${E}f" -o json | json 'd[0]["exit_code"]')" "3"
out=$("$EXPT" debug "${E}f-1" 2>&1)
contains "debug names the exit code" "$out" "code 3"
contains "debug shows its last line" "$out" "about to fail"
for _ in $(seq 100); do [ -z "$(K get job "${E}f-1" -o name 2>/dev/null)" ] && break; sleep 0.2; done
equals "cleanup.failed applied by the reader: the Job goes" "$(K get job "${E}f-1" -o name 2>/dev/null)" ""
out=$("$EXPT" debug "${E}f-1" 2>&1)
contains "the evidence was saved before it went" "$out" "terminated: exit code 3"

# ---- a run that cannot start: ps says why, start_timeout ends it
spec "${E}w" "resources: {gpu: 2}" "  start_timeout: 4s"
expect_code "an unschedulable run, detached" 0 "$EXPT" run -d --backend kubernetes
for _ in $(seq 50); do
	out=$("$EXPT" ps "${E}w" 2>&1)
	case "$out" in *"pending (Unschedulable)"*) break ;; esac
	sleep 0.2
done
contains "ps shows it pending, with the reason" "$out" "pending (Unschedulable)"
wait_status "${E}w-1" failed 60
out=$("$EXPT" ps "${E}w" -o json 2>&1)
contains "start_timeout failed it, with the scheduler's words" \
	"$(printf '%s' "$out" | json 'd[0]["message"]')" "did not start within 4.0s (kubernetes.start_timeout): Unschedulable"
equals "and its Job is deleted" "$(K get job "${E}w-1" -o name 2>/dev/null)" ""

# ---- more runs than `parallel`: someone must create the rest, so -d forks a supervisor
spec "${E}s" "parallel: 1
sweep: {lr: [1, 2]}"
sed -i 's/run-for: "3s"/run-for: "1s"/' expt.yaml
expect_code "a sweep wider than parallel, detached" 0 "$EXPT" run -d --backend kubernetes
contains "it is left to a supervisor" "$out" "supervisor pid"
wait_status "${E}s-2" succeeded 60
equals "both ran, one Job each" "$(K get jobs -l "expt.dev/experiment=${E}s" -o name | wc -l)" "2"

finish
