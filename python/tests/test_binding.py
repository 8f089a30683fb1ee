"""The Python binding against the built libexpt: what lands in the store and the JSONL file,
errors, run status, failing sinks, the implicit run of a script, and `expt log`."""

import json
import os
import struct
import subprocess
import sys
import zlib

import pytest

import expt
from expt import _png

HERE = os.path.dirname(os.path.abspath(__file__))


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def child_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_store_and_jsonl_hold_what_was_logged(workdir, store_at):
    model = workdir / "model.pt"
    model.write_bytes(b"\0weights" * 100)
    ckpt = workdir / "ckpt"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "sub" / "a.txt").write_text("a")
    with expt.start_run(experiment="unit", sinks=["store", "jsonl"]) as run:
        assert run.id == "unit-1"
        assert expt.active_run() is run
        expt.param(lr=0.001, optimizer="adam", nested=True)
        expt.params({"epochs": 3})
        expt.tag(phase="train", owner="me")
        for step in range(1000):
            expt.log(loss=1.0 / (step + 1), step=step)
            expt.log({"acc": step / 1000.0, "lr": 0.001}, step=step)
        expt.log(last=7)
        copy = expt.artifact(model)
        assert open(copy, "rb").read() == model.read_bytes()
        expt.artifact(ckpt, name="checkpoints/best")
        assert (workdir / ".expt/runs/unit-1/output/artifacts/checkpoints/best/sub/a.txt").exists()
        expt.histogram("w", [1.0, 2.0, 3.0], step=1)
        expt.image("img", _png.encode(bytes(12), 2, 2, 3), step=0)
        out = run.output_dir
    assert run.finished
    assert expt._stack == []

    st = store_at(workdir / ".expt/expt.db")
    assert st.status("unit-1") == ("succeeded", -1)
    assert st.history("unit-1", "loss") == [(s, 1.0 / (s + 1)) for s in range(1000)]
    assert st.history("unit-1", "acc") == [(s, s / 1000.0) for s in range(1000)]
    assert st.history("unit-1", "last") == [(-1, 7.0)]
    assert st.params("unit-1") == {"lr": "0.001", "optimizer": "adam", "nested": "true",
                                   "epochs": "3"}
    assert st.tags("unit-1") == {"phase": "train", "owner": "me"}
    arts = dict(st.artifacts("unit-1"))
    assert os.path.join(run.artifact_dir, "model.pt") in arts
    assert any(p.endswith("images/img/step-0-0.png") for p in arts)
    assert [k for k, _ in st.events("unit-1")].count("histogram") == 1

    lines = jsonl(os.path.join(out, "metrics.jsonl"))
    assert lines[0]["type"] == "run" and lines[0]["run_id"] == "unit-1"
    assert lines[-1] == {"type": "finish", "time_ms": lines[-1]["time_ms"], "status": "succeeded"}
    metrics = [(m["key"], m.get("step"), m["value"]) for m in lines if m["type"] == "metric"]
    assert len(metrics) == 3001
    assert [(s, v) for k, s, v in metrics if k == "loss"] == [(s, 1.0 / (s + 1))
                                                              for s in range(1000)]
    params = {m["key"]: m["value"] for m in lines if m["type"] == "param"}
    assert params == {"lr": "0.001", "optimizer": "adam", "nested": "true", "epochs": "3"}
    (img,) = [m for m in lines if m["type"] == "image"]
    assert (img["width"], img["height"], img["channels"]) == (2, 2, 3)
    (hist,) = [m for m in lines if m["type"] == "histogram"]
    assert hist["num"] == 3 and hist["sum"] == 6 and sum(hist["counts"]) == 3


def test_status_from_exceptions(workdir, store_at):
    with pytest.raises(RuntimeError):
        with expt.start_run(experiment="st"):
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with expt.start_run(experiment="st"):
            raise KeyboardInterrupt
    run = expt.start_run(experiment="st")
    run.set_status("failed")
    run.finish()
    run = expt.start_run(experiment="st")
    run.finish("stopped")
    st = store_at(workdir / ".expt/expt.db")
    assert [st.status("st-%d" % i)[0] for i in (1, 2, 3, 4)] == [
        "failed", "stopped", "failed", "stopped"]


