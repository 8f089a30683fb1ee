"""Fixtures for the binding's tests: a clean environment in a temp directory, and a reader of the
store through libexpt's own store functions (the shared library exports them)."""

import ctypes
import os
import sqlite3
import struct
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _sanitizer_runtimes(lib):
    """The ASan/UBSan runtimes libexpt needs (the ASan build), which must be loaded first."""
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split("=>")[1].split()[0] for line in out.splitlines()
            if "=>" in line and ("libasan" in line or "libubsan" in line)]


def pytest_configure(config):
    """A sanitized libexpt (the ASan build) cannot be dlopen'ed into a plain Python: run this
    pytest again with the sanitizer runtimes preloaded (leak checks off: the interpreter itself
    keeps memory at exit)."""
    lib = os.environ.get("EXPT_LIBRARY")
    if not lib or os.environ.get("EXPT_TEST_PRELOADED"):
        return
    rt = _sanitizer_runtimes(lib)
    if not rt:
        return
    env = dict(os.environ, EXPT_TEST_PRELOADED="1", LD_PRELOAD=" ".join(rt))
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman:
        capman.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pytest"] + sys.argv[1:], env)


import expt  # noqa: E402
from expt import _lib  # noqa: E402

RUN_VARS = [
    "EXPT_RUN_ID", "EXPT_EXPERIMENT", "EXPT_OUTPUT_DIR", "EXPT_PARAMS_FILE", "EXPT_STORE",
    "EXPT_SINKS", "EXPT_ARTIFACT_DIR", "EXPT_TRACKING_URI", "EXPT_JSONL",
    "EXPT_TENSORBOARD_DIR", "EXPT_HOME", "EXPT_METRICS_PREFIX",
]

STATUS = ["queued", "running", "succeeded", "failed", "stopped"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temp directory as cwd, outside any run, with no run left open afterwards."""
    for v in RUN_VARS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.chdir(tmp_path)
    expt._implicit_done = False
    yield tmp_path
    while expt._stack:
        expt._stack[-1].finish()
    expt._implicit, expt._implicit_done = None, False


def f32(v):
    """v as TensorBoard stores a scalar (float32)."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


class MetricRow(ctypes.Structure):
    _fields_ = [("value", ctypes.c_double), ("step", ctypes.c_int64), ("time_ms", ctypes.c_int64)]


class KvRows(ctypes.Structure):
    _fields_ = [
        ("keys", ctypes.POINTER(ctypes.c_char_p)),
        ("values", ctypes.POINTER(ctypes.c_char_p)),
        ("times", ctypes.POINTER(ctypes.c_int64)),
        ("n", ctypes.c_size_t),
        ("cap", ctypes.c_size_t),
    ]


class Store:
    """Reads a store with the store's own functions (src/store/store.h)."""

    def __init__(self, path):
        self.lib = _lib.load()
        self.libc = ctypes.CDLL(None)
        self.path = str(path)
        self.err = ctypes.create_string_buffer(4096)
        self.st = ctypes.c_void_p()
        lib = self.lib
        lib.expt_store_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p,
                                        ctypes.c_void_p]
        lib.expt_store_close.argtypes = [ctypes.c_void_p]
        lib.expt_store_metric_history.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
            ctypes.POINTER(ctypes.POINTER(MetricRow)), ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_void_p]
        for fn in ("expt_store_get_params", "expt_store_get_tags", "expt_store_get_artifacts",
                   "expt_store_get_events"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                         ctypes.POINTER(KvRows), ctypes.c_void_p]
        lib.expt_kv_rows_release.argtypes = [ctypes.POINTER(KvRows)]
        self.libc.free.argtypes = [ctypes.c_void_p]
        rc = lib.expt_store_open(ctypes.byref(self.st), self.path.encode(), self.err)
        assert rc == 0, self.err.raw[4:1024]

    def close(self):
        self.lib.expt_store_close(self.st)

    def history(self, run_id, key):
        rows = ctypes.POINTER(MetricRow)()
        n = ctypes.c_size_t()
        rc = self.lib.expt_store_metric_history(self.st, run_id.encode(), key.encode(),
                                                ctypes.byref(rows), ctypes.byref(n), self.err)
        assert rc == 0
        out = [(rows[i].step, rows[i].value) for i in range(n.value)]
        self.libc.free(ctypes.cast(rows, ctypes.c_void_p))
        return out

    def _kv(self, fn, run_id):
        r = KvRows()
        assert getattr(self.lib, fn)(self.st, run_id.encode(), ctypes.byref(r), self.err) == 0
        out = [(r.keys[i].decode(), r.values[i].decode() if r.values[i] else None)
               for i in range(r.n)]
        self.lib.expt_kv_rows_release(ctypes.byref(r))
        return out

    def params(self, run_id):
        return dict(self._kv("expt_store_get_params", run_id))

    def tags(self, run_id):
        return dict(self._kv("expt_store_get_tags", run_id))

    def artifacts(self, run_id):
        return self._kv("expt_store_get_artifacts", run_id)

    def events(self, run_id):
        return self._kv("expt_store_get_events", run_id)

    def status(self, run_id):
        db = sqlite3.connect(self.path)
        try:
            row = db.execute("SELECT status, exit_code FROM runs WHERE run_id = ?",
                             (run_id,)).fetchone()
        finally:
            db.close()
        return STATUS[row[0]], row[1]


@pytest.fixture
def store_at():
    opened = []

    def open_store(path):
        s = Store(path)
        opened.append(s)
        return s

    yield open_store
    for s in opened:
        s.close()
