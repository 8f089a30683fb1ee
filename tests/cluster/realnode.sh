# The real node of the test cluster (node-real): containerd (Debian) and a
# kubelet (built by tests/cluster/build --kubelet) in a network namespace of
# their own. Sourced by lib.sh; realnode_up is called by tests/cluster/up
# --real-node, realnode_stop by everything that stops the cluster.
# shellcheck shell=bash
#
# Layout (R = DIR/real):
#   R/netns.name, R/addr   the namespace's name and its addresses
#   R/containerd/          containerd's root and state (pod netns under state)
#   R/containerd.toml, R/containerd.sock, R/certs.d/<registry>/hosts.toml
#   R/cni/                 CNI config (bridge + host-local, no masquerade)
#   R/kubelet/             --root-dir;  R/pod-logs: podLogsDir
#   R/sysctl.saved         the kernel settings the kubelet changes, as they were
#                          before the first real node on this machine started
#                          (/run/expt-test-realnode: one registration per
#                          running node; the last one to stop restores them)
#   R/cgroup.name          cgroupRoot (/expt-test-<id>) made in every v1 hierarchy
# Processes (pid files in DIR/run): api-proxy-out, api-proxy-in,
# registry-proxy-out, registry-proxy-in, containerd, kubelet.
#
# Networking: a veth pair, 10.A.B.1/30 outside and 10.A.B.2/30 inside (the
# node's InternalIP, where the API server reaches the kubelet); no default
# route inside, so nothing in it can leave. Pods get 10.A.B+1.0/24 on a
# bridge inside the namespace. The kubelet reaches the API server, and
# containerd the test registry, through socat: 127.0.0.1:PORT inside -> a
# unix socket in R -> 127.0.0.1:PORT outside, so the registry's name
# (127.0.0.1:PORT/...) is the same inside and outside.

REALNODE_NAME=node-real
REALNODE_TAINT=expt-test/real-node
# Global kernel settings the kubelet sets at start (setupKernelTunables).
realnode_sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Machine-wide: several harnesses (worktrees, CI) may run a real node at once,
# and the settings are global. The first to start saves them, the last to stop
# restores them. A registration whose R is gone is stale and ignored.
rn_machine_dir=/run/expt-test-realnode

