#!/usr/bin/env bash
# expt tracking deploy --mode dev with a real MLflow server: the image tests/images/build-mlflow
# makes offline from the test venv, pulled from the test registry by the cluster's real node
# (containerd + kubelet; tests/cluster/up --real-node). What kwok cannot show: the server starts
# with the flags expt gives it, the kubelet's /health probes make it Ready, the allowed hosts
# let the in-cluster name and a port-forward in and keep another name out, and the mlflow
# client logs a run whose artifact lands on the volume through the server's proxy.
. "$(dirname "$0")/../cli/lib.sh"

. "$SRC/tests/cluster/testenv.sh"
cluster_test_env --real-node
VENV=${EXPT_TEST_CACHE:-$HOME/.cache/expt-test}/mlflow-venv
if [ ! -x "$VENV/bin/mlflow" ]; then
	echo "# skipped: no MLflow venv at $VENV (tests/mlflow/up creates it)"
	exit 77
fi
N=trr$(date +%s | tail -c 5)$RANDOM
PF=
cleanup_cluster() {
	[ -n "$PF" ] && kill "$PF" 2>/dev/null
	K delete pod "$N-client" --wait=false >/dev/null 2>&1 || true
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

# From inside the cluster: a pod on the same node asks the server by its pod IP (the test
# cluster has no kube-proxy and no cluster DNS, so Service names do not resolve in pods here),
# once with the Host header a client of the in-cluster URI sends, once with the IP's own.
podip=$(K get pods -l "app.kubernetes.io/instance=$N" -o jsonpath='{.items[0].status.podIP}')
K apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $N-client, labels: {app.kubernetes.io/instance: $N}}
spec:
  restartPolicy: Never
  nodeSelector: {kubernetes.io/hostname: $EXPT_TEST_REAL_NODE_NAME}
  tolerations: [{key: $EXPT_TEST_REAL_NODE_TAINT, operator: Exists, effect: NoSchedule}]
  containers:
  - name: c
    image: $EXPT_TEST_REAL_NODE_REGISTRY/expt/python3:bookworm
    command:
    - python3
    - -c
    - |
      import socket  # python3-minimal: no urllib.request in the test image
      for host in ["$N.$NS.svc.cluster.local:5000", "$podip:5000", "elsewhere.example.com"]:
          s = socket.create_connection(("$podip", 5000), timeout=20)
          s.sendall(("GET /api/2.0/mlflow/experiments/search?max_results=1 HTTP/1.1\\r\\n"
                     "Host: %s\\r\\nConnection: close\\r\\n\\r\\n" % host).encode())
          status = s.makefile("rb").readline().split()[1].decode()
          print("host", host, status)
EOF
for _ in $(seq 1 300); do
	ph=$(K get pod "$N-client" -o jsonpath='{.status.phase}' 2>/dev/null)
	case "$ph" in Succeeded | Failed) break ;; esac
	sleep 0.2
done
logs=$(K logs "$N-client" 2>&1)
contains "in the cluster: the in-cluster name is let in" "$logs" "host $N.$NS.svc.cluster.local:5000 200"
contains "in the cluster: the pod IP is let in" "$logs" "host $podip:5000 200"
contains "in the cluster: another name is refused" "$logs" "host elsewhere.example.com 403"
K delete pod "$N-client" --wait=false >/dev/null 2>&1

finish
