#!/usr/bin/env bash
# expt run end to end on the local backend: sweep, contract, store, read commands.
. "$(dirname "$0")/lib.sh"

cat > expt.yaml <<'YAML'
name: demo
command: python3 train.py
params: {lr: 0.01, batch: 32, note: "$(touch pwned)"}
sweep: {lr: [0.1, 0.01], batch: [32, 64]}
parallel: 2
YAML
cat > train.py <<'PY'
import json, os, sys
args = sys.argv[1:]
params = json.load(open(os.environ["EXPT_PARAMS_FILE"]))
print("argv=" + json.dumps(args))
print("env_lr=" + os.environ["EXPT_PARAM_LR"] + " run=" + os.environ["EXPT_RUN_ID"])
print("file_lr=" + str(params["lr"]))
open(os.path.join(os.environ["EXPT_OUTPUT_DIR"], "out.txt"), "w").write("x")
for step in range(3):
    print(f"expt: loss={params['lr'] * (3 - step)} step={step}")
print("to stderr", file=sys.stderr)
PY

expect_code "plan shows 4 runs and runs nothing" 0 "$EXPT" plan -o json
equals "plan has 4 runs" "$(echo "$out" | json 'len(d["runs"])')" "4"
equals "grid order: last key varies fastest" \
	"$(echo "$out" | json '[(r["params"]["lr"], r["params"]["batch"]) for r in d["runs"]]')" \
	"[(0.1, 32), (0.1, 64), (0.01, 32), (0.01, 64)]"
[ ! -e .expt ] && pass "plan creates no store" || fail "plan creates no store"

expect_code "run a 2x2 sweep" 0 "$EXPT" run
contains "summary line" "$out" "4 runs: 4 succeeded"
contains "output lines are prefixed by run id" "$out" "demo-1 | argv="
[ ! -e pwned ] && pass "a param value is never run by a shell" || fail "a param value is never run by a shell"

expect_code "ps -o json" 0 "$EXPT" ps -o json
equals "4 distinct ids" "$(echo "$out" | json 'sorted(r["id"] for r in d)')" "['demo-1', 'demo-2', 'demo-3', 'demo-4']"
equals "all succeeded" "$(echo "$out" | json 'set(r["status"] for r in d)')" "{'succeeded'}"

expect_code "show -o json" 0 "$EXPT" show demo-2 -o json
equals "argv contract (args: auto)" "$(echo "$out" | json 'd["argv"]')" \
	"['python3', 'train.py', '--lr', '0.1', '--batch', '64', '--note', '\$(touch pwned)']"
equals "params" "$(echo "$out" | json 'd["params"]')" "{'lr': 0.1, 'batch': 64, 'note': '\$(touch pwned)'}"
equals "metric last value by step" "$(echo "$out" | json 'd["metrics"]["loss"]["last"]')" "0.1"
equals "metric points" "$(echo "$out" | json 'd["metrics"]["loss"]["count"]')" "3"
outdir=$(echo "$out" | json 'd["output_dir"]')
[ -f "$outdir/out.txt" ] && pass "EXPT_OUTPUT_DIR is the run's output dir" || fail "EXPT_OUTPUT_DIR is the run's output dir"

expect_code "logs of one run" 0 "$EXPT" logs demo-3
contains "env param" "$out" "env_lr=0.01 run=demo-3"
contains "params file" "$out" "file_lr=0.01"
contains "stderr interleaved" "$out" "to stderr"
expect_code "logs --stderr" 0 "$EXPT" logs demo-3 --stderr
equals "only stderr" "$out" "to stderr"
expect_code "logs of the experiment are prefixed" 0 "$EXPT" logs demo
equals "one prefixed stream has every run" "$(echo "$out" | grep -c '| file_lr=')" "4"

expect_code "logs -o json (JSON Lines)" 0 "$EXPT" logs demo -o json
equals "one object per line, with its run" "$(echo "$out" | python3 -c 'import json,sys; print(sorted(set(json.loads(l)["run"] for l in sys.stdin)))')" "['demo-1', 'demo-2', 'demo-3', 'demo-4']"
expect_code "compare sorted by loss" 0 "$EXPT" compare demo --sort loss
contains "compare header" "$out" "RUN"
equals "best run first" "$(echo "$out" | sed -n 3p | awk '{print $1}')" "demo-3"
contains "constant params listed once" "$out" "all runs: note="
expect_code "compare -o json" 0 "$EXPT" compare demo -o json --sort -loss
equals "descending sort" "$(echo "$out" | json 'd[0]["id"]')" "demo-1"

