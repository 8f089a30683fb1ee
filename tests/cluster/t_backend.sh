#!/usr/bin/env bash
# The backend-agnostic black-box tests (tests/cli/t_backend.sh) on the kubernetes backend: real
# pods on the cluster's real node, the project's code built onto the test registry's python3
# image by `image: build` (the daemonless fast path), in a namespace of their own (the suite's
# run ids are fixed). Where the node is this machine, hostPath inputs and outputs are the
# project's directories, as on the other backends.
SRC=${EXPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/cluster/testenv.sh"
cluster_test_env --real-node
NS=tb$(date +%s | tail -c 5)$RANDOM
K create namespace "$NS" >/dev/null || { echo "cannot create namespace $NS"; exit 1; }
trap 'K delete namespace "$NS" --wait=false >/dev/null 2>&1' EXIT
export EXPT_TEST_BACKEND=kubernetes
REG=$EXPT_TEST_REAL_NODE_REGISTRY
export EXPT_TEST_BACKEND_YAML="image: build
build: {base: $REG/expt/python3:bookworm, repository: $REG/expt/$NS}
kubernetes:
  namespace: $NS
  node_selector: {kubernetes.io/hostname: $EXPT_TEST_REAL_NODE_NAME}
  tolerations: [{key: $EXPT_TEST_REAL_NODE_TAINT, operator: Exists, effect: NoSchedule}]"
bash "$SRC/tests/cli/t_backend.sh"
