#!/usr/bin/env bash
# tests/cluster/t_kube_client.sh: expt's Kubernetes client (src/backend/kube) against the real
# kube-apiserver of tests/cluster, through the hidden `expt __kube` command: TLS with the
# cluster's CA, client certificates, RBAC refusals decoded, SelfSubjectAccessReview, the exec
# credential plugin (cached, re-run on 401), a wrong CA, watch events and the 410 relist, 409,
# 422, 404, and a concurrent batch. Needs EXPT_BIN and a running cluster (EXPT_CLUSTER_DIR/env).
# Prints `ok - NAME` / `not ok - NAME` per check, then `N passed, N failed`.
set -uo pipefail

# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cluster_parse_dir "$@"

if [ "${EXPT_TEST_SKIP_CLUSTER:-0}" = 1 ]; then
  echo "# skipped: EXPT_TEST_SKIP_CLUSTER=1"
  exit 77
fi

pass=0
fail=0
report() { # STATUS NAME [DETAIL]
  if [ "$1" = 0 ]; then
    pass=$((pass + 1)); echo "ok - $2"
  else
    fail=$((fail + 1)); echo "not ok - $2"
    [ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
  fi
  return 0
}
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
}

[ -f "$cluster_dir/env" ] || { report 1 "cluster environment" "no $cluster_dir/env"; finish; exit 1; }
# shellcheck disable=SC1091
. "$cluster_dir/env"
E="${EXPT_BIN:?EXPT_BIN: the expt binary to test}"
NS="$EXPT_TEST_NAMESPACE"
K() { "$EXPT_KUBECTL" --kubeconfig "$EXPT_TEST_ADMIN_KUBECONFIG" --request-timeout 20s -n "$NS" "$@"; }
run="kc$(date +%s | tail -c 5)$RANDOM"
tmp="$(mktemp -d)"
watch_pid=""
cleanup() {
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null
  K delete configmaps,events,pods,services -l "expt-kc in ($run,$run-r)" --wait=false >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
export KUBECONFIG="$EXPT_TEST_ADMIN_KUBECONFIG"

# rc OUT ERR: runs expt __kube ARGS, stdout to $tmp/out, stderr to $tmp/err, sets $rc
kube() { "$E" __kube "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; }
show() { printf 'rc=%s\nstdout: %s\nstderr: %s' "$rc" "$(head -c 1500 "$tmp/out")" "$(head -c 1500 "$tmp/err")"; }

# --- plain requests with the admin's client certificate --------------------------------------
kube GET /version
[ "$rc" = 0 ] && jq -e '.gitVersion | startswith("v1.")' "$tmp/out" >/dev/null
report $? "GET /version with the admin certificate, the cluster's CA verified" "$(show)"

kube GET /api/v1/namespaces
[ "$rc" = 0 ] && jq -e '[.items[].metadata.name] | index("expt-test") != null' "$tmp/out" >/dev/null
report $? "list namespaces" "$(show)"

# --- RBAC: the unprivileged user ---------------------------------------------------------------
kube --kubeconfig "$EXPT_TEST_USER_KUBECONFIG" GET /api/v1/namespaces
[ "$rc" = 8 ] && jq -e '.http == 403 and .reason == "Forbidden" and .kind == "namespaces"' "$tmp/out" >/dev/null &&
  grep -q 'cannot list resource "namespaces"' "$tmp/err"
report $? "unprivileged user: 403 decoded as a Status (reason Forbidden), exit 8" "$(show)"

kube --kubeconfig "$EXPT_TEST_USER_KUBECONFIG" can create batch jobs default
[ "$rc" = 0 ] && grep -qx 'no' "$tmp/out"
report $? "access check: the user may not create jobs in default" "$(show)"
kube --kubeconfig "$EXPT_TEST_USER_KUBECONFIG" can create batch jobs "$NS"
[ "$rc" = 0 ] && grep -q '^yes' "$tmp/out"
report $? "access check: the user may create jobs in $NS" "$(show)"

# --- exec credential plugin ------------------------------------------------------------------
# A wrapper that counts its runs; with a "bad-first" marker its first run hands out a token
# the server rejects (401), so the client must run it again and retry.
real_plugin="$(grep -m1 'command:' "$EXPT_TEST_EXEC_KUBECONFIG" | sed 's/.*command: *//')"
cat >"$tmp/plugin" <<EOF
#!/usr/bin/env bash
echo run >>"$tmp/plugin-runs"
if [ -f "$tmp/bad-first" ] && [ "\$(wc -l <"$tmp/plugin-runs")" = 1 ]; then
  printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"wrong-token","expirationTimestamp":"2999-01-01T00:00:00Z"}}\n'
  exit 0
