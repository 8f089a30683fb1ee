#!/usr/bin/env bash
# Bad input: every problem reported at once as file:line:col: field: message, exit 2,
# and nothing created.
. "$(dirname "$0")/lib.sh"

cat > expt.yaml <<'YAML'
name: bad name
comand: python3 train.py
paralel: 2
params: {lr: 0.1}
sweep: {lr: []}
resources: {memory: 1Gb, cpu: lots, gpu: -1}
args: "--lr {lr} --x {nope}"
timeout: forever
backend: kubernetis
variants:
  a: {extends: b}
  b: {extends: a}
YAML
expect_code "a bad spec exits 2" 2 "$EXPT" run
expected='expt.yaml:1:1: command: required field is missing
expt.yaml:1:7: name: expected a name of letters, digits, '"'_'"', '"'.'"' and '"'-'"', starting with a letter or digit, at most 128 characters, got '"'bad name'"'
expt.yaml:2:1: comand: unknown field (did you mean '"'command'"'?)
expt.yaml:3:1: paralel: unknown field (did you mean '"'parallel'"'?)
expt.yaml:5:13: sweep.lr: empty list: a swept param needs at least one value
expt.yaml:6:21: resources.memory: expected a quantity like 512Mi or 2Gi, got '"'1Gb'"'
expt.yaml:6:31: resources.cpu: expected a CPU quantity like 2, 0.5 or 500m, got '"'lots'"'
expt.yaml:6:42: resources.gpu: expected an integer from 0 to 1024, got '"'-1'"'
expt.yaml:7:7: args: '"'{nope}'"' names no param; placeholders are params, {run_id}, {output_dir}, {inputs.NAME} and {outputs.NAME}
expt.yaml:8:10: timeout: expected a duration like 90s, 30m or 2h, got '"'forever'"'
expt.yaml:9:10: backend: expected local, container or kubernetes, got '"'kubernetis'"' (did you mean '"'kubernetes'"'?)
expt.yaml:11:16: variants.a.extends: variants extend each other in a cycle: a -> b -> a
expt run: 12 problems in the spec; nothing was run'
equals "every error, with its position and field" "$out" "$expected"
[ ! -e .expt ] && pass "nothing was created" || fail "nothing was created"

expect_code "an unknown variant" 2 "$EXPT" plan -v c
contains "did you mean the variant" "$out" "expt.yaml:10:1: variants: no variant named 'c' (did you mean 'a'?)"

cat > ok.yaml <<'YAML'
name: fine
command: echo
params: {lr: 1}
YAML
expect_code "bad overrides" 2 "$EXPT" plan -f ok.yaml resources.memory=2Gb timeout=1h,2h
contains "override position" "$out" "<command line>: argument 1: resources.memory: expected a quantity like 512Mi or 2Gi, got '2Gb'"
contains "only params sweep" "$out" "<command line>: argument 2: timeout: only params can take several values"
expect_code "not KEY=VALUE" 2 "$EXPT" run -f ok.yaml lr
contains "says what is expected" "$out" "'lr' is not KEY=VALUE"
[ ! -e .expt ] && pass "still nothing created" || fail "still nothing created"

printf 'name: x\ncommand: [a, b\nparams: {lr: 1}\n' > syntax.yaml
expect_code "YAML syntax error" 2 "$EXPT" plan -f syntax.yaml
contains "syntax error located" "$out" "syntax.yaml:4:1: flow sequence without a closing bracket"
expect_code "missing spec file" 3 "$EXPT" plan -f nonexist.yaml
contains "names the file" "$out" "cannot read 'nonexist.yaml'"

printf 'name: x\ncommand: echo\nparams: {lr: 1}\nparallel: four\nretries: 1.5\n' > types.yaml
expect_code "wrong types" 2 "$EXPT" plan -f types.yaml
contains "integer expected" "$out" "types.yaml:4:11: parallel: expected an integer, got 'four'"
contains "integer expected (float)" "$out" "types.yaml:5:10: retries: expected an integer, got '1.5'"

# A store written by a newer expt is refused with a clear message.
"$EXPT" run -q -f ok.yaml >/dev/null 2>&1
sqlite3 .expt/expt.db 'PRAGMA user_version = 999' 2>/dev/null || python3 -c "import sqlite3; c=sqlite3.connect('.expt/expt.db'); c.execute('PRAGMA user_version = 999'); c.commit()"
expect_code "newer store refused" 4 "$EXPT" ps
contains "says to upgrade" "$out" "upgrade expt"
finish