# rn_sysctl_register R: register R; save the settings if it is the first.
rn_sysctl_register() {
  local R="$1" k f live=0
  mkdir -p "$rn_machine_dir/users"
  exec 7>"$rn_machine_dir/lock"; flock 7
  for f in "$rn_machine_dir"/users/*; do
    [ -f "$f" ] || continue
    if [ -d "$(cat "$f")" ] && [ "$(cat "$f")" != "$R" ]; then live=1; else rm -f "$f"; fi
  done
  if [ "$live" = 0 ] || [ ! -f "$rn_machine_dir/sysctl.saved" ]; then
    : > "$rn_machine_dir/sysctl.saved"
    for k in "${realnode_sysctls[@]}"; do
      printf '%s=%s\n' "$k" "$(sysctl -n "$k")" >> "$rn_machine_dir/sysctl.saved"
    done
  fi
  cp "$rn_machine_dir/sysctl.saved" "$R/sysctl.saved"
  printf '%s\n' "$R" > "$rn_machine_dir/users/$(printf '%s' "$R" | sha256sum | cut -c1-16)"
  flock -u 7; exec 7>&-
}

# rn_sysctl_unregister R: unregister R; restore the settings if no node is left.
rn_sysctl_unregister() {
  local R="$1" f live=0 k v saved
  [ -d "$rn_machine_dir/users" ] || return 0
  exec 7>"$rn_machine_dir/lock"; flock 7
  rm -f "$rn_machine_dir/users/$(printf '%s' "$R" | sha256sum | cut -c1-16)"
  for f in "$rn_machine_dir"/users/*; do
    [ -f "$f" ] || continue
    if [ -d "$(cat "$f")" ] && [ "$(cat "$f")" != "$R" ]; then live=1; else rm -f "$f"; fi
  done
  saved="$rn_machine_dir/sysctl.saved"
  [ -f "$saved" ] || saved="$R/sysctl.saved"
  if [ "$live" = 0 ] && [ -f "$saved" ]; then
    while IFS='=' read -r k v; do
      [ -n "$k" ] && [ "$(sysctl -n "$k" 2>/dev/null)" != "$v" ] && sysctl -q -w "$k=$v" >/dev/null 2>&1 || true
    done < "$saved"
    rm -f "$rn_machine_dir/sysctl.saved"
  elif [ "$live" = 1 ]; then
    rn_log "another real node still runs on this machine: kernel settings left for it to restore"
  fi
  flock -u 7; exec 7>&-
}

rn_log() { printf 'cluster/real-node: %s\n' "$*" >&2; }

# realnode_stop: stop node-real and remove everything realnode_up made.
# Needs cluster_dir; uses the API server (if still up) to delete the node's
# pods first so the kubelet tears them down properly.
realnode_stop() {
  local R="$cluster_dir/real" sock ns c id
  [ -d "$R" ] || return 0
  sock="$R/containerd.sock"
  # 1. Graceful: the kubelet stops the pods (containers, sandboxes, CNI, netns).
  local kubectl="${KUBE_BIN:+$KUBE_BIN/kubectl}"
  [ -n "$kubectl" ] || kubectl="$(sed -n 's/^export EXPT_KUBECTL=//p' "$cluster_dir/env" 2>/dev/null)"
  if cluster_pid_alive "$cluster_dir/run/kubelet.pid" >/dev/null && [ -x "$kubectl" ] && [ -f "$cluster_dir/admin.kubeconfig" ]; then
    "$kubectl" --kubeconfig "$cluster_dir/admin.kubeconfig" --request-timeout 10s delete pods -A \
      --field-selector "spec.nodeName=$REALNODE_NAME" --grace-period 0 --force --wait=false >/dev/null 2>&1 || true
    local n
    for (( n=0; n<100; n++ )); do
      [ -z "$(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  # 2. The kubelet, so that it restarts nothing.
  cluster_stop_components kubelet
  # 3. Whatever still runs in containerd: kill the tasks, delete tasks and containers.
  if cluster_pid_alive "$cluster_dir/run/containerd.pid" >/dev/null; then
    for id in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr -a "$sock" -n k8s.io containers ls -q 2>/dev/null); do
      ctr -a "$sock" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  cluster_stop_components containerd api-proxy-in api-proxy-out registry-proxy-in registry-proxy-out
  # 4. Shims left behind (their command line names our containerd socket).
  local p
  for p in /proc/[0-9]*; do
    case "$(cat "$p/comm" 2>/dev/null)" in containerd-shim*) ;; *) continue ;; esac
    tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "$sock" || continue
    rn_log "killing leftover shim ${p#/proc/}"
    kill -KILL "${p#/proc/}" 2>/dev/null || true
  done
  # 5. Mounts under R (rootfs overlays, shm, pod netns, kubelet volumes), deepest first.
  awk -v d="$R/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  # 6. The namespace (its veth pair goes with it).
  if [ -f "$R/netns.name" ]; then
    ns="$(cat "$R/netns.name")"
    if [ -e "/run/netns/$ns" ]; then
      ip netns delete "$ns" 2>/dev/null || rn_log "could not delete netns $ns"
    fi
  fi
  # 7. The cgroups under cgroupRoot (only empty ones can go; rmdir refuses others).
  if [ -f "$R/cgroup.name" ]; then
    c="$(cat "$R/cgroup.name")"
    case "$c" in /expt-test-*)
      local h
      for h in /sys/fs/cgroup/*/; do
        [ -e "$h/cgroup.procs" ] || continue
        [ -d "$h${c#/}" ] && find "$h${c#/}" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ -d "$h${c#/}" ] && rn_log "cgroup $h${c#/} still in use"
      done ;;
    esac
  fi
  # 8. Kernel settings back as they were.
  rn_sysctl_unregister "$R"
  # 9. State (kept: the logs in DIR/log).
  if awk -v d="$R/" 'index($5, d) == 1 { f=1 } END { exit !f }' /proc/self/mountinfo; then
    rn_log "mounts remain under $R; leaving it"
  else
    rm -rf "$R"
  fi
}

