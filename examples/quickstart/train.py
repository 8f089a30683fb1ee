"""A stand-in for a training script: no dependencies, a few seconds long.

expt gives it its params three ways (pick one): as arguments (--lr 0.1 ...), as
EXPT_PARAM_LR=0.1 ... environment variables, and as a JSON file at $EXPT_PARAMS_FILE.
It reports metrics by printing lines that start with "expt:"; expt records them.
"""
import argparse
import json
import math
import os
import random
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--batch", type=int, required=True)
parser.add_argument("--epochs", type=int, default=8)
args = parser.parse_args()

# The same params, read from the JSON file expt wrote for this run.
with open(os.environ["EXPT_PARAMS_FILE"]) as f:
    assert json.load(f)["lr"] == args.lr

rng = random.Random(f"{args.lr}-{args.batch}")
loss = 2.3
for epoch in range(1, args.epochs + 1):
    time.sleep(0.1)
    # Larger learning rates converge faster here; larger batches a bit slower.
    loss *= math.exp(-args.lr * 4 * (32 / args.batch) ** 0.5) * rng.uniform(0.97, 1.0)
    acc = 1.0 - loss / 2.3 * 0.9
    print(f"epoch {epoch}/{args.epochs}")
    print(f"expt: loss={loss:.4f} acc={acc:.4f} step={epoch}")

out = os.environ["EXPT_OUTPUT_DIR"]
with open(os.path.join(out, "model.json"), "w") as f:
    json.dump({"lr": args.lr, "batch": args.batch, "loss": loss}, f)
print(f"saved model to {out}/model.json")
