"""expt: log params, metrics, tags, artifacts, images and histograms to an expt run.

A thin ctypes layer over libexpt (include/expt.h): every call copies its data into the
library's queues and returns; background threads deliver it to the run's sinks (the store,
the console, a JSONL file, TensorBoard event files).

    import expt

    expt.param(lr=0.01, optimizer="adam")
    for step in range(100):
        expt.log(loss=1.0 / (step + 1), acc=step / 100, step=step)

    with expt.start_run(experiment="mnist", sinks="store,tensorboard") as run:
        run.log({"loss": 0.3}, step=1)

Inside a run launched by `expt run`, the module-level functions log to that run (found from
$EXPT_RUN_ID and friends). Outside expt, the first call starts a standalone run in the store
found from the current directory; it ends when the process exits (failed if the exit status
is not 0). See docs/tracking.md.
"""

import array
import atexit
import ctypes
import functools
import os
import sys
import threading
import warnings

from . import _lib
from ._lib import c_char_p, c_double

__version__ = "0.1.0"

__all__ = [
    "Run",
    "ExptError",
    "start_run",
    "active_run",
    "log",
    "param",
    "params",
    "tag",
    "artifact",
    "image",
    "histogram",
    "set_status",
    "flush",
    "finish",
]


class ExptError(RuntimeError):
    """An error libexpt reported (the run is finished, the store cannot be opened, ...)."""


def _b(s):
    if isinstance(s, bytes):
        return s
    return str(s).encode("utf-8")


def _text(v):
    """A param or tag value as text: True -> "true", 0.1 -> "0.1"."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _step(step):
    return -1 if step is None else int(step)


def _number(key, v):
    """float(v) for anything number-like (NumPy scalars, 0-d tensors); text is refused."""
    if isinstance(v, (str, bytes)):
        raise TypeError("expt: metric %r: %r is not a number (use tag() or param())" % (key, v))
    try:
        return float(v)
    except (TypeError, ValueError):
        raise TypeError("expt: metric %r: %r is not a number" % (key, v)) from None


def _doubles(values):
    """(pointer, count, keepalive) for a sequence or array of numbers as C doubles."""
    if hasattr(values, "__array__") or type(values).__module__.startswith("numpy"):
        import numpy as np

        a = np.ascontiguousarray(np.asarray(values, dtype=np.float64).ravel())
        return (a.ctypes.data if a.size else None), int(a.size), a
    a = array.array("d", (float(v) for v in values))
    if not len(a):
        return None, 0, a
    addr, n = a.buffer_info()
    return addr, n, a


_MAX_KEY_SETS = 4096  # cached key arrays per run


def _in_use(method):
    """Runs method(self, handle, ...) with the handle counted as in use (see Run._enter)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        h = self._enter()
        try:
            return method(self, h, *args, **kwargs)
        finally:
            self._leave()

    return wrapper