# realnode_up: start node-real. Needs (from up): D, P, API_PORT, KUBE_BIN,
# KUBELET_BIN, start, wait_for, log, die, cert, kubeconfig, certuser, k,
# and the registry: RN_REGISTRY (127.0.0.1:PORT), RN_PAUSE_IMAGE.
realnode_up() {
  local R="$D/real" id ns a b i host inner podnet
  for tool in ip nsenter socat containerd ctr runc sysctl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required for --real-node (scripts/deps --test installs it)"
  done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] \
    || die "CNI plugins missing in /usr/lib/cni (apt-get install containernetworking-plugins)"
  [ "$(id -u)" = 0 ] || die "--real-node needs root (network namespace, containerd)"
  # Written for these VMs' cgroup v1 (a cgroupRoot made in each hierarchy);
  # on cgroup v2 the globs below would make cgroups in the wrong places.
  [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] && [ -d /sys/fs/cgroup/memory ] \
    || die "--real-node is written for cgroup v1 (as on the project's VMs); this machine has $(stat -fc %T /sys/fs/cgroup 2>/dev/null) at /sys/fs/cgroup: run without it (EXPT_TEST_REAL_NODE=0)"
  mkdir -p "$R"/{kubelet,pod-logs,cni,cni-ipam,certs.d,containerd}

  id="$(printf '%s' "$D" | sha256sum | cut -c1-8)"
  ns="expt-$id"
  echo "$ns" > "$R/netns.name"
  echo "/expt-test-$id" > "$R/cgroup.name"

  # Kernel settings the kubelet will change: saved now, restored by realnode_stop.
  rn_sysctl_register "$R"

  # --- network namespace --------------------------------------------------------
  [ -e "/run/netns/$ns" ] && ip netns delete "$ns" 2>/dev/null || true
  for (( i=0; i<50; i++ )); do
    a=$(( 200 + RANDOM % 55 )); b=$(( (RANDOM % 127) * 2 ))
    if ! ip -o -4 addr show | grep -qE " 10\.$a\.($b|$((b + 1)))\." && ! ip -4 route show | grep -qE "^10\.$a\.($b|$((b + 1)))\."; then break; fi
  done
  host="10.$a.$b.1"; inner="10.$a.$b.2"; podnet="10.$a.$((b + 1)).0/24"
  printf 'host=%s\ninner=%s\npods=%s\n' "$host" "$inner" "$podnet" > "$R/addr"
  log "real node: network namespace $ns ($inner, pods $podnet)"
  ip netns add "$ns"
  ip link add "ex${id:0:6}h" type veth peer name "ex${id:0:6}n"
  ip link set "ex${id:0:6}n" netns "$ns"
  ip addr add "$host/30" dev "ex${id:0:6}h"
  ip link set "ex${id:0:6}h" up
  NSX() { nsenter --net="/run/netns/$ns" "$@"; }
  NSX ip link set lo up
  NSX ip link set "ex${id:0:6}n" name eth0
  NSX ip addr add "$inner/30" dev eth0
  NSX ip link set eth0 up

  # --- proxies: API server and registry, 127.0.0.1 inside -> outside ------------------
  start api-proxy-out socat "UNIX-LISTEN:$R/api.sock,fork,mode=600" "TCP:127.0.0.1:$API_PORT"
  start registry-proxy-out socat "UNIX-LISTEN:$R/registry.sock,fork,mode=600" "TCP:$RN_REGISTRY"
  wait_for api-proxy-out 10 test -S "$R/api.sock"
  wait_for registry-proxy-out 10 test -S "$R/registry.sock"
  start api-proxy-in nsenter --net="/run/netns/$ns" socat "TCP-LISTEN:$API_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$R/api.sock"
  start registry-proxy-in nsenter --net="/run/netns/$ns" socat "TCP-LISTEN:${RN_REGISTRY##*:},bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$R/registry.sock"
  wait_for registry-proxy-in 10 nsenter --net="/run/netns/$ns" curl -sf -o /dev/null "http://$RN_REGISTRY/v2/"

  # --- containerd -------------------------------------------------------------------
  mkdir -p "$R/certs.d/$RN_REGISTRY"
  cat > "$R/certs.d/$RN_REGISTRY/hosts.toml" <<EOF