def test_errors(workdir):
    run = expt.start_run(sinks="jsonl", run_id="e-1", hooks=False)
    with pytest.raises(ValueError):
        run.log({"": 1.0})
    with pytest.raises(ValueError):
        run.log({"bad\nkey": 1.0})
    with pytest.raises(TypeError):
        run.log(loss="not a number")
    with pytest.raises(TypeError):
        run.log({"a": 1, "b": "text"})
    with pytest.raises(TypeError):
        run.log({"a": 1, "b": None})
    with pytest.raises(ValueError):
        run.image("x", b"not a png")
    with pytest.raises(ValueError):
        run.histogram("h", edges=[0, 1, 2], counts=[1])
    with pytest.raises(ValueError):
        run.histogram("h", ([2, 1], [1]))
    with pytest.raises(OSError):
        run.artifact(workdir / "missing")
    with pytest.raises(ValueError):
        run.artifact(workdir, name="../out")
    with pytest.raises(ValueError):
        run.set_status("running")
    with pytest.raises(ValueError):
        expt.start_run(sinks="store,nope")
    assert run.finish() is True
    assert run.finish() is True  # twice: a no-op
    with pytest.raises(expt.ExptError):
        run.log(loss=1)


def test_failing_sink_loses_nothing_for_the_others(workdir, store_at, capfd):
    """A JSONL file that cannot be created: the store and TensorBoard still get every point;
    the failure is reported once, and at finish with the count."""
    (workdir / "blocked").write_text("a file where a directory should be")
    run = expt.start_run(experiment="fail", sinks="jsonl,store,tensorboard",
                         jsonl=workdir / "blocked" / "m.jsonl", tensorboard_dir=workdir / "tb")
    for step in range(5000):
        run.log({"a": step, "b": -step}, step=step)
    assert run.flush(10) is False
    stats = {s["name"]: s for s in run.stats()}
    assert stats["jsonl"]["failing"] and stats["jsonl"]["pending"] == 10000
    assert stats["store"]["delivered"] == 10000 and not stats["store"]["failing"]
    assert run.finish() is False
    err = capfd.readouterr().err
    assert err.count("sink jsonl failed") == 1
    assert "sink jsonl: 10000 entries not delivered" in err

    st = store_at(workdir / ".expt/expt.db")
    assert st.history("fail-1", "b") == [(s, -float(s)) for s in range(5000)]
    from test_tensorboard import load
    acc = load(workdir / "tb")
    assert [(e.step, e.value) for e in acc.Scalars("a")] == [(s, float(s)) for s in range(5000)]


def test_read_only_store_loses_nothing_for_the_others(workdir, capfd):
    """Inside a run whose store is not a database: the stdout sink takes the store sink's place
    (the metrics travel with the output), and JSONL gets everything."""
    bad = workdir / "expt.db"
    bad.write_bytes(b"not sqlite " * 1000)
    env = {"EXPT_RUN_ID": "ro-1", "EXPT_STORE": str(bad), "EXPT_OUTPUT_DIR": str(workdir / "o"),
           "EXPT_SINKS": "store,jsonl"}
    os.environ.update(env)
    try:
        run = expt.start_run(hooks=False)
        assert sorted(s["name"] for s in run.stats()) == ["jsonl", "stdout"]
        for i in range(3000):
            expt.log(x=i, step=i)
        assert run.finish() is True
    finally:
        for k in env:
            os.environ.pop(k)
    lines = jsonl(workdir / "o" / "metrics.jsonl")
    assert [m["value"] for m in lines if m["type"] == "metric"] == list(range(3000))
    out = capfd.readouterr()
    assert "no store" in out.err
    assert sum(1 for ln in out.out.splitlines() if ln.startswith("expt: metric x=")) == 3000