fi
exec "$real_plugin" "\$@"
EOF
chmod +x "$tmp/plugin"
sed "s|command: .*|command: $tmp/plugin|" "$EXPT_TEST_EXEC_KUBECONFIG" >"$tmp/exec.kubeconfig"
kube --kubeconfig "$tmp/exec.kubeconfig" --repeat 2 GET /api/v1/namespaces/"$NS"/configmaps
runs=$(wc -l <"$tmp/plugin-runs" 2>/dev/null || echo 0)
[ "$rc" = 0 ] && [ "$runs" = 1 ]
report $? "exec plugin authenticates; two requests, one run of the plugin (cached until expirationTimestamp)" "$(show)
plugin runs: $runs"

rm -f "$tmp/plugin-runs"
touch "$tmp/bad-first"
kube --kubeconfig "$tmp/exec.kubeconfig" GET /api/v1/namespaces/"$NS"/configmaps
runs=$(wc -l <"$tmp/plugin-runs" 2>/dev/null || echo 0)
[ "$rc" = 0 ] && [ "$runs" = 2 ]
report $? "exec plugin: a 401 re-runs the plugin once and the request succeeds" "$(show)
plugin runs: $runs"

# --- TLS: a CA that did not sign the server's certificate --------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/bad-ca.key" \
  -out "$tmp/bad-ca.crt" -subj /CN=not-the-cluster-ca -days 2 2>/dev/null
sed "s|certificate-authority-data: .*|certificate-authority: $tmp/bad-ca.crt|" \
  "$EXPT_TEST_ADMIN_KUBECONFIG" >"$tmp/bad-ca.kubeconfig"
kube --kubeconfig "$tmp/bad-ca.kubeconfig" GET /version
[ "$rc" = 5 ] && grep -q "cannot verify the TLS certificate of $EXPT_CLUSTER_SERVER" "$tmp/err" &&
  grep -q "the CA trusted is $tmp/bad-ca.crt" "$tmp/err"
report $? "a wrong CA fails verification with a message naming the server and the CA" "$(show)"

