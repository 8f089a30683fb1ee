#!/usr/bin/env bash
# expt tracking deploy|status|url against the real control plane of tests/cluster: the objects
# are what the API server accepts (server-side dry run and apply), deploy is all-or-nothing and
# idempotent, RBAC refusals create nothing. kwok runs the pods (Running and Ready without
# running MLflow: docs/cluster.md), so /health itself is not reached here.
. "$(dirname "$0")/../cli/lib.sh"

. "$SRC/tests/cluster/testenv.sh"
cluster_test_env
KC() { "$EXPT_KUBECTL" --kubeconfig "$EXPT_TEST_ADMIN_KUBECONFIG" --request-timeout 20s "$@"; }
K() { KC -n "$NS" "$@"; }
N=tr$(date +%s | tail -c 5)$RANDOM # instance names never collide between test runs
KINDS=deployments,services,persistentvolumeclaims,secrets,statefulsets
cleanup_cluster() {
	for ns in "$NS" default; do
		KC -n "$ns" delete "$KINDS" -l "app.kubernetes.io/instance in ($N,${N}p,${N}i,${N}u)" \
			--wait=false >/dev/null 2>&1 || true
	done
	K delete secret "${N}-s3" --wait=false >/dev/null 2>&1 || true
	KC delete namespace "${N}ns" --wait=false >/dev/null 2>&1 || true
}
trap 'cleanup_cluster; rm -rf "$T"' EXIT
# objects NAME [NS]: "kind/name" of everything labelled as instance NAME, sorted, one line.
objects() {
	KC -n "${2:-$NS}" get "$KINDS" -l "app.kubernetes.io/managed-by=expt,app.kubernetes.io/name=mlflow,app.kubernetes.io/instance=$1" \
		-o jsonpath='{range .items[*]}{.kind}/{.metadata.name}{"\n"}{end}' | sort | tr '\n' ' '
}
DEV=(--mode dev --name "$N" --storage "hostpath:$T/mlflow" --no-wait)

# --- the dry run: a List kubectl applies, with no cluster needed to print it ---
expect_code "dry run without any kubeconfig" 0 env KUBECONFIG="$T/none" "$EXPT" tracking deploy \
	--mode dev --dry-run -n "$NS" --name "$N"
contains "it prints a v1 List" "$out" "kind: List"
check "the API server accepts the dev List (kubectl apply --dry-run=server)" \
	bash -c "'$EXPT' tracking deploy --mode dev --dry-run --name $N | '$EXPT_KUBECTL' apply --dry-run=server -f -"
contains "kubectl saw the Deployment" "$out" "deployment.apps/$N created (server dry run)"
contains "and the PVC" "$out" "persistentvolumeclaim/$N-data created (server dry run)"
check "the API server accepts the deploy List" \
	bash -c "'$EXPT' tracking deploy --mode deploy --dry-run -o json --name ${N}p --artifacts s3://b/p --s3-secret x --s3-endpoint http://s3:8333 | '$EXPT_KUBECTL' apply --dry-run=server -f -"
contains "kubectl saw the StatefulSet" "$out" "statefulset.apps/${N}p-postgres created (server dry run)"
equals "the dry runs created nothing" "$(objects "$N")$(objects "${N}p")" ""

# --- bad values: a clear error, exit 2, nothing created ---
expect_code "a bad --mode" 2 "$EXPT" tracking deploy --mode prod --name "$N"
contains "names the flag and the choices" "$out" "--mode: expected dev or deploy, got 'prod'"
expect_code "a bad --storage" 2 "$EXPT" tracking deploy --mode dev --name "$N" --storage nfs:/x
contains "names --storage" "$out" "--storage: expected pvc, pvc:SIZE or hostpath:/ABSOLUTE/PATH"
expect_code "a value only the API server knows is bad (--storage-class)" 2 "$EXPT" tracking deploy \
	--mode dev --name "$N" --storage-class "Not Valid" --no-wait
contains "the dry run names the object and the field" "$out" "PersistentVolumeClaim $N-data"
contains "and the field" "$out" "spec.storageClassName"
contains "and says nothing was created" "$out" "nothing was created"
equals "nothing was created" "$(objects "$N")" ""
# Someone else's Deployment of that name (another selector, immutable): the dry run of ours
# fails after the PVC's passed, and the PVC must not be created either.
K create deployment "$N" --image=registry.local/other:1 >/dev/null
expect_code "a Deployment the server refuses, after a valid PVC" 2 "$EXPT" tracking deploy \
	--mode dev --name "$N" --no-wait
