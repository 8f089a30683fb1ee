#!/usr/bin/env bash
# Where runs run (workdir): each run of a snapshot has its own files, taken when expt run
# started; output runs in the run's output directory; every run records the git state.
. "$(dirname "$0")/lib.sh"

git init -q . && git config user.email t@example.com && git config user.name t
cat > expt.yaml <<'YAML'
name: wd
command: python3 train.py
args: auto
params: {k: 0, wait: 0}
parallel: 2
workdir: snapshot
snapshot: {exclude: [data]}
YAML
cat > train.py <<'PY'
import os, sys, time
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
open("result.txt", "w").write(a["--k"])          # the same relative file in every run
time.sleep(float(a["--wait"]))
print("mine", open("result.txt").read(), "version", open("version.txt").read().strip(),
      "data", os.path.exists("data"), flush=True)
PY
echo 1 > version.txt
mkdir data && echo big > data/blob
git add expt.yaml train.py version.txt && git commit -qm init

# Two parallel runs write result.txt: each keeps its own.
expect_code "two parallel runs" 0 "$EXPT" run $RUN_BACKEND k=1,2 wait=0.5
contains "run 1 read its own file" "$out" "wd-1 | mine 1 version 1"
contains "run 2 read its own file" "$out" "wd-2 | mine 2 version 1"
contains "excluded paths stay out" "$out" "data False"
equals "the project's own file untouched" "$(cat result.txt 2>/dev/null || echo absent)" "absent"

# An edit while a sweep is queued does not reach the queued runs.
expect_code "a queued sweep, one at a time" 0 "$EXPT" run $RUN_BACKEND -d -p 1 k=3,4 wait=1
wait_status wd-3 running
echo 2 > version.txt
wait_status wd-4 succeeded
expect_code "logs of the queued run" 0 "$EXPT" logs wd-4
contains "it ran the code as it was at launch" "$out" "version 1"

# The git state of every run; the diff of a dirty tree kept with it.
expect_code "show" 0 "$EXPT" show wd-4 -o json
equals "commit" "$(echo "$out" | json 'd["tags"]["expt.git.commit"]')" "$(git rev-parse HEAD)"
equals "branch" "$(echo "$out" | json 'd["tags"]["expt.git.branch"]')" "$(git rev-parse --abbrev-ref HEAD)"
equals "clean at launch" "$(echo "$out" | json 'd["tags"]["expt.git.dirty"]')" "false"
expect_code "a run from a dirty tree" 0 "$EXPT" run $RUN_BACKEND k=5
expect_code "show it" 0 "$EXPT" show wd-5 -o json
equals "dirty" "$(echo "$out" | json 'd["tags"]["expt.git.dirty"]')" "true"
diff=$(echo "$out" | json 'd["tags"]["expt.git.diff"]')
contains "the diff is kept" "$(cat "$diff" 2>/dev/null)" "+2"

# workdir: output runs in the run's output directory, EXPT_PROJECT_DIR names the project.
printf 'import os\nprint(os.getcwd() == os.environ["EXPT_OUTPUT_DIR"], os.environ["EXPT_PROJECT_DIR"])\n' > where.py
expect_code "workdir: output" 0 "$EXPT" run $RUN_BACKEND workdir=output "command=python3 $T/where.py" args=none
contains "cwd is the output dir" "$out" "True $T"

# A snapshot past its cap is refused before any run is created.
expect_code "over snapshot.max_size" 2 "$EXPT" run $RUN_BACKEND snapshot.max_size=1 'snapshot.exclude=[]'
contains "says what to do" "$out" "snapshot.max_size"
equals "no run was created" "$("$EXPT" ps wd -o json | json 'len(d)')" "6"

finish
