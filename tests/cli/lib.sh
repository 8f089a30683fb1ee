# Helpers for black-box CLI tests: each test file sources this, runs checks, calls finish.
# EXPT_BIN is the binary under test (set by ctest); each test gets a fresh temp directory.
set -u
EXPT=${EXPT_BIN:?EXPT_BIN must point at the expt binary}
SRC=${EXPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d "${TMPDIR:-/tmp}/expt-test.XXXXXX")
unset EXPT_HOME EXPT_RUN_ID EXPT_GPUS
export NO_COLOR=1
passed=0
failed=0
trap 'rm -rf "$T"' EXIT
cd "$T"

pass() { passed=$((passed + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/#   /'; return 0; }

# check NAME COMMAND...: passes when the command exits 0.
check() { local name=$1; shift; if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi; }
# expect_code NAME CODE COMMAND...: passes when the command exits with CODE (stdout+stderr in $out).
expect_code() {
	local name=$1 want=$2 got; shift 2
	out=$("$@" 2>&1); got=$?
	if [ "$got" -eq "$want" ]; then pass "$name"; else fail "$name" "exit $got, wanted $want: $out"; fi
}
# contains NAME HAYSTACK NEEDLE
contains() {
	case "$2" in *"$3"*) pass "$1" ;; *) fail "$1" "expected to find: $3"$'\n'"in: $2" ;; esac
}
not_contains() {
	case "$2" in *"$3"*) fail "$1" "did not expect: $3"$'\n'"in: $2" ;; *) pass "$1" ;; esac
}
equals() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got:    $2"$'\n'"wanted: $3"; fi; }
# json EXPR < json: evaluates a Python expression over the parsed JSON `d`.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The backend the black-box tests run on (EXPT_TEST_BACKEND, default local): tests start runs
# with `"$EXPT" run $RUN_BACKEND ...` and ask about them only through expt, never through pids.
# EXPT_TEST_BACKEND_ARGS adds overrides the backend needs (container: image=... and
# container.network=none; tests/container/t_backend.sh sets them).
# EXPT_TEST_BACKEND_YAML is spec text a backend needs that overrides cannot say (kubernetes: the
# image build, namespace and node; tests/cluster/t_backend.sh): `backend_spec FILE` appends it.
BACKEND=${EXPT_TEST_BACKEND:-local}
RUN_BACKEND="--backend $BACKEND ${EXPT_TEST_BACKEND_ARGS:-}"
backend_spec() { if [ -n "${EXPT_TEST_BACKEND_YAML:-}" ]; then printf '%s\n' "$EXPT_TEST_BACKEND_YAML" >>"$1"; fi; }

# status_of RUN: the run's status as `expt ps` says ("" when there is no such run).
status_of() {
	"$EXPT" ps -o json 2>/dev/null | python3 -c "
import json, sys
d = json.load(sys.stdin)
print(next((r['status'] for r in d if r['id'] == sys.argv[1]), ''))" "$1" 2>/dev/null
}
# wait_status RUN STATUS[|STATUS...] [SECONDS]: waits until the run is in one of the statuses
# (default 30 s); fails the test with what it was otherwise.
wait_status() {
	local run=$1 want=$2 limit=${3:-30} st i
	for ((i = 0; i < limit * 10; i++)); do
		st=$(status_of "$run")
		case "|$want|" in *"|$st|"*) pass "$run is $st"; return 0 ;; esac
		sleep 0.1
	done
	fail "$run becomes $want" "still '$st' after ${limit}s"
	return 1
}
# wait_lines RUN PATTERN N [SECONDS]: waits until the run's output has N lines matching PATTERN.
wait_lines() {
	local run=$1 pat=$2 n=$3 limit=${4:-30} i c
	for ((i = 0; i < limit * 10; i++)); do
		c=$("$EXPT" logs "$run" 2>/dev/null | grep -c -- "$pat")
		[ "$c" -ge "$n" ] && return 0
		sleep 0.1
	done
	fail "$run prints $n lines of '$pat'" "$c after ${limit}s"
	return 1
}
# run_gone RUN: passes when expt knows no such run.
run_gone() {
	if [ -z "$(status_of "$1")" ]; then pass "$1 is gone"; else fail "$1 is gone" "$(status_of "$1")"; fi
}

# The env a run needs to load this build's libexpt into a plain python3 (the ASan build's is
# sanitized: its runtimes must be preloaded, leak checks off for the interpreter), as a YAML flow
# map for a spec's `env:`; "{}" for a normal build.
binding_env() {
	local lib="${EXPT_BUILD_DIR:-$(dirname "$EXPT")}/libexpt.so" rt
	rt=$(ldd "$lib" 2>/dev/null | awk '/libasan|libubsan/ {print $3}' | tr '\n' ' ')
	if [ -n "${rt// /}" ]; then
		echo "{LD_PRELOAD: \"${rt% }\", ASAN_OPTIONS: \"detect_leaks=0\"}"
	else
		echo "{}"
	fi
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
	exit $?
}
