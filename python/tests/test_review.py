"""Regressions from the review of the binding: finishing while other threads log, params named
"key" or "value", module-level calls after finish(), bad UTF-8, the locale of JSONL numbers."""

import json
import subprocess
import sys

import pytest

import expt
from test_binding import child_env, jsonl

RACE = """
import sys, threading, expt
sys.setswitchinterval(1e-6)       # threads switch often: the race window opens often
errors, stop = [], threading.Event()

def monitor(run):
    while not stop.is_set():
        try:
            run.log(gpu=1.0)
            run.tag(t="x")
            run.flush(0.001)
        except expt.ExptError:
            pass                      # finished: the documented answer
        except Exception as e:        # anything else is a bug
            errors.append(repr(e))

for i in range(300):
    with expt.start_run(experiment="race", sinks="jsonl" if i % 2 else "", hooks=False) as run:
        threads = [threading.Thread(target=monitor, args=(run,)) for _ in range(8)]
        for t in threads:
            t.start()
        for s in range(20):
            run.log(loss=s, step=s)
    # the monitors keep calling into the finished run for a moment
    stop.set()
    for t in threads:
        t.join()
    stop.clear()
print("ok", len(errors), errors[:3])
"""


def test_finish_while_other_threads_log(workdir):
    p = subprocess.run([sys.executable, "-c", RACE], cwd=workdir, env=child_env(),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "ok 0 []" in p.stdout, p.stdout + p.stderr[-2000:]


def test_params_named_key_and_value(workdir):
    with expt.start_run(sinks="jsonl") as run:
        run.params({"key": 1, "value": 2, "h": 3, "lr": 0.1})
        expt.param("key", "k")
        expt.tag("value", "v")
        expt.param(value=5)
        out = run.output_dir
    got = {(e["type"], e["key"]): e["value"] for e in jsonl(out + "/metrics.jsonl")
           if e["type"] in ("param", "tag")}
    assert got == {("param", "key"): "k", ("param", "value"): "5", ("param", "h"): "3",
                   ("param", "lr"): "0.1", ("tag", "value"): "v"}


def test_keys_must_be_utf8(workdir):
    with expt.start_run(sinks="jsonl") as run:
        with pytest.raises(ValueError):
            run.log({b"bad\xff": 1.0})
        with pytest.raises(ValueError):
            run.param(b"k\xfe", "v")
        with pytest.raises(ValueError):
            run.tag("k\udcff", "v")           # a lone surrogate cannot be UTF-8 either
        run.param("p", b"a\xffb")             # values: bad bytes become U+FFFD
        run.log({"λ": 1.0})
        out = run.output_dir
    lines = jsonl(out + "/metrics.jsonl")
    assert [e["value"] for e in lines if e["type"] == "param"] == ["a\ufffdb"]
    assert [e["key"] for e in lines if e["type"] == "metric"] == ["λ"]


def test_module_calls_after_finish_raise(workdir):
    expt.log(loss=1.0)                       # opens the implicit run
    first = expt.active_run()
    assert expt.finish() is True
    for call in (lambda: expt.log(loss=2.0), lambda: expt.param(lr=1),
                 lambda: expt.tag(a="b"), expt.active_run):
        with pytest.raises(expt.ExptError):
            call()
    with expt.start_run(sinks="") as run:    # only start_run opens another
        assert run is not first
        expt.log(loss=3.0)
    with pytest.raises(expt.ExptError):
        expt.log(loss=4.0)


STALE = """
import sys, expt
sys.last_value = ValueError("from an earlier notebook cell")   # stale, as in Jupyter
sys.last_type = ValueError
expt.log(loss=1.0, step=0)
print(expt.active_run().id)
"""


def test_stale_last_value_does_not_fail_the_run(workdir, store_at):
    p = subprocess.run([sys.executable, "-c", STALE], cwd=workdir, env=child_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    st = store_at(workdir / ".expt/expt.db")
    assert st.status(p.stdout.strip()) == ("succeeded", 0)
