#!/usr/bin/env bash
# expt tracking deploy --mode dev with a real MLflow server: the image tests/images/build-mlflow
# makes offline from the test venv, pulled from the test registry by the cluster's real node
# (containerd + kubelet; tests/cluster/up --real-node). What kwok cannot show: the server starts
# with the flags expt gives it, the kubelet's /health probes make it Ready, the allowed hosts
# let the in-cluster name and a port-forward in and keep another name out, and the mlflow
# client logs a run whose artifact lands on the volume through the server's proxy.
. "$(dirname "$0")/../cli/lib.sh"

CDIR=${EXPT_CLUSTER_DIR:-$SRC/build/cluster}
if [ "${EXPT_TEST_SKIP_CLUSTER:-0}" = 1 ] || [ ! -f "$CDIR/env" ]; then
	echo "# skipped: no test cluster (tests/cluster/up)"
	exit 77
fi
# shellcheck disable=SC1091
. "$CDIR/env"
if [ -z "${EXPT_TEST_REAL_NODE_NAME:-}" ]; then
	echo "# skipped: the test cluster has no real node (tests/cluster/up --real-node)"
	exit 77
fi
VENV=${EXPT_TEST_CACHE:-$HOME/.cache/expt-test}/mlflow-venv
if [ ! -x "$VENV/bin/mlflow" ]; then
	echo "# skipped: no MLflow venv at $VENV (tests/mlflow/up creates it)"
	exit 77
fi
NS=$EXPT_TEST_NAMESPACE
K() { "$EXPT_KUBECTL" --kubeconfig "$EXPT_TEST_ADMIN_KUBECONFIG" --request-timeout 20s -n "$NS" "$@"; }
export KUBECONFIG=$EXPT_TEST_ADMIN_KUBECONFIG
N=trr$(date +%s | tail -c 5)$RANDOM
PF=
cleanup_cluster() {
	[ -n "$PF" ] && kill "$PF" 2>/dev/null
	K delete deployments,services -l "app.kubernetes.io/instance=$N" --wait=true --timeout=60s >/dev/null 2>&1 || true
}
trap 'cleanup_cluster; rm -rf "$T"' EXIT

env_lines=$("$SRC/tests/images/build-mlflow" --print-env) || { fail "build the MLflow image"; finish; }
eval "$env_lines"
IMG=$EXPT_TEST_REAL_NODE_REGISTRY/expt/mlflow:$EXPT_TEST_MLFLOW_VERSION
check "push the MLflow image to the test registry" skopeo copy -q --dest-tls-verify=false \
	"oci:$EXPT_TEST_MLFLOW_IMAGE_LAYOUT:mlflow" "docker://$IMG"

mkdir -p "$T/data"
expect_code "deploy --mode dev on the real node, --wait" 0 "$EXPT" tracking deploy --mode dev \
	--name "$N" --image "$IMG" --storage "hostpath:$T/data" \
	--node-selector "kubernetes.io/hostname=$EXPT_TEST_REAL_NODE_NAME" \
	--toleration "$EXPT_TEST_REAL_NODE_TAINT" --wait --timeout 240
expect_code "status: available" 0 "$EXPT" tracking status --name "$N" -o json
equals "1 of 1 ready (the kubelet's /health probe passed)" "$(printf '%s' "$out" | json "(d['ready_replicas'], d['available'])")" "(1, True)"
equals "it runs on the real node" "$(K get pods -l "app.kubernetes.io/instance=$N" -o jsonpath='{.items[0].spec.nodeName}')" "$EXPT_TEST_REAL_NODE_NAME"

K port-forward "svc/$N" :5000 >"$T/pf.log" 2>&1 &
PF=$!
port=
for _ in $(seq 1 100); do
	port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/pf.log" | head -1)
	[ -n "$port" ] && break
	sleep 0.1
done
U=http://127.0.0.1:$port
equals "/health through kubectl port-forward" "$(curl -s -m 20 "$U/health")" "OK"
equals "a foreign Host header is refused (--allowed-hosts)" \
	"$(curl -s -m 20 -o /dev/null -w '%{http_code}' -H 'Host: elsewhere.example.com' "$U/api/2.0/mlflow/experiments/search?max_results=1")" "403"
equals "the Service's in-cluster name is allowed" \
	"$(curl -s -m 20 -o /dev/null -w '%{http_code}' -H "Host: $N.$NS.svc.cluster.local:5000" "$U/api/2.0/mlflow/experiments/search?max_results=1")" "200"
equals "and its short name" \
	"$(curl -s -m 20 -o /dev/null -w '%{http_code}' -H "Host: $N" "$U/api/2.0/mlflow/experiments/search?max_results=1")" "200"

echo "checkpoint" >"$T/model.txt"
out=$(MLFLOW_TRACKING_URI=$U "$VENV/bin/python" - "$T/model.txt" 2>&1 <<'EOF'
import sys, mlflow
mlflow.set_experiment("deployed")
with mlflow.start_run() as run:
    mlflow.log_param("alpha", "0.5")
    mlflow.log_metric("loss", 0.25, step=3)
    mlflow.log_artifact(sys.argv[1])
r = mlflow.get_run(run.info.run_id)
print("run", r.info.run_id, r.data.params["alpha"], r.data.metrics["loss"], r.info.artifact_uri)
EOF
)
contains "the mlflow client logs a run through the deployed server" "$out" "0.5 0.25 mlflow-artifacts:"
art=$(find "$T/data/artifacts" -name model.txt 2>/dev/null | head -1)
equals "its artifact is on the server's volume (served artifacts)" "$(cat "$art" 2>/dev/null)" "checkpoint"
check "the runs are in SQLite on the volume" test -s "$T/data/mlflow.db"

finish
