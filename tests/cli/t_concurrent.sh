#!/usr/bin/env bash
# 40 concurrent `expt run` of a 5-run sweep on one store: 200 distinct ids, 200 finished runs.
. "$(dirname "$0")/lib.sh"

cat > expt.yaml <<'YAML'
name: many
command: "true"
args: none
params: {i: 0}
sweep: {i: [1, 2, 3, 4, 5]}
parallel: 5
YAML
pids=()
for n in $(seq 40); do
	"$EXPT" run -q >"out.$n" 2>&1 &
	pids+=($!)
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
equals "all 40 expt run processes succeeded" "$bad" "0"
[ "$bad" -eq 0 ] || cat out.* | head -20
expect_code "ps -a" 0 "$EXPT" ps -a -o json
equals "200 runs" "$(echo "$out" | json 'len(d)')" "200"
equals "200 distinct ids" "$(echo "$out" | json 'len(set(r["id"] for r in d))')" "200"
equals "ids are many-1 .. many-200" "$(echo "$out" | json 'sorted(int(r["id"].split("-")[1]) for r in d) == list(range(1, 201))')" "True"
equals "200 finished runs" "$(echo "$out" | json 'sum(1 for r in d if r["status"] == "succeeded")')" "200"
finish
