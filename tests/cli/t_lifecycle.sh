#!/usr/bin/env bash
# Detached runs, logs -f, stop, a supervisor that dies, Ctrl-C.
. "$(dirname "$0")/lib.sh"

# The script's absolute path marks this test's processes (pgrep below sees the whole machine).
cat > expt.yaml <<YAML
name: life
command: python3 $T/slow.py
args: auto
params: {n: 3}
YAML
cat > slow.py <<'PY'
import sys, time
n = int(sys.argv[2])
for i in range(n):
    print(f"tick {i}", flush=True)
    time.sleep(0.3)
print("end", flush=True)
PY

# Detach: returns at once with the ids; the runs keep going.
expect_code "run -d returns at once" 0 "$EXPT" run $RUN_BACKEND -d n=2,3
contains "prints the run ids" "$out" "life-1"
expect_code "logs -f follows until every run ends" 0 timeout 30 "$EXPT" logs -f life
equals "both runs' lines, prefixed" "$(echo "$out" | grep -c '| end')" "2"
contains "prefix" "$out" "life-2 | tick 2"
expect_code "ps after detach" 0 "$EXPT" ps life -o json
equals "detached runs finished" "$(echo "$out" | json 'sorted(r["status"] for r in d)')" "['succeeded', 'succeeded']"

# expt stop on a detached run.
expect_code "a long detached run" 0 "$EXPT" run $RUN_BACKEND -d n=100
wait_status life-3 running
expect_code "ps sees it running" 0 "$EXPT" ps life -o json
equals "running" "$(echo "$out" | json '[r["status"] for r in d if r["id"]=="life-3"][0]')" "running"
pid=$(echo "$out" | json '[r["pid"] for r in d if r["id"]=="life-3"][0]')
expect_code "stop it" 0 "$EXPT" stop life-3 --grace 2
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then fail "the process group is gone"; else pass "the process group is gone"; fi
expect_code "ps after stop" 0 "$EXPT" ps life -o json
equals "marked stopped" "$(echo "$out" | json '[r["status"] for r in d if r["id"]=="life-3"][0]')" "stopped"

# expt stop on a run with retries: stopped, and not retried.
expect_code "a detached run with retries" 0 "$EXPT" run $RUN_BACKEND -d n=100 retries=5
rid=$(echo "$out" | grep -o 'life-[0-9]*' | head -1)
wait_status "$rid" running
expect_code "stop the run with retries" 0 "$EXPT" stop "$rid" --grace 1
sleep 2 # a retry, were there to be one, would have started by now
expect_code "debug -o json after stop" 0 "$EXPT" debug "$rid" -o json
equals "still stopped after its retries" "$(echo "$out" | json 'd["status"]')" "stopped"
equals "no retry recorded" "$(echo "$out" | json '[e["kind"] for e in d["events"] if e["kind"] == "retry"]')" "[]"
if pgrep -f "$T/slow.py --n 100" >/dev/null; then fail "no retried process left" "$(pgrep -af "$T/slow.py")"; else pass "no retried process left"; fi

# A supervisor killed with SIGKILL: its run is detected, never left running.
expect_code "another detached run" 0 "$EXPT" run $RUN_BACKEND -d n=100
wait_status life-5 running
sup=$("$EXPT" ps life -o json | json '[r["supervisor_pid"] for r in d if r["id"]=="life-5"][0]')
if [ -n "$sup" ] && [ "$sup" != None ] && [ "$sup" -gt 0 ]; then
	kill -9 "$sup"
	sleep 0.3
	run_pid=$("$EXPT" ps life -o json | json '[r["pid"] for r in d if r["id"]=="life-5"][0]')
	kill -9 -- "-$run_pid" 2>/dev/null
	expect_code "ps after the supervisor died" 0 "$EXPT" ps life -o json
	equals "marked failed" "$(echo "$out" | json '[r["status"] for r in d if r["id"]=="life-5"][0]')" "failed"
	# Its process group outlived the supervisor for a moment (adopted), then went: lost.
	contains "reason: lost" "$(echo "$out" | json '[r["reason"] for r in d if r["id"]=="life-5"][0]')" "lost"
	expect_code "debug explains it" 0 "$EXPT" debug life-5
	contains "supervisor named" "$out" "supervisor"
else
	fail "supervisor pid recorded for life-5"
fi

# expt stop of a whole experiment while its supervisor starts the next queued run: nothing
# keeps running, everything ends stopped.
mkdir race && (
	cd race
	printf 'name: sl\ncommand: ["sleep", "7"]\nargs: none\nparams: {i: 0}\nsweep: {i: [1, 2, 3]}\nparallel: 1\n' >expt.yaml
	"$EXPT" run $RUN_BACKEND -d -q >/dev/null 2>&1
	sleep 0.5
	"$EXPT" stop sl --grace 1 >/dev/null
	sleep 2.5
	if pgrep -f "^sleep 7" >/dev/null; then echo "left running"; fi
	"$EXPT" ps sl -o json | json 'sorted(r["status"] for r in d)'
) >race.out 2>&1
equals "stop wins over the supervisor starting the next run" "$(cat race.out)" "['stopped', 'stopped', 'stopped']"

# With EXPT_HOME, run -d still detaches at once and logs beside the store.
mkdir -p home/store && (
	cd home
	printf 'name: h\ncommand: ["sleep", "3"]\nargs: none\n' >expt.yaml
	start=$(date +%s%N)
	ids=$(EXPT_HOME="$PWD/store" "$EXPT" run $RUN_BACKEND -d 2>/dev/null)
	echo "took=$((($(date +%s%N) - start) / 1000000)) ids=$ids"
) >home.out 2>&1
took=$(sed -n 's/.*took=\([0-9]*\).*/\1/p' home.out)
if [ -n "$took" ] && [ "$took" -lt 2000 ]; then pass "run -d returns at once with EXPT_HOME"; else fail "run -d returns at once with EXPT_HOME" "$(cat home.out)"; fi
contains "the id is printed" "$(cat home.out)" "ids=h-1"
sleep 3.5
[ -s home/store/supervisor.log ] && pass "supervisor.log beside the store" || fail "supervisor.log beside the store"

# Ctrl-C (SIGINT to expt run) stops every run and marks them stopped; exit 130.
"$EXPT" run $RUN_BACKEND n=100,101 >ctrlc.out 2>&1 &
runner=$!
wait_status life-6 running
kill -INT "$runner"
wait "$runner"
equals "Ctrl-C exits 130" "$?" "130"
expect_code "ps after Ctrl-C" 0 "$EXPT" ps life -o json
equals "both marked stopped" "$(echo "$out" | json 'sorted(r["status"] for r in d if r["id"] in ("life-6","life-7"))')" "['stopped', 'stopped']"
for _ in $(seq 30); do pgrep -f "$T/slow.py --n 10[01]" >/dev/null || break; sleep 0.1; done
if pgrep -f "$T/slow.py --n 10[01]" >/dev/null; then fail "no run process left" "$(pgrep -af "$T/slow.py")"; else pass "no run process left"; fi
finish
