"""A stand-in training loop that logs through expt's Python binding.

Params arrive as arguments; metrics, params and an artifact go through `import expt`, which
writes to every sink of the run (the store, and whatever `tracking.sinks` adds).
"""
import argparse
import json
import math
import os
import random

import expt

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--width", type=int)
p.add_argument("--dropout", type=float)
p.add_argument("--epochs", type=int)
a = p.parse_args()

rng = random.Random(f"{a.lr}/{a.width}/{a.dropout}")
# A made-up response surface: best near lr=0.03, wider is better, some dropout helps.
quality = math.exp(-(math.log10(a.lr) + 1.5) ** 2) * (1 - 0.3 / math.log2(a.width)) \
    * (1 - (a.dropout - 0.2) ** 2)
expt.param(surface="toy-v1")
loss = 2.3
for epoch in range(1, a.epochs + 1):
    for step in range(50):
        loss *= (1 - 0.02 * quality) * rng.uniform(0.995, 1.005)
        expt.log(loss=loss, step=(epoch - 1) * 50 + step)
    val_acc = 0.1 + 0.85 * quality * (1 - math.exp(-epoch / 2)) + rng.uniform(-0.01, 0.01)
    expt.log(val_acc=val_acc, epoch=epoch, step=epoch * 50)
    print(f"epoch {epoch}: loss {loss:.3f} val_acc {val_acc:.3f}")

summary = os.path.join(os.environ.get("EXPT_OUTPUT_DIR", "."), "summary.json")
with open(summary, "w") as f:
    json.dump({"val_acc": val_acc, "loss": loss}, f)
expt.artifact(summary)
