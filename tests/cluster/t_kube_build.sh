#!/usr/bin/env bash
# The image loop end to end on the cluster: `expt run --backend kubernetes` with `image: build`
# writes the project as a layer on the test base image (the daemonless fast path), pushes it to
# the test registry, pins every run to the digest, and the cluster's real node pulls it and runs
# the code that is in it: edit a line, run again, the new code runs. Needs the cluster with its
# real node (tests/cluster/up --real-node), whose registry name is the same inside the node and
# out.
. "$(dirname "$0")/../cli/lib.sh"

. "$SRC/tests/cluster/testenv.sh"
cluster_test_env --real-node
REG=$EXPT_TEST_REAL_NODE_REGISTRY
E=kbuild$(date +%s | tail -c 5)$RANDOM
trap 'K delete jobs -l "expt.dev/experiment=$E" --wait=false >/dev/null 2>&1; rm -rf "$T"' EXIT

printf '%s\n' 'import os' 'lr = float(os.environ["EXPT_PARAM_LR"])' 'print("code version 1")' \
	'print("expt: loss=%s step=1" % (1.0 - lr))' >train.py
cat >expt.yaml <<EOF
name: $E
image: build
build:
  base: $REG/expt/python3:bookworm
  repository: $REG/expt/$E
command: python3 train.py
params: {lr: 0.25}
kubernetes:
  namespace: $NS
  node_selector: {kubernetes.io/hostname: $EXPT_TEST_REAL_NODE_NAME}
  tolerations: [{key: $EXPT_TEST_REAL_NODE_TAINT, operator: Exists, effect: NoSchedule}]
EOF

expect_code "build, push and run on the cluster" 0 "$EXPT" run --backend kubernetes
contains "the code in the image ran" "$out" "code version 1"
img=$(K get job "$E-1" -o jsonpath='{.spec.template.spec.containers[0].image}')
case "$img" in
"$REG/expt/$E@sha256:"*) pass "the Job is pinned to the digest ($img)" ;;
*) fail "the Job is pinned to the digest" "$img" ;;
esac
out=$("$EXPT" show "$E-1" 2>&1)
contains "show prints the image" "$out" "$img"
out=$("$EXPT" compare "$E" -o json 2>&1)
contains "its metric reached compare" "$out" "0.75"

sed -i 's/code version 1/code version 2/' train.py
expect_code "a one-line change: build and run again" 0 "$EXPT" run --backend kubernetes
contains "the new code ran" "$out" "code version 2"
img2=$(K get job "$E-2" -o jsonpath='{.spec.template.spec.containers[0].image}')
if [ -n "$img2" ] && [ "$img2" != "$img" ]; then pass "a new digest"; else fail "a new digest" "$img -> $img2"; fi

finish
