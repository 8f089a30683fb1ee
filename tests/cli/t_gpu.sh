#!/usr/bin/env bash
# GPU slots through the CLI: EXPT_GPUS lists the GPUs; runs asking for one are serialised on a
# single GPU and see it as CUDA_VISIBLE_DEVICES; a run asking for more than exist fails clearly.
. "$(dirname "$0")/lib.sh"

cat > expt.yaml <<'YAML'
name: gpus
command: ["sh", "-c", "echo visible=$CUDA_VISIBLE_DEVICES start=$(date +%s%N); sleep 0.5; echo end=$(date +%s%N)"]
args: none
params: {i: 0}
sweep: {i: [1, 2]}
parallel: 2
resources: {gpu: 1}
YAML
expect_code "two 1-GPU runs on one GPU" 0 env EXPT_GPUS=0 "$EXPT" run
expect_code "logs" 0 "$EXPT" logs gpus --no-prefix
equals "both saw GPU 0" "$(echo "$out" | grep -c '^visible=0 ')" "2"
s1=$("$EXPT" logs gpus-1 | sed -n 's/.*start=//p'); e1=$("$EXPT" logs gpus-1 | sed -n 's/^end=//p')
s2=$("$EXPT" logs gpus-2 | sed -n 's/.*start=//p'); e2=$("$EXPT" logs gpus-2 | sed -n 's/^end=//p')
if [ "$s2" -ge "$e1" ] || [ "$s1" -ge "$e2" ]; then pass "they did not overlap"; else fail "they did not overlap" "$s1-$e1 / $s2-$e2"; fi
expect_code "ps -o json" 0 "$EXPT" ps gpus -o json
equals "GPU recorded on each run" "$(echo "$out" | json '[r["gpus"] for r in d]')" "['0', '0']"

expect_code "two GPUs asked, one exists" 1 env EXPT_GPUS=0 "$EXPT" run resources.gpu=2 i=3
contains "says why" "$out" "needs 2 GPUs, this machine has 1"
expect_code "no GPUs at all" 1 env EXPT_GPUS=none "$EXPT" run i=4
contains "says why (none)" "$out" "GPU"
finish
