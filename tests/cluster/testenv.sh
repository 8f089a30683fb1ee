# The prelude of the expt tests against the test cluster (tests/cluster/t_*.sh), sourced after
# tests/cli/lib.sh: `cluster_test_env [--real-node]` skips the test (exit 77) when there is no
# running cluster (or, with --real-node, no real node in it), else loads its env (DIR/env:
# docs/cluster.md) and sets NS (the test namespace), K (kubectl as the admin in NS) and
# KUBECONFIG (the admin's, so that expt connects like kubectl).
# shellcheck shell=bash

cluster_test_env() {
	CDIR=${EXPT_CLUSTER_DIR:-$SRC/build/cluster}
	if [ "${EXPT_TEST_SKIP_CLUSTER:-0}" = 1 ] || [ ! -f "$CDIR/env" ]; then
		echo "# skipped: no test cluster (tests/cluster/up)"
		exit 77
	fi
	# shellcheck disable=SC1091
	. "$CDIR/env"
	if [ "${1:-}" = --real-node ] && [ -z "${EXPT_TEST_REAL_NODE_NAME:-}" ]; then
		echo "# skipped: the test cluster has no real node (tests/cluster/up --real-node)"
		exit 77
	fi
	NS=$EXPT_TEST_NAMESPACE
	export KUBECONFIG=$EXPT_TEST_ADMIN_KUBECONFIG
}

K() { "$EXPT_KUBECTL" --kubeconfig "$EXPT_TEST_ADMIN_KUBECONFIG" --request-timeout 20s -n "$NS" "$@"; }
