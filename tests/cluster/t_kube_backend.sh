#!/usr/bin/env bash
# The Kubernetes backend against the real control plane of tests/cluster (kwok nodes: a pod's
# fate is chosen by annotations, its log is a file the test writes; docs/cluster.md).
# Needs EXPT_BIN and a running cluster (EXPT_CLUSTER_DIR, default build/cluster).
. "$(dirname "$0")/../cli/lib.sh"

. "$SRC/tests/cluster/testenv.sh"
cluster_test_env
LOGS=$EXPT_CLUSTER_LOGS/$NS
E=kt$(date +%s | tail -c 5)$RANDOM # experiment names never collide between test runs
cleanup_cluster() {
	K delete jobs -l "expt.dev/experiment in ($E,${E}p,${E}v,${E}d,${E}c,${E}f,${E}k)" --wait=false >/dev/null 2>&1 || true
	K delete jobs "${E}d-1" "${E}d-2" "${E}d-3" --wait=false >/dev/null 2>&1 || true
}
trap 'cleanup_cluster; rm -rf "$T"' EXIT

# spec NAME [EXTRA YAML [EXTRA kubernetes: LINES]]: an experiment whose pods kwok runs for 1 s
# unless told otherwise.
spec() {
	cat >expt.yaml <<EOF
name: $1
image: registry.local/does/not/matter:1
command: python3 train.py
params: {lr: 0.1}
kubernetes:
  namespace: $NS
${3:-}
  pod_template:
    metadata:
      annotations: {expt-test/run-for: "1s"}
${2:-}
EOF
}

# ---- dry run: what would be sent, accepted by the real API server, nothing created
spec "$E"
out=$("$EXPT" run --backend kubernetes --dry-run -o json 2>&1)
equals "dry-run prints a List" "$(printf '%s' "$out" | json 'd["kind"]')" "List"
equals "one Job named after the next run id" \
	"$(printf '%s' "$out" | json 'd["items"][0]["metadata"]["name"]')" "$E-1"
equals "Job labels name the experiment" \
	"$(printf '%s' "$out" | json 'd["items"][0]["metadata"]["labels"]["expt.dev/experiment"]')" "$E"
equals "params reach the pod through the downward API" \
	"$(printf '%s' "$out" | json 'json.loads(d["items"][0]["spec"]["template"]["metadata"]["annotations"]["expt.dev/params"])["lr"]')" "0.1"
contains "argv is the container's command" "$(printf '%s' "$out" | json 'd["items"][0]["spec"]["template"]["spec"]["containers"][0]["command"]')" "'--lr', '0.1'"
contains "pod_template merged over what expt generates" "$out" '"expt-test/run-for": "1s"'
yaml=$("$EXPT" run --backend kubernetes --dry-run -o yaml 2>&1)
if srv=$(printf '%s\n' "$yaml" | "$EXPT_KUBECTL" apply --dry-run=server -f - 2>&1); then
	pass "kubectl apply --dry-run=server accepts the printed YAML"
else
	fail "kubectl apply --dry-run=server accepts the printed YAML" "$srv"
fi
equals "the dry run created no Job" "$(K get jobs -l "expt.dev/experiment=$E" -o name 2>&1)" ""
run_gone "$E-1"

# ---- a run that succeeds: output followed into expt, metrics captured
"$SRC/tests/cluster/write-log" "$LOGS/$E-1.log" "hello from the pod" "expt: loss=0.25 step=1" "expt: loss=0.125 step=2"
expect_code "a successful run exits 0" 0 "$EXPT" run --backend kubernetes
contains "its output streams to the terminal" "$out" "hello from the pod"
equals "ps says succeeded" "$(status_of "$E-1")" "succeeded"
equals "the Job exists in the cluster" "$(K get job "$E-1" -o name 2>&1)" "job.batch/$E-1"
out=$("$EXPT" logs "$E-1" 2>&1)
contains "expt logs reads the pod's output" "$out" "hello from the pod"
out=$("$EXPT" compare "$E" -o json 2>&1)
contains "metrics from the pod's log reach compare" "$out" "0.125"
out=$("$EXPT" ps -o json 2>&1)
equals "backend recorded" "$(printf '%s' "$out" | json "[r.get('backend') for r in d if r['id']=='$E-1'][0]")" "kubernetes"
contains "the node it ran on is recorded" "$(printf '%s' "$out" | json "[r.get('node') for r in d if r['id']=='$E-1'][0]")" "node-"
equals "its events say it waited, then ran" \
	"$("$EXPT" debug "$E-1" -o json | json '",".join(e["kind"] for e in d.get("events", []) if e["kind"] in ("waiting", "running"))' 2>&1 | sed 's/waiting,//g')" "running"

