# Shared by tests/registry and tests/podman (the style of tests/cluster/lib.sh).
# Sourced, not run. Before sourcing, set h_name (e.g. registry/up) and
# h_default_dir (the directory used without --dir).
# shellcheck shell=bash

h_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
h_t0=${EPOCHREALTIME/./}
log() {
  local us=$(( ${EPOCHREALTIME/./} - h_t0 ))
  printf '%s: [%3d.%01ds] %s\n' "$h_name" $(( us / 1000000 )) $(( us / 100000 % 10 )) "$*" >&2
}
die() { printf '%s: ERROR: %s\n' "$h_name" "$*" >&2; exit 1; }

# h_parse_dir ARGS... -> sets h_dir (absolute, physical when it exists);
# other arguments are left in h_args.
h_parse_dir() {
  h_dir="$h_default_dir"
  h_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) [ $# -ge 2 ] || { echo "$0: --dir needs a value" >&2; exit 2; }
             h_dir="$2"; shift 2 ;;
      --dir=*) h_dir="${1#--dir=}"; shift ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) h_args+=("$1"); shift ;;
    esac
  done
  case "$h_dir" in /*) ;; *) h_dir="$PWD/$h_dir" ;; esac
  h_normalize_dir
}
h_normalize_dir() {
  if [ -d "$h_dir" ]; then
    h_dir="$(cd "$h_dir" && pwd -P)"
  else
    while [ "${h_dir%/}" != "$h_dir" ] && [ "$h_dir" != / ]; do h_dir="${h_dir%/}"; done
  fi
}

# h_pid_alive PIDFILE -> prints the pid when it is alive and its command line
# mentions h_dir (so a recycled pid of another process is never touched).
h_pid_alive() {
  local f="$1" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null)" || return 1
  case "$pid" in ''|*[!0-9]*) return 1 ;; esac
  [ -r "/proc/$pid/cmdline" ] || return 1
  grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 1
  # (the process may end between the test above and the read: quietly "not alive")
  { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$h_dir/" || return 1
  echo "$pid"
}

# h_ended PID: the process is gone or a zombie.
h_ended() {
  ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# h_start NAME COMMAND...: detached (own session, no terminal), output to
# DIR/log/NAME.log, pid in DIR/run/NAME.pid. COMMAND's arguments must name a
# path under DIR (h_pid_alive tells it from a recycled pid by that). Returns
# once the process runs COMMAND, or has already ended: until its exec the
# child is a copy of this shell, whose command line does not name DIR, and
# h_wait_for took such a moment (seconds long on a loaded machine) for an exit
# during start-up, with an empty log.
h_start() {
  local name="$1" pid deadline; shift
  mkdir -p "$h_dir/log" "$h_dir/run"
  setsid "$@" </dev/null >>"$h_dir/log/$name.log" 2>&1 &
  pid=$!
  echo "$pid" > "$h_dir/run/$name.pid"
  deadline=$(( $(date +%s) + 30 ))
  until h_pid_alive "$h_dir/run/$name.pid" >/dev/null || h_ended "$pid"; do
    [ "$(date +%s)" -lt "$deadline" ] ||
      die "$name (pid $pid) still does not name $h_dir/ in its command line after 30 s: $*"
    sleep 0.01
  done
}

# h_exit_status NAME: sets h_status to " (exit status N)" or " (killed by
# signal N)" for NAME's process once it ended, "" while it runs. Not in a
# $(...) subshell: only the shell that started it (h_start) can wait for it.
h_exit_status() {
  local pid st=0
  h_status=""
  pid="$(cat "$h_dir/run/$1.pid" 2>/dev/null)" || return 0
  case "$pid" in ''|*[!0-9]*) return 0 ;; esac
  h_ended "$pid" || return 0
  wait "$pid" 2>/dev/null || st=$?
  if [ "$st" -gt 128 ] && [ "$st" -lt 160 ]; then
    h_status=" (killed by signal $(( st - 128 )))"
  else
    h_status=" (exit status $st)"
  fi
}

# h_stop NAME...: TERM the named processes (pid files in DIR/run), KILL after 15 s.
h_stop() {
  local c pid pids=() n left
  for c in "$@"; do
    if pid="$(h_pid_alive "$h_dir/run/$c.pid")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      printf '%s: stopping %s (pid %s)\n' "$h_name" "$c" "$pid" >&2
    fi
  done
  for (( n=0; n<150 && ${#pids[@]}; n++ )); do
    left=0
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
      printf '%s: pid %s did not stop on TERM; sending KILL\n' "$h_name" "$pid" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for c in "$@"; do rm -f "$h_dir/run/$c.pid"; done
}

# h_try_wait NAME TIMEOUT COMMAND...: poll until COMMAND succeeds (0); 1 when NAME exited,
# 2 when the time is up.
# NAME is this shell's child (h_start): its pid cannot be reused before this shell waits for
# it, so whether it lives is whether it ended, not what its command line says (a process that
# execs itself again, as podman does, briefly has none, which read as "exited").
h_try_wait() {
  local name="$1" timeout="$2"; shift 2
  local deadline=$(( $(date +%s) + timeout )) pid
  pid="$(cat "$h_dir/run/$name.pid" 2>/dev/null)" || return 1
  while ! "$@" >/dev/null 2>&1; do
    h_ended "$pid" && return 1
    [ "$(date +%s)" -lt "$deadline" ] || return 2
    sleep 0.1
  done
}
# h_wait_for NAME TIMEOUT COMMAND...: the same; dies with the end of NAME's log when NAME exits
# or the time is up.
h_wait_for() {
  local name="$1" timeout="$2" rc=0; shift 2
  h_try_wait "$name" "$timeout" "$@" || rc=$?
  case $rc in
    0) ;;
    1) h_exit_status "$name"
       h_tail "$name"; die "$name exited during start-up$h_status" ;;
    *) h_tail "$name"; die "$name not ready after ${timeout}s (still running; waited for: $*)" ;;
  esac
}
h_tail() {
  if [ ! -s "$h_dir/log/$1.log" ]; then
    printf '%s: %s wrote nothing (%s is empty)\n' "$h_name" "$1" "$h_dir/log/$1.log" >&2
    return 0
  fi
  printf '%s: last lines of %s:\n' "$h_name" "$h_dir/log/$1.log" >&2
  tail -n 30 "$h_dir/log/$1.log" | sed 's/^/    /' >&2
}

# h_trace_failures: remember the command whose failure ends the script under
# `set -e` (not inside functions), for h_failed_at.
h_trace_failures() {
  h_err_at=""
  trap 'h_err_at="line $LINENO: $BASH_COMMAND (exit status $?)"' ERR
}
# h_failed_at RC COMMAND: in an EXIT trap, given $? and $BASH_COMMAND there,
# prints " at line N: CMD (exit status N)" naming what failed, or "" when the
# script ended through exit/die (which said why already).
h_failed_at() {
  if [ -n "${h_err_at:-}" ]; then
    printf ' at %s' "$h_err_at"
  elif [ "$1" != 0 ]; then
    case "$2" in exit*|die*|'') ;; *) printf ' in: %s (exit status %s)' "$2" "$1" ;; esac
  fi
}

# h_free_port: a TCP port nobody listens on (127.0.0.1), claimed for this fixture (h_dir) so
# that fixtures starting at the same time in other processes never pick the same one: a claim
# is a directory $h_port_dir/PORT made with mkdir (atomic: one process wins), holding the
# claimer's pid and h_dir. A claim is stale, and another process may take the port, once its
# claimer has exited and nothing listens on the port (the claimer's server, started detached,
# keeps it while it runs). h_release_ports (in each down) drops the claims of h_dir. The claims
# are in /tmp whatever TMPDIR is (ports are the machine's, and so must their claims be);
# EXPT_TEST_PORT_DIR moves them (a test of the claims themselves).
h_port_dir="${EXPT_TEST_PORT_DIR:-/tmp/expt-test-ports}"
h_used_ports=" "
h_free_port() {
  local p i
  mkdir -p "$h_port_dir"
  for (( i=0; i<200; i++ )); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 30000 ))
    case "$h_used_ports" in *" $p "*) continue ;; esac
    [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] || continue
    if ! mkdir "$h_port_dir/$p" 2>/dev/null; then
      # Claimed: a stale claim is removed and the port tried again (mkdir still decides who
      # gets it when several processes do so at once).
      h_port_stale "$p" || continue
      rm -rf "$h_port_dir/$p" 2>/dev/null
      mkdir "$h_port_dir/$p" 2>/dev/null || continue
    fi
    printf '%s\n%s\n' "$$" "$h_dir" > "$h_port_dir/$p/owner"
    h_used_ports+="$p "
    echo "$p"; return 0
  done
  die "no free TCP port found on 127.0.0.1"
}
# h_claim_port PORT: claim a port given on the command line (a restart on the same port); true
# when this fixture holds it afterwards.
h_claim_port() {
  mkdir -p "$h_port_dir"
  if ! mkdir "$h_port_dir/$1" 2>/dev/null; then
    [ "$(sed -n 2p "$h_port_dir/$1/owner" 2>/dev/null)" = "$h_dir" ] || h_port_stale "$1" || return 1
  fi
  printf '%s\n%s\n' "$$" "$h_dir" > "$h_port_dir/$1/owner"
}
# h_port_stale PORT: its claimer is gone and nothing listens on it (a claim being written, with
# no owner file yet, is not stale).
h_port_stale() {
  local pid
  pid=$(sed -n 1p "$h_port_dir/$1/owner" 2>/dev/null) || return 1
  [ -n "$pid" ] || return 1
  [ -d "/proc/$pid" ] && return 1
  [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}
# h_release_ports: drop every claim made for h_dir.
h_release_ports() {
  local c
  for c in "$h_port_dir"/*/owner; do
    [ -f "$c" ] || continue
    [ "$(sed -n 2p "$c" 2>/dev/null)" = "$h_dir" ] && rm -rf "${c%/owner}"
  done
  return 0
}
# h_listener_is NAME PORT: the process listening on 127.0.0.1:PORT belongs to the process group
# of NAME (started by h_start with setsid), not to another server that took the port.
h_listener_is() {
  local pid lp
  pid="$(h_pid_alive "$h_dir/run/$1.pid")" || return 1
  for lp in $(ss -Hltnp "sport = :$2" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2); do
    [ "$(ps -o pgid= -p "$lp" 2>/dev/null | tr -d ' ')" = "$pid" ] && return 0
  done
  return 1
}

# TAP-like reporting for smoke scripts: report STATUS NAME [DETAIL], finish.
h_pass=0
h_fail=0
report() {
  if [ "$1" = 0 ]; then
    h_pass=$((h_pass + 1)); echo "ok - $2"
  else
    h_fail=$((h_fail + 1)); echo "not ok - $2"
    [ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
  fi
  return 0
}
finish() {
  echo "$h_pass passed, $h_fail failed"
  [ "$h_fail" = 0 ]
}