def test_implicit_run_finished_by_exit_status(workdir, store_at):
    """A script that never opens or finishes a run: the first call opens one, the process's exit
    delivers everything and sets the status from the exit code."""
    script = workdir / "train.py"
    script.write_text(
        "import sys, expt\n"
        "for s in range(2000):\n"
        "    expt.log(loss=s * 0.5, step=s)\n"
        "print(expt.active_run().id)\n"
        "sys.exit(int(sys.argv[1]))\n")
    for code, want in ((0, "succeeded"), (3, "failed")):
        p = subprocess.run([sys.executable, str(script), str(code)], cwd=workdir,
                           env=child_env(EXPT_SINKS="store,jsonl"), capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == code, p.stderr
        run_id = p.stdout.strip()
        st = store_at(workdir / ".expt/expt.db")
        assert st.status(run_id) == (want, code)
        assert st.history(run_id, "loss") == [(s, s * 0.5) for s in range(2000)]
        lines = jsonl(workdir / ".expt/runs" / run_id / "output" / "metrics.jsonl")
        assert lines[-1]["status"] == want


def test_uncaught_exception_marks_failed(workdir, store_at):
    script = workdir / "crash.py"
    script.write_text(
        "import expt\n"
        "expt.log(loss=1.0, step=0)\n"
        "print(expt.active_run().id, flush=True)\n"
        "raise SystemError('training diverged')\n")
    p = subprocess.run([sys.executable, str(script)], cwd=workdir, env=child_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    run_id = p.stdout.strip()
    st = store_at(workdir / ".expt/expt.db")
    assert st.status(run_id)[0] == "failed"
    assert st.history(run_id, "loss") == [(0, 1.0)]


def test_png_encoder_round_trip():
    pixels = bytes(range(256)) * 3
    png = _png.encode(pixels, 16, 16, 3)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", png[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + data)
        chunks[kind] = data
        pos += 12 + n
    assert struct.unpack(">IIBBBBB", chunks[b"IHDR"]) == (16, 16, 8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[b"IDAT"])
    rows = [raw[i * 49:(i + 1) * 49] for i in range(16)]
    assert all(r[0] == 0 for r in rows)
    assert b"".join(r[1:] for r in rows) == pixels
    with pytest.raises(ValueError):
        _png.encode(pixels, 16, 16, 5)


def expt_bin():
    path = os.environ.get("EXPT_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("EXPT_BIN is not a built expt binary")
    return path


def test_expt_log_command(workdir, store_at):
    """`expt log` inside a run logs through the same path."""
    exe = expt_bin()
    run = expt.start_run(experiment="sh", hooks=False)
    run_id, out = run.id, run.output_dir
    (workdir / "result.txt").write_text("42")
    env = child_env(EXPT_RUN_ID=run_id, EXPT_STORE=workdir / ".expt/expt.db", EXPT_OUTPUT_DIR=out,
                    EXPT_SINKS="store,jsonl")
    p = subprocess.run([exe, "log", "loss=0.25", "acc=0.75", "--step", "10", "--tag", "k=v",
                        "--param", "p=1", "--artifact", "result.txt"], cwd=workdir, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([exe, "log", "loss=0.125"], cwd=workdir, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    run.finish()
    st = store_at(workdir / ".expt/expt.db")
    assert st.history(run_id, "loss") == [(-1, 0.125), (10, 0.25)]  # by step, then time
    assert st.history(run_id, "acc") == [(10, 0.75)]
    assert st.tags(run_id) == {"k": "v"}
    assert st.params(run_id) == {"p": "1"}
    assert (workdir / ".expt/runs" / run_id / "output/artifacts/result.txt").read_text() == "42"
    lines = jsonl(os.path.join(out, "metrics.jsonl"))
    assert [(m["key"], m.get("step"), m["value"]) for m in lines if m["type"] == "metric"] == [
        ("loss", 10, 0.25), ("acc", 10, 0.75), ("loss", None, 0.125)]
    # An attached handle writes no run header and no finish line of its own.
    assert [m["type"] for m in lines] == ["metric", "metric", "param", "tag", "artifact",
                                          "metric"]

    bad = [(["loss=abc"], 2, "not a number"), (["--step", "x", "a=1"], 2, "--step"),
           (["--tag", "novalue"], 2, "KEY=VALUE"), ([], 2, "nothing to log")]
    for args, code, msg in bad:
        p = subprocess.run([exe, "log"] + args, cwd=workdir, env=env, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == code and msg in p.stderr, (args, p.stderr)
    noenv = {k: v for k, v in env.items() if k != "EXPT_RUN_ID"}
    p = subprocess.run([exe, "log", "a=1"], cwd=workdir, env=noenv, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "not inside a run" in p.stderr
    # --run names the run from outside.
    p = subprocess.run([exe, "log", "a=1", "--run", run_id], cwd=workdir, env=noenv,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert st.history(run_id, "a") == [(-1, 1.0)]