# ---- a run that fails with an exit code; debug explains from the cluster
spec "$E" "retries: 0"
sed -i 's/run-for: "1s"}/run-for: "1s", expt-test\/exit-code: "3"}/' expt.yaml
expect_code "a failing run exits 1" 1 "$EXPT" run --backend kubernetes
equals "ps says failed" "$(status_of "$E-2")" "failed"
out=$("$EXPT" ps -o json | json "[r.get('exit_code') for r in d if r['id']=='$E-2'][0]")
equals "its exit code is recorded" "$out" "3"
out=$("$EXPT" debug "$E-2" 2>&1)
contains "debug names the exit code" "$out" "code 3"
contains "debug shows the pod's state from the cluster" "$out" "terminated: exit code 3"

# ---- out of memory
spec "$E" "resources: {memory: 64Mi}"
sed -i 's/run-for: "1s"}/run-for: "1s", expt-test\/oom: "true"}/' expt.yaml
expect_code "an OOMKilled run exits 1" 1 "$EXPT" run --backend kubernetes
out=$("$EXPT" debug "$E-3" 2>&1)
contains "debug says OOMKilled" "$out" "OOMKilled"

# ---- retries are the Job controller's: backoffLimit, attempts counted from the pods
spec "$E" "retries: 1"
sed -i 's/run-for: "1s"}/run-for: "1s", expt-test\/exit-code: "2"}/' expt.yaml
expect_code "a run failing twice exits 1" 1 "$EXPT" run --backend kubernetes
equals "the Job had backoffLimit 1" "$(K get job "$E-4" -o jsonpath='{.spec.backoffLimit}')" "1"
equals "two attempts recorded (two pods)" \
	"$("$EXPT" ps -o json | json "[r.get('attempt') for r in d if r['id']=='$E-4'][0]")" "2"

# ---- an image that cannot be pulled ends the run, saying so
spec "$E"
sed -i 's|image: .*|image: registry.local/does-not-exist:1|' expt.yaml
expect_code "a run whose image cannot be pulled exits 1" 1 "$EXPT" run --backend kubernetes
out=$("$EXPT" ps -o json | json "[r.get('message') for r in d if r['id']=='$E-5'][0]")
contains "the reason is the image pull" "$out" "ImagePull"

# ---- CrashLoopBackOff: restartPolicy OnFailure restarts in place; each restart an attempt
cat >crash.yaml <<EOF
name: ${E}k
image: registry.local/does/not/matter:1
command: python3 train.py
retries: 2
kubernetes:
  namespace: $NS
  pod_template:
    metadata:
      annotations: {expt-test/run-for: "1s", expt-test/crash: "true", expt-test/backoff: "1s"}
    spec: {restartPolicy: OnFailure}
EOF
expect_code "a run in CrashLoopBackOff fails once the restarts are spent" 1 "$EXPT" run --backend kubernetes -f crash.yaml
contains "it says it crash-looped" "$out" "after 2 restarts in place (CrashLoopBackOff)"
equals "three attempts: the first run and two restarts" "$("$EXPT" ps "${E}k" -o json | json 'd[0]["attempt"]')" "3"

# ---- timeout: activeDeadlineSeconds
spec "$E" "timeout: 2s"
sed -i 's/run-for: "1s"/run-for: "60s"/' expt.yaml
expect_code "a run past its timeout exits 1" 1 "$EXPT" run --backend kubernetes
equals "activeDeadlineSeconds from timeout" "$(K get job "$E-6" -o jsonpath='{.spec.activeDeadlineSeconds}')" "2"
out=$("$EXPT" ps -o json | json "[r.get('reason') for r in d if r['id']=='$E-6'][0]")
equals "reason timeout" "$out" "timeout"

# ---- unschedulable: pending with the scheduler's words; stop deletes the Job
spec "$E" "resources: {gpu: 2}"
"$EXPT" run --backend kubernetes -d >/dev/null 2>&1
for _ in $(seq 100); do
	out=$("$EXPT" debug "$E-7" 2>&1)
	case "$out" in *"nodes are available"*) break ;; esac
	sleep 0.2
done
contains "debug explains why it is not placed" "$out" "nodes are available"
contains "debug hints at resources" "$out" "resources"
expect_code "expt stop" 0 "$EXPT" stop "$E-7"
wait_status "$E-7" stopped 30
for _ in $(seq 100); do [ -z "$(K get job "$E-7" -o name 2>/dev/null)" ] && break; sleep 0.2; done
equals "the stopped run's Job is deleted" "$(K get job "$E-7" -o name 2>/dev/null)" ""

