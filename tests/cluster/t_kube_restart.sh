#!/usr/bin/env bash
# The Kubernetes backend while the control plane restarts: kube-apiserver stopped and started
# again (tests/cluster/restart-apiserver) in the middle of a sweep; no run is lost, none is
# created twice (the watches resume or relist, creations wait for the server). ctest runs it
# alone (RUN_SERIAL): the restart would break the other cluster tests' requests.
. "$(dirname "$0")/../cli/lib.sh"
. "$SRC/tests/cluster/testenv.sh"
cluster_test_env
E=ks$(date +%s | tail -c 5)$RANDOM
trap 'K delete jobs -l "expt.dev/experiment=${E}r" --wait=false >/dev/null 2>&1; rm -rf "$T"' EXIT

cat >expt.yaml <<EOF
name: ${E}r
image: registry.local/does/not/matter:1
command: python3 train.py
parallel: 2
sweep: {i: [1, 2, 3, 4, 5, 6]}
kubernetes:
  namespace: $NS
  pod_template:
    metadata:
      annotations: {expt-test/run-for: "8s"}
EOF
LOGS=$EXPT_CLUSTER_LOGS/$NS
for i in 1 2 3 4 5 6; do "$SRC/tests/cluster/write-log" "$LOGS/${E}r-$i.log" "before $i"; done
"$EXPT" run --backend kubernetes -q >restart.out 2>&1 &
pid=$!
for _ in $(seq 150); do [ "$(K get jobs -l "expt.dev/experiment=${E}r" -o name 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.2; done
if "$SRC/tests/cluster/restart-apiserver" --dir "$CDIR" --down 3 >restart.log 2>&1; then
	pass "the API server was restarted mid-sweep"
else
	fail "the API server was restarted mid-sweep" "$(cat restart.log)"
fi
# What the running pods print while their log streams are broken, and after.
for i in 1 2 3 4 5 6; do "$SRC/tests/cluster/write-log" "$LOGS/${E}r-$i.log" "after $i" "expt: late=$i"; done
wait $pid
rc=$?
equals "the sweep still succeeds" "$rc" "0"
[ "$rc" = 0 ] || cat restart.out | sed 's/^/#   /'
equals "six Jobs, no duplicate" "$(K get jobs -l "expt.dev/experiment=${E}r" -o name | sort -u | wc -l)" "6"
equals "six runs succeeded" "$("$EXPT" ps -o json | json "sum(1 for r in d if r['id'].startswith('${E}r-') and r['status']=='succeeded')")" "6"
out=$("$EXPT" logs "${E}r-1" 2>&1)
contains "a run followed across the restart has what it printed after" "$out" "after 1"
equals "and each line once" "$(printf '%s\n' "$out" | grep -c 'before 1')" "1"
equals "every run's late metric reached the store" \
	"$("$EXPT" compare "${E}r" -o json | json "sorted(int(r['metrics']['late']['last']) for r in d if 'late' in r.get('metrics', {}))")" "[1, 2, 3, 4, 5, 6]"

finish
