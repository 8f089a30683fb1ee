#!/usr/bin/env bash
# The fixtures' process helpers (tests/lib/harness.sh): h_start returns only once the process
# runs its command, so that h_wait_for never takes a child still on its way to exec for one
# that exited (tests/podman/up once failed so, with an empty log, in a loaded make test); and
# a start-up that fails says how the process ended and that its log is empty.
set -euo pipefail
h_name=harness/test
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/harness.sh"
h_dir="$(mktemp -d "${TMPDIR:-/tmp}/expt-harness.XXXXXX")"
reader=""
cleanup() {
  [ -z "$reader" ] || kill "$reader" 2>/dev/null || true
  h_stop slow 2>/dev/null
  rm -rf "$h_dir"
}
trap cleanup EXIT

# A slow exec, made long on purpose: the child opens its log before it execs, and this log is
# a FIFO that nobody reads for a second, so for that second the child is a copy of this shell.
mkdir -p "$h_dir/log"
mkfifo "$h_dir/log/slow.log"
(sleep 1; cat "$h_dir/log/slow.log" >/dev/null) &
reader=$!
(sleep 2; touch "$h_dir/ready") &
: > "$h_dir/tailed"
h_start slow tail -f "$h_dir/tailed"
if out="$(h_wait_for slow 20 test -e "$h_dir/ready" 2>&1)"; then
  report 0 "a process slow to exec is waited for, not taken for one that exited"
else
  report 1 "a process slow to exec is waited for, not taken for one that exited" "$out"
fi
h_stop slow 2>/dev/null

# A start-up that fails: how the process ended, and that it wrote nothing.
out="$(h_dir="$h_dir" h_lib="$(dirname "${BASH_SOURCE[0]}")/harness.sh" bash -c '
  set -euo pipefail; h_name=harness/test; . "$h_lib"
  h_start quiet sh -c "sleep 0.2; exit 3" "$h_dir/quiet"
  h_wait_for quiet 20 false' 2>&1)" || true
case "$out" in
  *"quiet exited during start-up (exit status 3)"*) report 0 "the exit status is named" ;;
  *) report 1 "the exit status is named" "$out" ;;
esac
case "$out" in
  *"quiet wrote nothing"*) report 0 "an empty log is said to be empty" ;;
  *) report 1 "an empty log is said to be empty" "$out" ;;
esac

# What made a fixture script end under set -e is named in its EXIT trap.
out="$(h_lib="$(dirname "${BASH_SOURCE[0]}")/harness.sh" bash -c '
  set -euo pipefail; h_name=harness/test; . "$h_lib"
  h_trace_failures
  trap '\''echo "failed$(h_failed_at "$?" "$BASH_COMMAND")"'\'' EXIT
  v="$(false)"' 2>&1)" || true
case "$out" in
  *'failed at line 5: v="$(false)" (exit status 1)'*) report 0 "the failed command is named" ;;
  *) report 1 "the failed command is named" "$out" ;;
esac
finish