# ---- kubernetes.start_timeout: a run that cannot be placed fails with the scheduler's reason
spec "$E" "resources: {gpu: 2}" "  start_timeout: 6s"
"$EXPT" run --backend kubernetes >st.out 2>&1 &
pid=$!
seen=
while kill -0 $pid 2>/dev/null; do
	case "$("$EXPT" ps "$E" 2>&1)" in *"$E-8 "*"pending (Unschedulable)"*) seen=1 ;; esac
	sleep 0.3
done
wait $pid
equals "an unschedulable run with start_timeout: 6s exits 1" "$?" "1"
out=$(cat st.out)
equals "while it waits, ps says pending and why (from the supervisor)" "$seen" "1"
contains "it says it did not start, and why" "$out" "did not start within 6.0s (kubernetes.start_timeout): Unschedulable"
contains "in the scheduler's words" "$out" "nodes are available"
equals "its Job is deleted" "$(K get job "$E-8" -o name 2>/dev/null)" ""

# ---- parallel bounds the Jobs in flight
spec "${E}p" "parallel: 2
sweep: {lr: [1, 2, 3, 4, 5]}"
sed -i 's/run-for: "1s"/run-for: "2s"/' expt.yaml
"$EXPT" run --backend kubernetes -q >run.out 2>&1 &
pid=$!
max=0
while kill -0 $pid 2>/dev/null; do
	n=$(K get jobs -l "expt.dev/experiment=${E}p" -o json 2>/dev/null | json 'sum(1 for j in d["items"] if not any(c["status"]=="True" for c in j.get("status",{}).get("conditions",[])))' 2>/dev/null || echo 0)
	[ "$n" -gt "$max" ] && max=$n
	sleep 0.2
done
wait $pid
rc=$?
equals "the sweep of 5 succeeds" "$rc" "0"
if [ "$max" -le 2 ] && [ "$max" -ge 1 ]; then pass "at most 2 Jobs in flight (saw $max)"; else fail "at most 2 Jobs in flight" "saw $max"; fi
equals "five Jobs, one per run" "$(K get jobs -l "expt.dev/experiment=${E}p" -o name | wc -l)" "5"
equals "sweep index label" "$(K get job "${E}p-3" -o jsonpath='{.metadata.labels.expt\.dev/sweep-index}')" "2"

# ---- kubernetes.max_in_flight caps the namespace across experiments (a namespace of its own:
# the other suites' Jobs would count)
MNS=${E}-mif
K create namespace "$MNS" >/dev/null 2>&1
for x in a b; do
	mkdir -p "mif-$x"
	cat >"mif-$x/expt.yaml" <<EOF
name: ${E}m$x
image: registry.local/does/not/matter:1
command: python3 train.py
parallel: 3
sweep: {lr: [1, 2, 3]}
kubernetes:
  namespace: $MNS
  max_in_flight: 2
  pod_template:
    metadata:
      annotations: {expt-test/run-for: "2s"}
EOF
done
"$EXPT" run --backend kubernetes -q -f mif-a/expt.yaml >mif-a.out 2>&1 &
pa=$!
"$EXPT" run --backend kubernetes -q -f mif-b/expt.yaml >mif-b.out 2>&1 &
pb=$!
max=0
while kill -0 $pa 2>/dev/null || kill -0 $pb 2>/dev/null; do
	n=$("$EXPT_KUBECTL" --kubeconfig "$EXPT_TEST_ADMIN_KUBECONFIG" -n "$MNS" get jobs -o json 2>/dev/null | json 'sum(1 for j in d["items"] if not any(c["status"]=="True" for c in j.get("status",{}).get("conditions",[])))' 2>/dev/null || echo 0)
	[ "$n" -gt "$max" ] && max=$n
	sleep 0.2
done
wait $pa; ra=$?
wait $pb; rb=$?
equals "both sweeps succeed" "$ra,$rb" "0,0"
if [ "$max" -le 2 ] && [ "$max" -ge 1 ]; then pass "at most 2 Jobs in the namespace at once (saw $max)"; else fail "at most 2 Jobs in the namespace at once" "saw $max"; fi
equals "six Jobs in all" "$("$EXPT_KUBECTL" --kubeconfig "$EXPT_TEST_ADMIN_KUBECONFIG" -n "$MNS" get jobs -o name | wc -l)" "6"
"$EXPT_KUBECTL" --kubeconfig "$EXPT_TEST_ADMIN_KUBECONFIG" delete namespace "$MNS" --wait=false >/dev/null 2>&1

