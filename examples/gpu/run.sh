#!/usr/bin/env bash
# Runs the GPU example (2 runs queued on one GPU) in a scratch copy and prints what it did:
# the runs, their comparison, and what TensorBoard's reader finds in one run's event files.
# Usage: examples/gpu/run.sh [path/to/expt] [path/to/libexpt.so]
# Needs python3 with torch; the expt binding comes from this repository (python/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
expt=$(realpath "${1:-$repo/build/expt}")
export EXPT_LIBRARY=$(realpath "${2:-$(dirname "$expt")/libexpt.so}")
export PYTHONPATH=$repo/python${PYTHONPATH:+:$PYTHONPATH}
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
nvidia-smi -L || echo "(no nvidia-smi: the runs will use the CPU)"
work=${EXPT_GPU_WORK:-$(mktemp -d)}
cp "$here/expt.yaml" "$here/train.py" "$work/"
cd "$work"
echo "\$ expt run   (in $work)"
start=$(date +%s)
"$expt" run
echo "(both runs took $(($(date +%s) - start)) s)"
echo
echo "\$ expt ps"
"$expt" ps
echo
echo "\$ expt compare gpu"
"$expt" compare gpu
echo
echo "\$ expt show gpu-1"
"$expt" show gpu-1
echo
python3 - "$work/.expt/runs/gpu-1/output" <<'PY'
import json, sys
out = sys.argv[1]
lines = [json.loads(l) for l in open(out + "/metrics.jsonl")]
print("jsonl: %d events, %d metric points" % (len(lines), sum(l["type"] == "metric" for l in lines)))
try:
    from tensorboard.backend.event_processing import event_accumulator
except ImportError:
    print("tensorboard not installed: event files not read back")
    sys.exit(0)
acc = event_accumulator.EventAccumulator(out + "/tensorboard", size_guidance={"scalars": 0})
acc.Reload()
print("tensorboard:", {k: len(v) for k, v in acc.Tags().items() if isinstance(v, list) and v})
PY