# --- status decoding: 409, 422, 404 ------------------------------------------------------------
cm() { printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s","labels":{"expt-kc":"%s"}}}' "$1" "$run"; }
kube POST "/api/v1/namespaces/$NS/configmaps" "$(cm "$run-dup")"
first=$rc
kube POST "/api/v1/namespaces/$NS/configmaps" "$(cm "$run-dup")"
[ "$first" = 0 ] && [ "$rc" = 6 ] &&
  jq -e --arg n "$run-dup" '.http == 409 and .reason == "AlreadyExists" and .name == $n' "$tmp/out" >/dev/null
report $? "creating a ConfigMap twice: 409 decoded as AlreadyExists with details.name, exit 6" "$(show)"

kube POST "/api/v1/namespaces/$NS/configmaps" "$(cm "Bad_Name")"
[ "$rc" = 2 ] && jq -e '.http == 422 and .reason == "Invalid" and (.causes[0].field == "metadata.name") and (.causes[0].reason | length > 0)' "$tmp/out" >/dev/null
report $? "an invalid name: 422 with details.causes (field metadata.name), exit 2" "$(show)"

kube GET "/api/v1/namespaces/$NS/configmaps/$run-none"
[ "$rc" = 3 ] && jq -e '.http == 404 and .reason == "NotFound"' "$tmp/out" >/dev/null
report $? "a missing object: 404 NotFound, exit 3" "$(show)"

# --- watch -----------------------------------------------------------------------------------------
# wait_for_line FILE LINE: up to 20 s for LINE to appear in FILE
wait_for_line() { for _ in $(seq 200); do grep -qx "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
"$E" __kube watch "/api/v1/namespaces/$NS/configmaps" "labelSelector=expt-kc%3D$run-w" \
  --events 3 --timeout-ms 30000 >"$tmp/watch" 2>&1 &
watch_pid=$!
wait_for_line "$tmp/watch" "# listed"
K create configmap "$run-w1" --from-literal=a=1 >/dev/null && K label configmap "$run-w1" "expt-kc=$run-w" >/dev/null &&
  K patch configmap "$run-w1" -p '{"data":{"a":"2"}}' >/dev/null && K delete configmap "$run-w1" >/dev/null
wait "$watch_pid"; watch_pid=""
printf 'ADDED ConfigMap/%s\nMODIFIED ConfigMap/%s\nDELETED ConfigMap/%s\n# relists 0\n' "$run-w1" "$run-w1" "$run-w1" >"$tmp/want"
grep -v '^# listed' "$tmp/watch" | diff "$tmp/want" - >"$tmp/diff"
report $? "watch: ADDED, MODIFIED, DELETED of a ConfigMap made with kubectl" "$(cat "$tmp/diff")"

# Resuming from resourceVersion 1, which the server no longer has, must give 410 → relist; the
# relist and the new watch then deliver what changed meanwhile. Events, because kube-apiserver
# serves them from etcd (no watch cache: a young watch cache answers an old resourceVersion
# with the current objects instead of 410), and a young cluster's etcd still has every revision
# (kube-apiserver compacts it every 5 minutes): so compact etcd now, through its HTTP gateway.
etcd="${EXPT_CLUSTER_ETCD:-$(tr '\0' '\n' <"/proc/$(cat "$cluster_dir/run/etcd.pid")/cmdline" 2>/dev/null |
  grep -A1 -x -- --advertise-client-urls | tail -1)}"
rev=$(curl -sf -X POST "$etcd/v3/kv/range" -d '{"key":"YQ=="}' | jq -r .header.revision)
curl -sf -X POST "$etcd/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null ||
  echo "# could not compact etcd at $etcd (revision '$rev')"
ev() { # NAME: an Event labelled for this run, as kubectl input
  printf '{"apiVersion":"v1","kind":"Event","metadata":{"name":"%s","labels":{"expt-kc":"%s"}},"involvedObject":{"kind":"ConfigMap","name":"x","namespace":"%s"},"reason":"Test","message":"t_kube_client","type":"Normal"}' "$1" "$run-r" "$NS"
}
ev "$run-e0" | K create -f - >/dev/null
"$E" __kube watch "/api/v1/namespaces/$NS/events" "labelSelector=expt-kc%3D$run-r" \
  --resume-rv 1 --events 3 --timeout-ms 30000 >"$tmp/watch" 2>&1 &
watch_pid=$!
wait_for_line "$tmp/watch" "# listed"
ev "$run-e1" | K create -f - >/dev/null && K delete event "$run-e0" >/dev/null
wait "$watch_pid"; watch_pid=""
grep -qx "ADDED Event/$run-e0" "$tmp/watch" && grep -qx "ADDED Event/$run-e1" "$tmp/watch" &&
  grep -qx "DELETED Event/$run-e0" "$tmp/watch" && grep -qx "# relists 1" "$tmp/watch"
report $? "watch from a resourceVersion the server no longer has: 410 → relist, then events again" "$(cat "$tmp/watch")"

# --- streams: two pods' logs followed at once on one client -----------------------------------
# kwok serves each pod's log from $EXPT_CLUSTER_LOGS/<ns>/<pod>.log (CRI format).
cri() { printf '2024-01-01T00:00:01.000000000Z stdout F %s\n' "$1"; }
for p in la lb; do
  cri "first $p" >"$EXPT_CLUSTER_LOGS/$NS/$run-$p.log"
  K apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $run-$p
  labels: {expt-kc: "$run"}
  annotations: {expt-test/run-for: "120s"}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox:stable}
