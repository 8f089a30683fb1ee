#!/usr/bin/env bash
# Runs the quickstart in a scratch copy (build/quickstart) and prints the comparison.
# Usage: examples/quickstart/run.sh [path/to/expt]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
expt=$(realpath "${1:-$here/../../build/expt}")
mkdir -p "$here/../../build"; work="$(cd "$here/../../build" && pwd)/quickstart"
rm -rf "$work"
mkdir -p "$work"
cp "$here/expt.yaml" "$here/train.py" "$work/"
cd "$work"
echo "\$ expt plan"
"$expt" plan | head -12
echo
echo "\$ expt run"
"$expt" run
echo
echo "\$ expt compare quickstart --sort loss"
"$expt" compare quickstart --sort loss
echo
echo "(the store is $work/.expt; try: cd $work && $expt ps && $expt show quickstart-1)"