server = "http://$RN_REGISTRY"
[host."http://$RN_REGISTRY"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
  cat > "$R/cni/10-expt-real.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "expt-real",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$podnet"}]],
        "dataDir": "$R/cni-ipam"
      }
    }
  ]
}
EOF
  cat > "$R/containerd.toml" <<EOF
version = 2
root = "$R/containerd/root"
state = "$R/containerd/state"
oom_score = 0
[grpc]
  address = "$R/containerd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$R/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$RN_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$R/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$R/certs.d"
EOF
  log "real node: starting containerd"
  start containerd nsenter --net="/run/netns/$ns" containerd --config "$R/containerd.toml"
  wait_for containerd 30 ctr -a "$R/containerd.sock" version

  # --- kubelet ------------------------------------------------------------------------
  cert kubelet "/O=system:nodes/CN=system:node:$REALNODE_NAME" clientAuth
  cert kubelet-serving "/O=system:nodes/CN=system:node:$REALNODE_NAME" serverAuth "DNS:$REALNODE_NAME, IP:$inner"
  kubeconfig "$R/kubelet.kubeconfig" "system:node:$REALNODE_NAME" "$(certuser kubelet)"
  # The cgroup every pod goes under, in each v1 hierarchy (the kubelet wants it to exist).
  local cg h
  cg="$(cat "$R/cgroup.name")"
  for h in /sys/fs/cgroup/*/; do
    [ -e "$h/cgroup.procs" ] || continue   # a v1 hierarchy's root
    mkdir -p "$h${cg#/}" 2>/dev/null || true
    if [ -f "$h/cpuset.cpus" ]; then   # a new cpuset is empty: give it the parent's
      cat "$h/cpuset.cpus" > "$h${cg#/}/cpuset.cpus"
      cat "$h/cpuset.mems" > "$h${cg#/}/cpuset.mems"
    fi
  done
  cat > "$R/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $inner
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$R/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $cg
cgroupsPerQOS: true
failSwapOn: false
maxOpenFiles: 20000
oomScoreAdj: 0
podLogsDir: $R/pod-logs
resolvConf: ""
registerNode: true
registerWithTaints:
- {key: $REALNODE_TAINT, value: "true", effect: NoSchedule}
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusUpdateFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 60s
shutdownGracePeriod: 0s
EOF
  log "real node: starting kubelet $REALNODE_NAME"
  start kubelet nsenter --net="/run/netns/$ns" "$KUBELET_BIN/kubelet" \
    --config "$R/kubelet.yaml" \
    --kubeconfig "$R/kubelet.kubeconfig" \
    --root-dir "$R/kubelet" \
    --hostname-override "$REALNODE_NAME" \
    --node-ip "$inner" \
    --node-labels "type=real,expt-test/real-node=true" \
    --v 1
  wait_for kubelet 60 nsenter --net="/run/netns/$ns" curl -sf http://127.0.0.1:10248/healthz
  real_ready() {
    [ "$(k get node "$REALNODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
  }
  wait_for kubelet 90 real_ready
  log "real node: $REALNODE_NAME Ready ($inner)"
}
