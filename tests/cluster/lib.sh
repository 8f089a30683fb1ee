# Shared by tests/cluster/{up,down,smoke}. Sourced, not run.
# shellcheck shell=bash

cluster_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cluster_repo="$(cd "$cluster_here/../.." && pwd)"

# Components in start order; down stops them in reverse.
cluster_components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# cluster_parse_dir ARGS... -> sets cluster_dir (absolute), rejects other args
# (up also takes --real-node and --registry-dir: cluster_real_node, cluster_registry_dir).
cluster_parse_dir() {
  cluster_dir="${EXPT_CLUSTER_DIR:-$cluster_repo/build/cluster}"
  cluster_real_node="${EXPT_TEST_REAL_NODE:-0}"
  cluster_registry_dir="${EXPT_REGISTRY_DIR:-$cluster_repo/build/registry}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --real-node) cluster_real_node=1; shift ;;
      --no-real-node) cluster_real_node=0; shift ;;
      --registry-dir) [ $# -ge 2 ] || { echo "$0: --registry-dir needs a value" >&2; exit 2; }
             cluster_registry_dir="$2"; shift 2 ;;
      --registry-dir=*) cluster_registry_dir="${1#--registry-dir=}"; shift ;;
      --dir) [ $# -ge 2 ] || { echo "$0: --dir needs a value" >&2; exit 2; }
             cluster_dir="$2"; shift 2 ;;
      --dir=*) cluster_dir="${1#--dir=}"; shift ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) echo "$0: unknown argument: $1" >&2; exit 2 ;;
    esac
  done
  case "$cluster_dir" in
    /*) ;;
    *) cluster_dir="$PWD/$cluster_dir" ;;
  esac
  cluster_normalize_dir
}

# One spelling per directory (pid ownership is matched on it): physical path
# when the directory exists, no trailing slashes.
cluster_normalize_dir() {
  if [ -d "$cluster_dir" ]; then
    cluster_dir="$(cd "$cluster_dir" && pwd -P)"
  else
    while [ "${cluster_dir%/}" != "$cluster_dir" ] && [ "$cluster_dir" != / ]; do cluster_dir="${cluster_dir%/}"; done
  fi
}

# cluster_pid_alive PIDFILE -> prints the pid when it is one of ours and alive.
# "Ours": the process's command line mentions the cluster directory, so a
# recycled pid of an unrelated process is never touched.
cluster_pid_alive() {
  local f="$1" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null)" || return 1
  case "$pid" in ''|*[!0-9]*) return 1 ;; esac
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$cluster_dir/" || return 1
  echo "$pid"
}

# shellcheck source=realnode.sh
. "$cluster_here/realnode.sh"

# cluster_stop_all: stop every component started in cluster_dir (by pid file),
# the real node (and all it made) first.
cluster_stop_all() {
  realnode_stop
  local i list=()
  for (( i=${#cluster_components[@]}-1; i>=0; i-- )); do list+=("${cluster_components[$i]}"); done
  cluster_stop_components "${list[@]}"
}

# cluster_stop_components NAME...: TERM them (in that order), KILL after 15 s.
cluster_stop_components() {
  local c pid pids=() n
  for c in "$@"; do
    if pid="$(cluster_pid_alive "$cluster_dir/run/$c.pid")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      printf 'cluster: stopping %s (pid %s)\n' "$c" "$pid" >&2
    fi
  done
  # Wait up to 15 s for all of them, then KILL what is left.
  for (( n=0; n<150; n++ )); do
    local left=0
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
      printf 'cluster: pid %s did not stop on TERM; sending KILL\n' "$pid" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for c in "$@"; do rm -f "$cluster_dir/run/$c.pid"; done
}
