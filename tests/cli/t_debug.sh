#!/usr/bin/env bash
# expt debug names the cause of each kind of failure: signal, memory limit, timeout, exit code;
# given an experiment, it groups the failed runs by cause.
. "$(dirname "$0")/lib.sh"

cat > expt.yaml <<'YAML'
name: broken
command: python3 fail.py
args: none
params: {mode: exit3}
sweep: {mode: [kill, oom, sleep, exit3]}
parallel: 4
timeout: 2s
resources: {memory: 64Mi}
YAML
cat > fail.py <<'PY'
import os, signal, sys, time
mode = os.environ["EXPT_PARAM_MODE"]
print("starting " + mode, flush=True)
print("about to fail: " + mode, file=sys.stderr, flush=True)
if mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "oom":
    hog = []
    for _ in range(100):
        hog.append(bytearray(8 * 1024 * 1024))
        time.sleep(0.02)
    time.sleep(5)
elif mode == "sleep":
    time.sleep(60)
else:
    sys.exit(3)
PY

expect_code "a sweep with failures exits 1" 1 "$EXPT" run
contains "summary counts failures" "$out" "4 runs: 0 succeeded, 4 failed"
contains "summary points at debug" "$out" "expt debug broken-"

expect_code "debug SIGKILL" 0 "$EXPT" debug broken-1
contains "names the signal" "$out" "killed by SIGKILL"
contains "shows the last stderr lines" "$out" "about to fail: kill"
contains "shows the exact command" "$out" "python3 fail.py"
contains "shows the env" "$out" "EXPT_PARAM_MODE=kill"

expect_code "debug memory" 0 "$EXPT" debug broken-2
contains "names the memory limit" "$out" "out of memory"
contains "says the limit" "$out" "64Mi"
contains "hints at resources.memory" "$out" "resources.memory"

expect_code "debug timeout" 0 "$EXPT" debug broken-3
contains "names the timeout" "$out" "timeout"
contains "says how long" "$out" "2"

expect_code "debug exit code" 0 "$EXPT" debug broken-4
contains "names the exit code" "$out" "exited with code 3"

expect_code "debug -o json" 0 "$EXPT" debug broken-2 -o json
equals "reason in json" "$(echo "$out" | json 'd["reason"]')" "oom"
equals "stderr tail in json" "$(echo "$out" | json 'd["stderr_tail"][-1]')" "about to fail: oom"

expect_code "ps shows the reasons" 0 "$EXPT" ps broken
contains "oom in ps" "$out" "failed (oom)"
contains "timeout in ps" "$out" "failed (timeout)"

expect_code "retry --failed with an override" 1 "$EXPT" retry broken --failed timeout=5s -q
expect_code "retried runs get new ids linked to the old" 0 "$EXPT" ps broken -o json
equals "retry_of links" "$(echo "$out" | json 'sorted((r["id"], r["retry_of"]) for r in d if r["retry_of"])')" \
	"[('broken-5', 'broken-1'), ('broken-6', 'broken-2'), ('broken-7', 'broken-3'), ('broken-8', 'broken-4')]"
equals "retried params kept" "$(echo "$out" | json '[r["params"]["mode"] for r in d if r["id"]=="broken-6"][0]')" "oom"

# A retry of a retry runs where the first run did, with the same params, and takes param
# overrides; sweeping in a retry is refused.
expect_code "retry a retry" 1 "$EXPT" retry broken-8 -q
expect_code "debug the retry of a retry" 0 "$EXPT" debug broken-9
contains "it ran the script (same directory)" "$out" "exited with code 3"
expect_code "retry with a param override" 1 "$EXPT" retry broken-9 -q mode=exit3 timeout=3s
expect_code "show it" 0 "$EXPT" show broken-10 -o json
equals "the override is applied" "$(echo "$out" | json 'd["params"]["mode"]')" "exit3"
expect_code "no sweep in a retry" 2 "$EXPT" retry broken-9 mode=a,b
contains "says why" "$out" "cannot sweep a param"
# expt debug EXPT: the failed runs grouped by cause, the most frequent first, one example each,
# and how many succeeded or are still active.
mkdir mix
cat > mix/expt.yaml <<'YAML'
name: mix
command: python3 fail.py
args: none
params: {mode: ok1}
sweep: {mode: [exit4, exit3a, ok1, oom1, exit3b, ok2, sleep, oom2, exit3c, ok3]}
parallel: 4
timeout: 3s
resources: {memory: 64Mi}
YAML
cat > mix/fail.py <<'PY'
import os, sys, time
mode = os.environ["EXPT_PARAM_MODE"]
print("out of " + mode, flush=True)
print("err of " + mode, file=sys.stderr, flush=True)
if mode.startswith("oom"):
    hog = []
    for _ in range(100):
        hog.append(bytearray((8 if mode == "oom1" else 5) * 1024 * 1024))
        time.sleep(0.02)
    time.sleep(5)
elif mode == "sleep":
    time.sleep(60)
elif mode.startswith("exit"):
    sys.exit(int(mode[4]))
PY
cd mix
expect_code "a mixed sweep exits 1" 1 "$EXPT" run
contains "the summary points at the grouped view" "$out" "expt debug mix'"
expect_code "a run still active" 0 "$EXPT" run -d -q mode=sleep timeout=60s
wait_status mix-11 running