# ---- the API server's refusal, before anything exists
spec "${E}v" "" "  labels: {team: 'not a valid value!'}"
expect_code "a Job the server refuses: exit 2" 2 "$EXPT" run --backend kubernetes
contains "the error names the spec field" "$out" "kubernetes.labels"
contains "and says nothing was created" "$out" "nothing was created"
equals "no Job was created" "$(K get jobs -l "expt.dev/experiment=${E}v" -o name 2>&1)" ""
equals "no run was recorded" "$("$EXPT" ps -o json 2>/dev/null | json "len([r for r in d if r['id'].startswith('${E}v-')])")" "0"

spec "${E}v" "secrets: [no-such-secret]"
expect_code "a missing Secret: exit 2" 2 "$EXPT" run --backend kubernetes
contains "the error names the Secret" "$out" "Secret 'no-such-secret' does not exist"

spec "${E}v"
sed -i "s/namespace: $NS/namespace: no-such-ns/" expt.yaml
expect_code "a missing namespace: exit 2" 2 "$EXPT" run --backend kubernetes
contains "the error names the namespace" "$out" "namespace 'no-such-ns' does not exist"

# ---- RBAC: the unprivileged user may not create Jobs in default
spec "${E}v"
sed -i "s/namespace: $NS/namespace: default/" expt.yaml
KUBECONFIG=$EXPT_TEST_USER_KUBECONFIG expect_code "forbidden: exit 8" 8 "$EXPT" run --backend kubernetes
contains "the error says who may not do what where" "$out" "may not create Jobs in namespace default"

# ---- on_conflict
# Jobs of another expt (another store) hold the next two run ids. A refused launch leaves no
# run behind, but its ids are not reused: the next launch is -2.
spec "${E}d"
K create job "${E}d-1" --image=x -- true >/dev/null 2>&1
K create job "${E}d-2" --image=x -- true >/dev/null 2>&1
expect_code "a Job with the run's name: exit 2 (on_conflict: fail)" 2 "$EXPT" run --backend kubernetes
contains "the error says so" "$out" "already exists"
spec "${E}d" "on_conflict: replace"
expect_code "on_conflict: replace deletes it and runs" 0 "$EXPT" run --backend kubernetes
equals "the replaced Job is expt's" \
	"$(K get job "${E}d-2" -o jsonpath='{.metadata.labels.expt\.dev/run}' 2>&1)" "${E}d-2"
K create job "${E}d-3" --image=x -- true >/dev/null 2>&1
spec "${E}d" "on_conflict: new-id"
expect_code "on_conflict: new-id runs under a Job name of its own" 0 "$EXPT" run --backend kubernetes
job=$("$EXPT" ps "${E}d" -o json | json "[r.get('backend_ref') for r in d if r['id']=='${E}d-3'][0]")
case "$job" in "${E}d-3-"?????) pass "its Job is named after the run, with a suffix" ;; *) fail "its Job is named after the run, with a suffix" "got $job" ;; esac
equals "the other Job is left alone" "$(K get job "${E}d-3" -o jsonpath='{.metadata.labels.expt\.dev/run}' 2>&1)" ""
equals "the new Job carries the run's label" "$(K get job "$job" -o jsonpath='{.metadata.labels.expt\.dev/run}' 2>&1)" "${E}d-3"
K delete job "${E}d-3" --wait=false >/dev/null 2>&1

# ---- cleanup: a finished Job goes after the delay for its outcome, the evidence stays here
spec "${E}c" "cleanup: {succeeded: 0s, failed: keep}"
sed -i 's/run-for: "1s"}/run-for: "1s", expt-test\/exit-code: "0"}/' expt.yaml
"$SRC/tests/cluster/write-log" "$LOGS/${E}c-1.log" "cleanup output line"
expect_code "a run with cleanup.succeeded: 0s" 0 "$EXPT" run --backend kubernetes
for _ in $(seq 150); do [ -z "$(K get job "${E}c-1" -o name 2>/dev/null)" ] && break; sleep 0.2; done
equals "its Job is deleted by the TTL controller" "$(K get job "${E}c-1" -o name 2>/dev/null)" ""
out=$("$EXPT" debug "${E}c-1" 2>&1)
contains "debug says the cluster forgot" "$out" "is no longer in the cluster"
contains "and shows what was saved at the end" "$out" "terminated: exit code 0"
out=$("$EXPT" logs "${E}c-1" 2>&1)
contains "logs outlive the Job" "$out" "cleanup output line"
sed -i 's/expt-test\/exit-code: "0"/expt-test\/exit-code: "4"/' expt.yaml
expect_code "a failing run with cleanup.failed: keep" 1 "$EXPT" run --backend kubernetes
sleep 2
equals "its Job is kept" "$(K get job "${E}c-2" -o name 2>&1)" "job.batch/${E}c-2"
equals "no TTL on a kept Job" "$(K get job "${E}c-2" -o jsonpath='{.spec.ttlSecondsAfterFinished}')" ""

