#!/usr/bin/env bash
# The store as users meet it: one written by the previous release opens and is upgraded in
# place; one on a read-only path can still be read.
. "$(dirname "$0")/lib.sh"

# A v1 store (tests/unit/data/store-v1.sql, written by expt 0.1.0) under a project.
mkdir -p old/.expt
sqlite3 old/.expt/expt.db < "$SRC/tests/unit/data/store-v1.sql"
expect_code "ps reads a v1 store" 0 env -C old "$EXPT" ps legacy -o json
equals "its runs, as they were" "$(echo "$out" | json '[(r["id"], r["status"], r["exit_code"]) for r in d]')" "[('legacy-1', 'succeeded', 0), ('legacy-2', 'failed', 3)]"
equals "upgraded in place" "$(sqlite3 old/.expt/expt.db 'PRAGMA user_version')" "2"
expect_code "compare still has the metrics" 0 env -C old "$EXPT" compare legacy
contains "loss" "$out" "0.5"

# A read-only file system: reads work, writes say why they cannot.
cat > expt.yaml <<'YAML'
name: ro
command: python3 job.py
args: none
YAML
echo "print('expt: loss=0.25')" > job.py
expect_code "a run" 0 "$EXPT" run -q
mkdir -p ro
if mount --bind "$T" ro 2>/dev/null && mount -o remount,bind,ro ro 2>/dev/null; then
	trap 'umount "$T/ro" 2>/dev/null; rm -rf "$T"' EXIT
	expect_code "ps on a read-only store" 0 env -C ro "$EXPT" ps -o json
	equals "sees the run" "$(echo "$out" | json '[r["status"] for r in d]')" "['succeeded']"
	expect_code "show on a read-only store" 0 env -C ro "$EXPT" show ro-1
	expect_code "compare on a read-only store" 0 env -C ro "$EXPT" compare ro
	contains "with its metric" "$out" "0.25"
	expect_code "logs on a read-only store" 0 env -C ro "$EXPT" logs ro-1
	expect_code "run says it cannot write" 4 env -C ro "$EXPT" run
	contains "and why" "$out" "is read-only"
	umount ro
else
	echo "# a read-only bind mount is not possible here (not root?): the read-only checks did not run"
fi

finish