contains "is refused naming the object" "$out" "Deployment $N"
contains "and the field" "$out" "spec.selector"
equals "and the PVC before it was not created either" "$(objects "$N")" ""
K delete deployment "$N" --wait=true >/dev/null

# --- dev: exactly its objects; Available; a second deploy changes nothing ---
expect_code "deploy --mode dev" 0 "$EXPT" tracking deploy "${DEV[@]}"
contains "it says what it created" "$out" "Deployment/$N created"
equals "exactly a Deployment and a Service (hostPath: no PVC)" "$(objects "$N")" "Deployment/$N Service/$N "
expect_code "--wait until Available" 0 "$EXPT" tracking deploy "${DEV[@]}" --wait --timeout 60
rv1=$(K get deployment "$N" -o jsonpath='{.metadata.resourceVersion}')
uid1=$(K get deployment "$N" -o jsonpath='{.metadata.uid}')
expect_code "a second deploy" 0 "$EXPT" tracking deploy "${DEV[@]}" -o json
equals "reports every object unchanged" "$(printf '%s' "$out" | json "sorted(set(o['action'] for o in d['objects']))")" "['unchanged']"
equals "the Deployment's resourceVersion did not move" "$(K get deployment "$N" -o jsonpath='{.metadata.resourceVersion}')" "$rv1"
expect_code "status" 0 "$EXPT" tracking status --name "$N" -o json
equals "status: 1 of 1 ready" "$(printf '%s' "$out" | json "(d['ready_replicas'], d['replicas'], d['available'])")" "(1, 1, True)"
equals "status: the objects" "$(printf '%s' "$out" | json "' '.join(sorted(o['kind'] for o in d['objects']))")" "Deployment Service"
expect_code "status as text" 0 "$EXPT" tracking status --name "$N"
contains "says available" "$out" "available"
expect_code "url" 0 "$EXPT" tracking url --name "$N"
equals "url is the in-cluster URI" "$out" "http://$N.$NS.svc.cluster.local:5000"
expect_code "deploy with another image" 0 "$EXPT" tracking deploy "${DEV[@]}" --image registry.local/mlflow:other
contains "configures the Deployment" "$out" "Deployment/$N configured"
equals "in place (same object)" "$(K get deployment "$N" -o jsonpath='{.metadata.uid}')" "$uid1"
equals "with the new image" "$(K get deployment "$N" -o jsonpath='{.spec.template.spec.containers[0].image}')" "registry.local/mlflow:other"
equals "the allowed hosts name the Service in its namespace" \
	"$(K get deployment "$N" -o json | json "[a for a in d['spec']['template']['spec']['containers'][0]['command'] if '$N.$NS.svc.cluster.local:5000' in a.split(',')] != []")" "True"

# --- a pod that cannot start: status explains ---
expect_code "deploy with an image that cannot be pulled" 0 "$EXPT" tracking deploy --mode dev \
	--name "${N}i" --storage "hostpath:$T/i" --image registry.local/does-not-exist:1 --no-wait
for _ in $(seq 1 100); do
	st=$("$EXPT" tracking status --name "${N}i" 2>&1)
	case "$st" in *ImagePullBackOff*) break ;; esac
	sleep 0.2
done
contains "status names ImagePullBackOff" "$st" "ImagePullBackOff"
contains "and explains it" "$st" "the node cannot pull the image"
expect_code "status of a server that is not available exits 1" 1 "$EXPT" tracking status --name "${N}i"
expect_code "status of nothing exits 3" 3 "$EXPT" tracking status --name "${N}none"
contains "and says so" "$out" "no MLflow server named '${N}none'"
expect_code "url of nothing exits 3" 3 "$EXPT" tracking url --name "${N}none"