# ---- kubernetes.queue: the Kueue label
spec "${E}c" "" "  queue: team-a"
out=$("$EXPT" run --backend kubernetes --dry-run -o json 2>&1)
equals "queue becomes the Kueue label" "$(printf '%s' "$out" | json 'd["items"][0]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]')" "team-a"

# ---- files: a ConfigMap per run, owned by its Job, each file mounted read-only
mkdir -p conf && printf '{"depth": 3}\n' >conf/train.json && printf '\001\002binary' >conf/blob.bin
spec "${E}f" "files: {/etc/train/train.json: conf/train.json, /etc/train/blob.bin: conf/blob.bin}"
out=$("$EXPT" run --backend kubernetes --dry-run -o json 2>&1)
equals "the dry run lists the ConfigMap, then the Job" \
	"$(printf '%s' "$out" | json '",".join(i["kind"] for i in d["items"])')" "ConfigMap,Job"
equals "the file's bytes are in it" \
	"$(printf '%s' "$out" | json '__import__("base64").b64decode(d["items"][0]["binaryData"]["f0"]).decode()' 2>&1 | head -1)" '{"depth": 3}'
equals "mounted where the spec says, read-only" \
	"$(printf '%s' "$out" | json '[(m["mountPath"], m["subPath"], m["readOnly"]) for m in d["items"][1]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] if m["name"]=="expt-files"][0]')" \
	"('/etc/train/train.json', 'f0', True)"
expect_code "a run with files: succeeds" 0 "$EXPT" run --backend kubernetes
equals "its ConfigMap holds the binary file exactly" \
	"$(K get configmap "${E}f-1-files" -o json | json '__import__("base64").b64decode(d["binaryData"]["f1"]) == open("conf/blob.bin","rb").read()')" "True"
equals "the ConfigMap is owned by the Job" \
	"$(K get configmap "${E}f-1-files" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')" "Job/${E}f-1"
K delete job "${E}f-1" --wait=false >/dev/null 2>&1
for _ in $(seq 150); do [ -z "$(K get configmap "${E}f-1-files" -o name 2>/dev/null)" ] && break; sleep 0.2; done
equals "it goes with its Job" "$(K get configmap "${E}f-1-files" -o name 2>/dev/null)" ""
spec "${E}f" "files: {conf/train.json: conf/train.json}"
expect_code "a relative path in a prebuilt image: exit 2" 2 "$EXPT" run --backend kubernetes
contains "the error names the field and the way out" "$out" "files.conf/train.json: a relative path in the run needs its working directory"
spec "${E}f" "files: {/etc/x.json: conf/missing.json}"
expect_code "a missing local file: exit 2" 2 "$EXPT" run --backend kubernetes
contains "the error names the field" "$out" "files./etc/x.json"
equals "no Job or ConfigMap was created for them" \
	"$(K get jobs,configmaps -l "expt.dev/experiment=${E}f" -o name 2>&1 | grep -c "${E}f-[23]")" "0"

# ---- expt debug EXPT: the sweep's failures grouped by cause, in the cluster's words
out=$("$EXPT" debug "$E" 2>&1)
contains "debug EXPT names the OOMKilled run under its cause" "$out" "OOMKilled"
contains "and the exit code 3 one" "$out" "$E-2"
out=$("$EXPT" debug "$E" -o json 2>&1)
equals "each failed run in exactly one group" \
	"$(printf '%s' "$out" | json 'sorted(r for g in d["groups"] for r in g["runs"]) == sorted(set(r for g in d["groups"] for r in g["runs"]))')" "True"

# ---- rm deletes the Job
expect_code "expt rm" 0 "$EXPT" rm "$E-1"
for _ in $(seq 100); do [ -z "$(K get job "$E-1" -o name 2>/dev/null)" ] && break; sleep 0.2; done
equals "rm deleted the Job" "$(K get job "$E-1" -o name 2>/dev/null)" ""

finish