EOF
done
K wait --for=jsonpath='{.status.phase}'=Running "pod/$run-la" "pod/$run-lb" --timeout=60s >/dev/null
"$E" __kube stream "/api/v1/namespaces/$NS/pods/$run-la/log?follow=true" \
  "/api/v1/namespaces/$NS/pods/$run-lb/log?follow=true" --events 4 --timeout-ms 30000 >"$tmp/stream" 2>&1 &
watch_pid=$!
wait_for_line "$tmp/stream" "[0] first la" && wait_for_line "$tmp/stream" "[1] first lb"
long=$(head -c 200000 /dev/zero | tr '\0' x)
cri "$long" >>"$EXPT_CLUSTER_LOGS/$NS/$run-la.log"
# a CRI partial line ("P"): kwok sends "second-" at once and "lb\n" a second later, in two
# chunks that the client must join into one line
printf '2024-01-01T00:00:02.000000000Z stdout P second-\n' >>"$EXPT_CLUSTER_LOGS/$NS/$run-lb.log"
sleep 1
cri "lb" >>"$EXPT_CLUSTER_LOGS/$NS/$run-lb.log"
wait "$watch_pid"; watch_pid=""
printf '[0] %s\n' "$long" >"$tmp/long"   # a pattern file: one argument may not exceed 128 kB
grep -qx "\[1\] second-lb" "$tmp/stream" && grep -qxF -f "$tmp/long" "$tmp/stream" && [ "$(wc -l <"$tmp/stream")" = 4 ]
report $? "two log streams followed at once; a 200 kB line arrives whole, a line sent in two chunks a second apart is one line" "$(cut -c1-100 "$tmp/stream")"
kube --raw GET "/api/v1/namespaces/$NS/pods/$run-lb/log"
[ "$rc" = 0 ] && [ "$(cat "$tmp/out")" = "first lb"$'\n'"second-lb" ]
report $? "a log read whole as plain text (request_text)" "$(show)"
rm -f "$EXPT_CLUSTER_LOGS/$NS/$run-la.log" "$EXPT_CLUSTER_LOGS/$NS/$run-lb.log"

kube stream "/api/v1/namespaces/$NS/pods/$run-none/log?follow=true"
[ "$rc" = 0 ] && grep -q "^\[0\] end 404 3 .*pods \"$run-none\" not found" "$tmp/out"
report $? "a stream refused (404): its Status decoded at its end" "$(show)"

# --- a batch ---------------------------------------------------------------------------------------
kube many 200 16 POST "/api/v1/namespaces/{ns}/configmaps" \
  '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"'"$run"'-m{i}","labels":{"expt-kc":"'"$run"'","batch":"'"$run"'"}}}'
n=$(K get configmaps -l "batch=$run" --no-headers 2>/dev/null | wc -l)
[ "$rc" = 0 ] && grep -qx '200 ok, 0 failed' "$tmp/out" && [ "$n" = 200 ]
report $? "request_many: 200 ConfigMaps, 16 at a time, all exist afterwards" "$(show)
kubectl counts $n"

kube many 3 2 POST "/api/v1/namespaces/{ns}/configmaps" \
  '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"'"$run"'-m{i}"}}'
[ "$rc" = 6 ] && grep -qx '0 ok, 3 failed' "$tmp/out" && grep -q '3 of 3 requests failed; the first: .*already exists' "$tmp/err"
report $? "request_many: each request's own result; the first failure reported" "$(show)"

# --- 503 is retried ----------------------------------------------------------------------------
# A Service without endpoints: its proxy answers 503 every time, so the client retries
# EXPT_KUBE_RETRIES (5) times, about 1 s apart (no Retry-After here), then reports it.
K create service clusterip "$run-none" --tcp=80:80 >/dev/null && K label service "$run-none" "expt-kc=$run" >/dev/null
kube many 1 1 GET "/api/v1/namespaces/$NS/services/$run-none:80/proxy/" '{}'
[ "$rc" = 5 ] && grep -qx '# 5 retries after 429/503' "$tmp/out" &&
  grep -q 'no endpoints available for service .* (HTTP 503 ServiceUnavailable), still after 5 retries' "$tmp/err"
report $? "503 is retried 5 times, then reported as such" "$(show)"

finish
