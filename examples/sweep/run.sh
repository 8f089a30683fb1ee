#!/usr/bin/env bash
# Runs the random search in a scratch copy (build/sweep) and prints the best runs.
# Usage: examples/sweep/run.sh [path/to/expt]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
expt=$(realpath "${1:-$here/../../build/expt}")
mkdir -p "$here/../../build"
work="$(cd "$here/../../build" && pwd)/sweep"
rm -rf "$work"
mkdir -p "$work"
cp "$here/expt.yaml" "$here/train.py" "$work/"
cd "$work"
"$expt" run -q
echo
echo "\$ expt compare search --sort -val_acc -m val_acc,loss"
"$expt" compare search --sort -val_acc -m val_acc,loss