class Run:
    """A run being logged to. Thread-safe. Use as a context manager, or call finish()."""

    def __init__(self, handle, lib):
        self._h = handle
        self._lib = lib
        self._keysets = {}
        self._key_bytes = {}
        self._log_metric = lib.expt_log_metric
        self._log_metrics = lib.expt_log_metrics
        self._warned_drop = False
        # Calls inside the library on this handle: finish() clears _h, then waits for them to
        # come out before the library frees the run; a call that starts later raises.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._calls = 0
        self.id = lib.expt_run_id(handle).decode()
        self.experiment = lib.expt_run_experiment(handle).decode()
        self.output_dir = lib.expt_run_output_dir(handle).decode()
        self.artifact_dir = lib.expt_run_artifact_dir(handle).decode()

    def __repr__(self):
        state = "open" if self._h else "finished"
        return "<expt.Run %s (%s)>" % (self.id, state)

    # -- plumbing --

    def _handle(self):
        h = self._h
        if not h:
            raise ExptError("expt: run %s is finished" % self.id)
        return h

    def _enter(self):
        """The handle, counted as in use until _leave(); ExptError once finish() began."""
        with self._lock:
            h = self._h
            if not h:
                raise ExptError("expt: run %s is finished" % self.id)
            self._calls += 1
        return h

    def _leave(self):
        with self._lock:
            self._calls -= 1
            if not self._calls and not self._h:
                self._idle.notify_all()

    def _check(self, rc, what):
        if rc == _lib.OK:
            return
        if rc == _lib.DROPPED:
            if not self._warned_drop:
                self._warned_drop = True
                warnings.warn(
                    "expt: a sink's queue stayed full; some %s were dropped (counted, "
                    "reported at finish)" % what,
                    RuntimeWarning,
                    stacklevel=3,
                )
            return
        if rc == _lib.INVALID:
            raise ValueError("expt: invalid %s (empty key, key with control characters or "
                             "over 1024 bytes, or bad data)" % what)
        if rc == _lib.CLOSED:
            raise ExptError("expt: run %s is finished (or this is a forked child)" % self.id)
        if rc == _lib.NOMEM:
            raise MemoryError("expt: out of memory logging %s (not logged)" % what)
        raise ExptError("expt: logging %s failed (code %d)" % (what, rc))

    def _keyset(self, keys):
        ks = self._keysets.get(keys)
        if ks is None:
            encoded = [_b(k) for k in keys]
            ks = ((c_char_p * len(keys))(*encoded), c_double * len(keys), encoded)
            if len(self._keysets) >= _MAX_KEY_SETS:
                self._keysets.clear()
            self._keysets[keys] = ks
        return ks

    # -- logging --

    def log(self, metrics=None, step=None, *, time_ms=None, **kwargs):
        """Logs metrics: log(loss=0.3, step=10) or log({"loss": 0.3, "acc": 0.9}, step=10).

        All the metrics of one call share the step and the time (milliseconds since the epoch,
        default now): one call into the library however many keys there are."""
        self._log(metrics, kwargs, step, time_ms)

    def _log(self, metrics, kwargs, step, time_ms):
        h = self._enter()
        try:
            self._log_h(h, metrics, kwargs, step, time_ms)
        finally:
            self._leave()

    def _log_h(self, h, metrics, kwargs, step, time_ms):
        step = -1 if step is None else int(step)
        if metrics is None:
            metrics = kwargs
            if len(kwargs) == 1 and not time_ms:
                # The common case, log(loss=x, step=s): the narrowest call into the library.
                for k, v in kwargs.items():
                    kb = self._key_bytes.get(k)
                    if kb is None:
                        kb = self._key_bytes[k] = _b(k)
                    try:
                        rc = self._log_metric(h, kb, v, step)
                    except ctypes.ArgumentError:
                        rc = self._log_metric(h, kb, _number(k, v), step)
                    if rc:
                        self._check(rc, "metrics")
                return
        elif kwargs:
            metrics = dict(metrics, **kwargs)
        n = len(metrics)
        if not n:
            return
        keys = tuple(metrics)
        ks = self._keysets.get(keys)
        if ks is None:
            ks = self._keyset(keys)
        try:
            vals = ks[1](*metrics.values())
        except TypeError:
            vals = ks[1](*[_number(k, v) for k, v in metrics.items()])
        rc = self._log_metrics(h, n, ks[0], vals, step, time_ms or 0)
        if rc:
            self._check(rc, "metrics")

    def param(self, key=None, value=None, /, **kwargs):
        """Logs params: param("lr", 0.1) or param(lr=0.1, optimizer="adam")."""
        items = list(kwargs.items())
        if key is not None:
            items.insert(0, (key, value))
        self._kv(self._lib.expt_log_param, items, "param")

    def params(self, mapping):
        """Logs every param of a mapping (any names, "key" and "value" included)."""
        self._kv(self._lib.expt_log_param, list(dict(mapping).items()), "param")

    def tag(self, key=None, value=None, /, **kwargs):
        """Sets tags: tag("phase", "eval") or tag(phase="eval")."""
        items = list(kwargs.items())
        if key is not None:
            items.insert(0, (key, value))
        self._kv(self._lib.expt_set_tag, items, "tag")

    @_in_use
    def _kv(self, h, fn, items, what):
        for k, v in items:
            self._check(fn(h, _b(k), _b(_text(v))), what)

    @_in_use
    def artifact(self, h, path, name=None):
        """Copies a file or directory into the run's artifacts (as name, default its base
        name) before returning; returns the path of the copy."""
        err = _lib.Error()
        path = os.fspath(path)
        rc = self._lib.expt_log_artifact(
            h, _b(path), _b(name) if name else None, ctypes.byref(err)
        )
        if rc:
            msg = err.message.decode("utf-8", "replace")
            if rc == _lib.IO:
                raise OSError(msg)
            if rc == _lib.INVALID:
                raise ValueError(msg)
            if rc == _lib.NOMEM:
                raise MemoryError("expt: " + msg)
            raise ExptError(msg)
        base = name or os.path.basename(os.path.normpath(path))
        return os.path.join(self.artifact_dir, base)

    @_in_use
    def image(self, h, name, img, step=None):
        """Logs an image: PNG bytes, or an HxW / HxWxC array (uint8, or floats in [0, 1]; C is
        1, 2, 3 or 4) when NumPy is installed."""
        if isinstance(img, (bytes, bytearray, memoryview)):
            png = bytes(img)
        else:
            from . import _png

            try:
                png = _png.from_array(img)
            except ImportError:
                raise TypeError("expt: image() takes PNG bytes (arrays need NumPy)") from None
        rc = self._lib.expt_log_image(h, _b(name), png, len(png), _step(step))
        if rc == _lib.INVALID:
            raise ValueError("expt: image %r: not a PNG image, or a bad name" % name)
        self._check(rc, "image")

    @_in_use
    def histogram(self, h, name, values=None, step=None, *, edges=None, counts=None):
        """Logs a histogram: of values (a list or array; 30 equal buckets; NaN and infinities
        left out), or of buckets given as edges (n + 1) and counts (n):
        histogram("w", (edges, counts)) or histogram("w", edges=..., counts=...)."""
        if (
            edges is None
            and isinstance(values, tuple)
            and len(values) == 2
            and hasattr(values[0], "__len__")
            and hasattr(values[1], "__len__")
        ):
            edges, counts = values
            values = None
        if edges is not None:
            ep, en, ek = _doubles(edges)
            cp, cn, ck = _doubles(counts if counts is not None else [])
            if en != cn + 1 or cn == 0:
                raise ValueError(
                    "expt: histogram %r: %d edges for %d counts (want counts + 1)" % (name, en, cn)
                )
            rc = self._lib.expt_log_histogram_buckets(h, _b(name), ep, cp, cn, _step(step))
            del ek, ck
        else:
            if values is None:
                raise TypeError("expt: histogram() needs values, or edges and counts")
            vp, vn, vk = _doubles(values)
            rc = self._lib.expt_log_histogram(h, _b(name), vp, vn, _step(step))
            del vk
        if rc == _lib.INVALID:
            raise ValueError("expt: histogram %r: bad name, or edges that do not increase or "
                             "negative counts" % name)
        self._check(rc, "histogram")

    @_in_use
    def set_status(self, h, status):
        """The status the run ends with: "succeeded", "failed" or "stopped"."""
        rc = self._lib.expt_run_set_status(h, _b(status))
        if rc == _lib.INVALID:
            raise ValueError("expt: status must be succeeded, failed or stopped, got %r" % status)
        self._check(rc, "status")

    @_in_use
    def flush(self, h, timeout=None):
        """Waits until every sink has what was logged so far (timeout in seconds, None: no
        limit). Returns False when a sink is failing or the time ran out."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        rc = self._lib.expt_run_flush(h, ms)
        if rc in (_lib.CLOSED, _lib.NOMEM):
            self._check(rc, "flush")
        return rc == _lib.OK

    def finish(self, status=None):
        """Delivers what is queued, closes the sinks and ends the run (a standalone run is
        marked done with status). Returns True when every sink got everything; otherwise the
        library has said what was missed on stderr. Finishing twice is a no-op."""
        with self._lock:
            h, self._h = self._h, None
            # Calls already inside the library finish first (in the library they see the run
            # closed and come out quickly); later ones raise ExptError.
            while h and self._calls:
                self._idle.wait()
        if not h:
            return True
        _forget(self, finished=True)
        err = _lib.Error()
        rc = self._lib.expt_run_finish(h, _b(status) if status else None, ctypes.byref(err))
        if rc == _lib.INVALID:
            raise ValueError(err.message.decode("utf-8", "replace"))
        return rc == _lib.OK

    @_in_use
    def stats(self, h):
        """Counters of each sink: name, delivered, pending, dropped, failing."""
        out = []
        for i in range(self._lib.expt_run_sink_count(h)):
            s = _lib.SinkStats()
            if self._lib.expt_run_sink_stats(h, i, ctypes.byref(s)) == 0:
                out.append({
                    "name": s.name.decode(),
                    "delivered": s.delivered,
                    "pending": s.pending,
                    "dropped": s.dropped,
                    "failing": bool(s.failing),
                })
        return out

    @property
    def finished(self):
        return not self._h

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            status = None
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "stopped"
        else:
            status = "failed"
        self.finish(status)
        return False


# -- the module-level run --

_state_lock = threading.RLock()
_stack = []  # runs started with start_run (innermost last), then the implicit one
_implicit = None  # the run the module-level functions opened on first use
_implicit_done = False  # ... and it was finished: module-level calls raise from then on
_unhandled = None  # the exception that ended the script, seen by our sys.excepthook


def _forget(run, finished=False):
    global _implicit, _implicit_done
    with _state_lock:
        if run in _stack:
            _stack.remove(run)
        if finished and run is _implicit:
            _implicit, _implicit_done = None, True


def start_run(
    experiment=None,
    *,
    run_id=None,
    sinks=None,
    store=None,
    output_dir=None,
    artifact_dir=None,
    jsonl=None,
    tensorboard_dir=None,
    queue_size=0,
    queue_wait_ms=0,
    linger_ms=0,
    drop_when_full=False,
    hooks=True,
):
    """Opens a run and makes it the one expt.log() and friends use until it finishes.

    Without arguments: the run expt launched this process for ($EXPT_RUN_ID), else a new
    standalone run. sinks: "store,jsonl" or a list; default $EXPT_SINKS, else "store"."""
    lib = _lib.load()
    o = _lib.Options()
    o.version = _lib.OPTIONS_VERSION
    if sinks is not None and not isinstance(sinks, (str, bytes)):
        sinks = ",".join(sinks)
    for field, value in (
        ("run_id", run_id),
        ("experiment", experiment),
        ("store", store),
        ("sinks", sinks),
        ("output_dir", output_dir),
        ("artifact_dir", artifact_dir),
        ("jsonl_path", jsonl),
        ("tensorboard_dir", tensorboard_dir),
    ):
        if value is not None:
            setattr(o, field, _b(os.fspath(value) if isinstance(value, os.PathLike) else value))
    o.queue_size = int(queue_size)
    o.queue_wait_ms = int(queue_wait_ms)
    o.linger_ms = int(linger_ms)
    o.flags = (_lib.RUN_DROP_WHEN_FULL if drop_when_full else 0) | (
        0 if hooks else _lib.RUN_NO_HOOKS
    )
    handle = ctypes.c_void_p()
    err = _lib.Error()
    rc = lib.expt_run_open(ctypes.byref(handle), ctypes.byref(o), ctypes.byref(err))
    if rc:
        msg = err.message.decode("utf-8", "replace")
        if rc == _lib.NOMEM:
            raise MemoryError("expt: " + msg)
        raise (ValueError if rc == _lib.INVALID else ExptError)("expt: " + msg)
    run = Run(handle.value, lib)
    with _state_lock:
        _stack.append(run)
    return run


def active_run():
    """The run the module-level functions log to, opened from the environment on first use.
    Once that run is finished (expt.finish()), ExptError: only start_run() opens another."""
    global _implicit
    with _state_lock:
        if _stack:
            return _stack[-1]
        if _implicit_done:
            raise ExptError("expt: the run is finished (expt.finish() was called); "
                            "use expt.start_run() to open another")
        _implicit = start_run()
        return _implicit


def log(metrics=None, step=None, *, time_ms=None, **kwargs):
    """expt.log(loss=0.3, step=10) or expt.log({"loss": 0.3}, step=10): see Run.log."""
    (_stack[-1] if _stack else active_run())._log(metrics, kwargs, step, time_ms)


def param(key=None, value=None, /, **kwargs):
    active_run().param(key, value, **kwargs)


def params(mapping):
    active_run().params(mapping)


def tag(key=None, value=None, /, **kwargs):
    active_run().tag(key, value, **kwargs)


def artifact(path, name=None):
    return active_run().artifact(path, name)


def image(name, img, step=None):
    active_run().image(name, img, step)


def histogram(name, values=None, step=None, *, edges=None, counts=None):
    active_run().histogram(name, values, step, edges=edges, counts=counts)


def set_status(status):
    active_run().set_status(status)


def flush(timeout=None):
    with _state_lock:
        runs = list(_stack)
    return all([r.flush(timeout) for r in runs])


def finish(status=None):
    """Finishes the current run (no-op when there is none)."""
    with _state_lock:
        run = _stack[-1] if _stack else None
    return run.finish(status) if run else True


def _excepthook(exc_type, exc, tb):
    # Only an exception that really ends the script marks its runs failed: sys.last_value is
    # not proof (in Jupyter it is whatever an earlier cell raised).
    global _unhandled
    _unhandled = exc
    _prev_excepthook(exc_type, exc, tb)


_prev_excepthook = sys.excepthook
sys.excepthook = _excepthook


def _at_exit():
    # An unhandled exception (already printed) decides the status here; otherwise the library
    # finishes the runs at exit() with the exit status. Either way the data is delivered first.
    exc = _unhandled
    with _state_lock:
        runs = list(_stack)
    for run in reversed(runs):
        try:
            if exc is not None:
                run.finish("stopped" if isinstance(exc, KeyboardInterrupt) else "failed")
            else:
                run.flush(30)
        except Exception:
            pass


atexit.register(_at_exit)