expect_code "debug EXPT" 0 "$EXPT" debug mix
contains "counts" "$out" "mix  11 runs · 7 failed (4 causes) · 3 succeeded · 1 still active (1 running, 0 queued)"
contains "the most frequent cause with its runs" "$out" "exited with code 3 — 3 runs: mix-2, mix-5, mix-9"
contains "memory, its two runs in one group" "$out" "exceeded memory limit 64Mi"
contains "memory group's runs" "$out" " — 2 runs: mix-4, mix-8"
contains "exit code 4 apart from 3" "$out" "exited with code 4 — 1 run: mix-1"
contains "the timeout" "$out" "timed out after 3.0s — 1 run: mix-7"
contains "a hint per cause" "$out" "hint  raise resources.memory"
contains "the newest run of a cause is its example" "$out" "last 1 line of mix-9's stderr"
contains "its last lines" "$out" "| err of exit3c"
not_contains "one example per cause" "$out" "err of exit3a"
equals "causes sorted by how many runs they hit, then by the first run they hit" \
	"$(echo "$out" | sed -n 's/^\(.*\) — \([0-9]*\) runs\{0,1\}:.*/\2 \1/p' | cut -c1-22)" \
	"3 exited with code 3
2 out of memory: excee
1 exited with code 4
1 timeout: timed out a"
not_contains "no succeeded run is a cause" "$out" "mix-3"
contains "how to see one in full, how to retry them" "$out" "expt debug mix-9 · all failed runs again: expt retry mix --failed"

expect_code "debug EXPT -o json" 0 "$EXPT" debug mix -o json
equals "json counts" "$(echo "$out" | json '(d["experiment"], d["runs"], d["failed"], d["succeeded"], d["running"], d["queued"])')" \
	"('mix', 11, 7, 3, 1, 0)"
equals "json groups: cause, runs" "$(echo "$out" | json '[(g["cause"], g["runs"]) for g in d["groups"] if g["count"] != 2]')" \
	"[('exited with code 3', ['mix-2', 'mix-5', 'mix-9']), ('exited with code 4', ['mix-1']), ('timeout: timed out after 3.0s', ['mix-7'])]"
equals "json: one group for memory" "$(echo "$out" | json '[g["runs"] for g in d["groups"] if "memory" in g["cause"]]')" "[['mix-4', 'mix-8']]"
contains "json hint" "$(echo "$out" | json '[g["hint"] for g in d["groups"] if "memory" in g["cause"]][0]')" "resources.memory"
equals "json example and its tail" "$(echo "$out" | json '(d["groups"][0]["example"], d["groups"][0]["tail"])')" \
	"('mix-9', ['err of exit3c'])"
expect_code "debug EXPT -n 0" 0 "$EXPT" debug mix -n 0
not_contains "no lines with -n 0" "$out" "| err of"
expect_code "debug RUN -n 0" 0 "$EXPT" debug mix-1 -n 0
not_contains "no lines for one run with -n 0 either" "$out" "| err of"
not_contains "nor a claim that stderr is empty" "$out" "is empty"
expect_code "debug RUN is unchanged" 0 "$EXPT" debug mix-1
contains "one run's full account" "$out" "command  python3 fail.py"
expect_code "stop the active run" 0 "$EXPT" stop mix-11
wait_status mix-11 stopped

# What differs from run to run (here the pid of each run's supervisor) does not split a cause.
printf 'name: lost\ncommand: ["sleep", "100"]\nargs: none\n' >expt.yaml
expect_code "first detached run" 0 "$EXPT" run -d -q
expect_code "second detached run" 0 "$EXPT" run -d -q
wait_status lost-1 running
wait_status lost-2 running
pids=$("$EXPT" ps lost -o json | json '" ".join("%s %s" % (r["supervisor_pid"], r["pid"]) for r in d)')
read -r s1 p1 s2 p2 <<<"$pids"
if [ "${s1:-0}" -gt 0 ] && [ "${s2:-0}" -gt 0 ] && [ "$s1" != "$s2" ]; then
	kill -9 "$s1" "$s2"
	kill -9 -- "-$p1" "-$p2" 2>/dev/null
	# Both gone (and reaped) before expt looks: a process group seen alive is adopted, and
	# ends with another message (its own cause, rightly apart).
	for _ in $(seq 100); do
		kill -0 -- "-$p1" 2>/dev/null || kill -0 -- "-$p2" 2>/dev/null || kill -0 "$s1" 2>/dev/null ||
			kill -0 "$s2" 2>/dev/null || break
		sleep 0.1
	done
	wait_status lost-1 failed
	wait_status lost-2 failed
	expect_code "debug the lost runs" 0 "$EXPT" debug lost
	contains "their causes differ only by a pid" "$("$EXPT" debug lost-1; "$EXPT" debug lost-2)" "(pid $s2)"
	contains "one cause for both" "$out" "(pid <n>) exited without recording an end — 2 runs: lost-1, lost-2"
else
	fail "two supervisors recorded for lost-1 and lost-2" "$pids"
fi
printf 'name: fine\ncommand: ["true"]\nargs: none\n' >expt.yaml
expect_code "a run that succeeds" 0 "$EXPT" run -q
expect_code "debug EXPT with nothing failed" 0 "$EXPT" debug fine
contains "says so" "$out" "nothing failed"
contains "with the counts" "$out" "fine  1 run · 0 failed · 1 succeeded · 0 still active"
cd ..
finish
