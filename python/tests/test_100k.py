"""Done-when of issue 3: a script logs 100k metric points through the binding, and the store, the
JSONL file and TensorBoard's reader each hold exactly those points."""

import json
import os
import subprocess
import sys

from tensorboard.backend.event_processing import event_accumulator

from conftest import f32
from test_binding import child_env

STEPS = 25000  # x 4 keys = 100,000 points

SCRIPT = """
import expt
steps = %d
for s in range(steps):
    expt.log(loss=1.0 / (s + 1), step=s)                                   # one key per call
    expt.log({"acc": s / steps, "lr": 0.1 * 0.999 ** (s %% 1000), "grad": (s %% 97) / 97.0},
             step=s)                                                        # many keys per call
print(expt.active_run().id)
""" % STEPS


def expected():
    out = {"loss": [], "acc": [], "lr": [], "grad": []}
    for s in range(STEPS):
        out["loss"].append((s, 1.0 / (s + 1)))
        out["acc"].append((s, s / STEPS))
        out["lr"].append((s, 0.1 * 0.999 ** (s % 1000)))
        out["grad"].append((s, (s % 97) / 97.0))
    return out


def test_100k_points_reach_every_sink(workdir, store_at):
    (workdir / "train.py").write_text(SCRIPT)
    p = subprocess.run([sys.executable, "train.py"], cwd=workdir,
                       env=child_env(EXPT_SINKS="store,jsonl,tensorboard"), capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # no sink failed
    run_id = p.stdout.strip()
    want = expected()
    assert sum(len(v) for v in want.values()) == 100000
    out = workdir / ".expt" / "runs" / run_id / "output"

    st = store_at(workdir / ".expt" / "expt.db")
    assert st.status(run_id) == ("succeeded", 0)
    for key, pts in want.items():
        assert st.history(run_id, key) == pts, key

    got = {k: [] for k in want}
    with open(out / "metrics.jsonl") as f:
        for line in f:
            m = json.loads(line)
            if m["type"] == "metric":
                got[m["key"]].append((m["step"], m["value"]))
    assert got == want

    acc = event_accumulator.EventAccumulator(str(out / "tensorboard"),
                                             size_guidance={"scalars": 0})
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == sorted(want)
    for key, pts in want.items():
        assert [(e.step, e.value) for e in acc.Scalars(key)] == [(s, f32(v)) for s, v in pts], key