expect_code "an override sweep" 0 "$EXPT" run $RUN_BACKEND lr=0.5,0.25 batch=16 -q
expect_code "ids continue" 0 "$EXPT" ps demo -o json
equals "6 runs" "$(echo "$out" | json 'len(d)')" "6"
equals "new ids" "$(echo "$out" | json 'sorted(r["id"] for r in d)[-2:]')" "['demo-5', 'demo-6']"

expect_code "rm a run" 0 "$EXPT" rm demo-6
expect_code "a new run after rm" 0 "$EXPT" run $RUN_BACKEND lr=0.3 batch=8 -q
expect_code "ps after rm" 0 "$EXPT" ps demo -o json
contains "the removed id is not reused" "$(echo "$out" | json '[r["id"] for r in d]')" "demo-7"
not_contains "demo-6 is gone" "$(echo "$out" | json '[r["id"] for r in d]')" "demo-6"

expect_code "ps -a lists oldest first" 0 "$EXPT" ps -a demo
equals "first row is demo-1" "$(echo "$out" | sed -n 2p | awk '{print $1}')" "demo-1"
expect_code "logs -n 1" 0 "$EXPT" logs demo-3 -n 1
equals "exactly the last line" "$(echo "$out" | wc -l)" "1"
expect_code "logs -n 0" 0 "$EXPT" logs demo-3 -n 0
equals "nothing" "$out" ""
expect_code "output that cannot be written fails" 1 sh -c "\"$EXPT\" ps -o json >/dev/full"
contains "says so" "$out" "cannot write output"

cat >raw.yaml <<'YAML'
name: raw
command: python3 raw.py
args: none
YAML
printf 'import sys\nsys.stderr.buffer.write(b"ok\\n\\xff caf\\xe9\\n")\nsys.exit(1)\n' >raw.py
expect_code "a run printing bytes that are not UTF-8" 1 "$EXPT" run $RUN_BACKEND -q -f raw.yaml
expect_code "debug -o json keeps those lines" 0 "$EXPT" debug raw-1 -o json
equals "replaced, not dropped" "$(echo "$out" | json 'len(d["stderr_tail"])')" "2"
expect_code "rm with overlapping names" 0 "$EXPT" rm raw raw-1
equals "removed once" "$(echo "$out" | grep -c removed)" "1"

mkdir sub && cd sub
expect_code "the store is found from a subdirectory" 0 "$EXPT" ps demo
cd ..
expect_code "unknown run" 3 "$EXPT" show nope-1
contains "says what is missing" "$out" "no run named 'nope-1'"
# Names people already use: underscores, capitals, dots. Run ids stay valid Kubernetes names.
mkdir -p names && printf 'name: tf_mnist_summ\ncommand: python3 -c "print(42)"\nargs: none\nparams: {x: 0}\nsweep: {x: [1, 2]}\n' > names/expt.yaml
printf 'print("expt: acc=0.5")\n' > names/j.py
sed -i 's/command: .*/command: python3 j.py/' names/expt.yaml
expect_code "an experiment named tf_mnist_summ runs" 0 "$EXPT" run -f names/expt.yaml
expect_code "ps knows it by its name" 0 "$EXPT" ps tf_mnist_summ -o json
equals "two runs, with DNS-safe ids derived from the name" "$(echo "$out" | json '[r["id"].rsplit("-", 2)[0] for r in d]')" "['tf-mnist-summ', 'tf-mnist-summ']"
equals "and the name as given" "$(echo "$out" | json 'sorted(set(r["experiment"] for r in d))')" "['tf_mnist_summ']"
expect_code "compare by name" 0 "$EXPT" compare tf_mnist_summ
contains "its metric" "$out" "0.5"
expect_code "logs by name" 0 "$EXPT" logs tf_mnist_summ
contains "prefixed by run id" "$out" "tf-mnist-summ-"
expect_code "a dotted, capitalised name" 0 "$EXPT" run -f names/expt.yaml name=ResNet50.v2 x=1
expect_code "init accepts it too" 0 "$EXPT" init My_Exp --force
expect_code "help on every command" 0 sh -c "for c in init run plan ps logs show compare stop rm retry debug log version completion plot; do \"$EXPT\" \$c --help >/dev/null || exit 1; done"
expect_code "unknown command" 2 "$EXPT" frobnicate
expect_code "unknown option" 2 "$EXPT" ps --frob
finish
