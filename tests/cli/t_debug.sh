#!/usr/bin/env bash
# expt debug names the cause of each kind of failure: signal, memory limit, timeout, exit code.
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
finish