# --- deploy: PostgreSQL with a generated password, S3 credentials from a Secret ---
DEP=(--mode deploy --name "${N}p" --artifacts s3://mlflow/p --s3-secret "${N}-s3" --s3-endpoint http://s3.storage:8333 --no-wait)
expect_code "deploy without the S3 Secret" 2 "$EXPT" tracking deploy "${DEP[@]}"
contains "names the missing Secret" "$out" "--s3-secret: Secret '${N}-s3' not found in namespace $NS"
equals "nothing was created" "$(objects "${N}p")" ""
K create secret generic "${N}-s3" --from-literal=AWS_ACCESS_KEY_ID=ak --from-literal=AWS_SECRET_ACCESS_KEY=sk >/dev/null
expect_code "deploy --mode deploy" 0 "$EXPT" tracking deploy "${DEP[@]}"
equals "its objects" "$(objects "${N}p")" "Deployment/${N}p Secret/${N}p-postgres Service/${N}p Service/${N}p-postgres StatefulSet/${N}p-postgres "
pw=$(K get secret "${N}p-postgres" -o jsonpath='{.data.POSTGRES_PASSWORD}' | base64 -d)
equals "a generated password of 32 letters and digits" "$(printf '%s' "$pw" | tr -cd 'A-Za-z0-9' | wc -c)" "32"
not_contains "the password is nowhere in the Deployment" "$(K get deployment "${N}p" -o json)" "$pw"
not_contains "nor in the StatefulSet" "$(K get statefulset "${N}p-postgres" -o json)" "$pw"
contains "the Deployment reads S3 keys from the Secret" "$(K get deployment "${N}p" -o json)" "\"name\": \"${N}-s3\""
expect_code "deploy again" 0 "$EXPT" tracking deploy "${DEP[@]}"
contains "keeps the generated Secret" "$out" "Secret/${N}p-postgres kept"
equals "with the same password" "$(K get secret "${N}p-postgres" -o jsonpath='{.data.POSTGRES_PASSWORD}' | base64 -d)" "$pw"
contains "the StatefulSet unchanged" "$out" "StatefulSet/${N}p-postgres unchanged"
expect_code "status of the deploy shape" 0 "$EXPT" tracking status --name "${N}p" -o json
equals "mode deploy, ready" "$(printf '%s' "$out" | json "(d['mode'], d['ready_replicas'])")" "('deploy', 1)"

# --- RBAC: the unprivileged user may not deploy into default ---
expect_code "the unprivileged user in default: refused" 8 "$EXPT" tracking deploy --mode dev \
	--name "${N}u" --storage "hostpath:$T/u" --kubeconfig "$EXPT_TEST_USER_KUBECONFIG" -n default --no-wait
contains "the refusal names the user and the namespace" "$out" 'User "expt-user" cannot'
contains "and says nothing was created" "$out" "nothing was created"
equals "nothing in default" "$(objects "${N}u" default)" ""
expect_code "the same user in its own namespace: deployed" 0 "$EXPT" tracking deploy --mode dev \
	--name "${N}u" --storage "hostpath:$T/u" --kubeconfig "$EXPT_TEST_USER_KUBECONFIG" --no-wait
equals "its objects" "$(objects "${N}u")" "Deployment/${N}u Service/${N}u "

# --- runs in a namespace with a deployed server get its URI (MLFLOW_TRACKING_URI) ---
KC create namespace "${N}ns" >/dev/null
for _ in $(seq 1 100); do KC -n "${N}ns" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
expect_code "deploy into the runs' namespace" 0 "$EXPT" tracking deploy --mode dev -n "${N}ns" \
	--storage "hostpath:$T/ns" --no-wait
runspec() {
	cat >expt.yaml <<EOF
name: $1
image: registry.local/does/not/matter:1
command: python3 train.py
${2:-}
kubernetes:
  namespace: ${N}ns
  pod_template:
    metadata:
      annotations: {expt-test/run-for: "1s"}
EOF
}
job_env() {
	KC -n "${N}ns" get job "$1" -o json | json "{e['name']: e.get('value') for e in d['spec']['template']['spec']['containers'][0]['env']}.get('MLFLOW_TRACKING_URI', 'unset')"
}
runspec "${N}r"
out=$("$EXPT" run --backend kubernetes --dry-run -o json 2>&1)
not_contains "a dry run does not look for the server" "$out" "MLFLOW_TRACKING_URI"
expect_code "a run on the kubernetes backend" 0 "$EXPT" run --backend kubernetes
equals "its Job has the deployed server's in-cluster URI" "$(job_env "${N}r-1")" "http://mlflow.${N}ns.svc.cluster.local:5000"
runspec "${N}e" "env: {MLFLOW_TRACKING_URI: 'http://mine.example:5000'}"
expect_code "a run whose spec sets MLFLOW_TRACKING_URI" 0 "$EXPT" run --backend kubernetes
equals "keeps its own" "$(job_env "${N}e-1")" "http://mine.example:5000"
runspec "${N}o"
expect_code "a run in a namespace without a server" 0 "$EXPT" run --backend kubernetes kubernetes.namespace="$NS"
equals "gets none" "$(K get job "${N}o-1" -o json | json "[e['name'] for e in d['spec']['template']['spec']['containers'][0]['env'] if e['name'] == 'MLFLOW_TRACKING_URI']")" "[]"
K delete job "${N}o-1" --wait=false >/dev/null 2>&1

finish
