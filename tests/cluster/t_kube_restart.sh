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
      annotations: {expt-test/run-for: "3s"}
EOF
"$EXPT" run --backend kubernetes -q >restart.out 2>&1 &
pid=$!
for _ in $(seq 150); do [ "$(K get jobs -l "expt.dev/experiment=${E}r" -o name 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.2; done
if "$SRC/tests/cluster/restart-apiserver" --dir "$CDIR" --down 3 >restart.log 2>&1; then
	pass "the API server was restarted mid-sweep"
else
	fail "the API server was restarted mid-sweep" "$(cat restart.log)"
fi
wait $pid
rc=$?
equals "the sweep still succeeds" "$rc" "0"
[ "$rc" = 0 ] || cat restart.out | sed 's/^/#   /'
equals "six Jobs, no duplicate" "$(K get jobs -l "expt.dev/experiment=${E}r" -o name | sort -u | wc -l)" "6"
equals "six runs succeeded" "$("$EXPT" ps -o json | json "sum(1 for r in d if r['id'].startswith('${E}r-') and r['status']=='succeeded')")" "6"

finish
