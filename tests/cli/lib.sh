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

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
	exit $?
}
