"""Finding libexpt and declaring its functions for ctypes (include/expt.h is the reference)."""

import ctypes
import ctypes.util
import glob
import os
import sys
import threading

from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_int64,
    c_size_t,
    c_uint,
    c_uint64,
    c_void_p,
)

# enum expt_result
OK = 0
INVALID = -1
CLOSED = -2
DROPPED = -3
IO = -4
STORE = -5
INCOMPLETE = -6
NOMEM = -7  # out of memory: the binding raises MemoryError

# expt_run_options.flags
RUN_NO_HOOKS = 0x1
RUN_ATTACH = 0x2
RUN_DROP_WHEN_FULL = 0x4
RUN_NO_STDOUT_FALLBACK = 0x8

OPTIONS_VERSION = 1

REPORT_FN = CFUNCTYPE(None, c_char_p, c_char_p, c_void_p)


class Options(Structure):
    _fields_ = [
        ("version", c_uint),
        ("run_id", c_char_p),
        ("experiment", c_char_p),
        ("store", c_char_p),
        ("sinks", c_char_p),
        ("output_dir", c_char_p),
        ("artifact_dir", c_char_p),
        ("jsonl_path", c_char_p),
        ("tensorboard_dir", c_char_p),
        ("queue_size", c_size_t),
        ("queue_wait_ms", c_int),
        ("linger_ms", c_int),
        ("flags", c_int),
        ("report", c_void_p),
        ("payload", c_void_p),
    ]


class Error(Structure):
    _fields_ = [("code", c_int), ("message", c_char * 1024)]


class SinkStats(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("delivered", c_uint64),
        ("pending", c_uint64),
        ("dropped", c_uint64),
        ("failing", c_int),
    ]


_SIGNATURES = {
    "expt_run_open": (c_int, [POINTER(c_void_p), POINTER(Options), POINTER(Error)]),
    "expt_run_id": (c_char_p, [c_void_p]),
    "expt_run_experiment": (c_char_p, [c_void_p]),
    "expt_run_output_dir": (c_char_p, [c_void_p]),
    "expt_run_artifact_dir": (c_char_p, [c_void_p]),
    "expt_log_metric": (c_int, [c_void_p, c_char_p, c_double, c_int64]),
    "expt_log_metric_at": (c_int, [c_void_p, c_char_p, c_double, c_int64, c_int64]),
    "expt_log_metrics": (
        c_int,
        [c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_double), c_int64, c_int64],
    ),
    "expt_log_param": (c_int, [c_void_p, c_char_p, c_char_p]),
    "expt_set_tag": (c_int, [c_void_p, c_char_p, c_char_p]),
    "expt_log_artifact": (c_int, [c_void_p, c_char_p, c_char_p, POINTER(Error)]),
    "expt_log_image": (c_int, [c_void_p, c_char_p, c_char_p, c_size_t, c_int64]),
    "expt_log_histogram": (c_int, [c_void_p, c_char_p, c_void_p, c_size_t, c_int64]),
    "expt_log_histogram_buckets": (
        c_int,
        [c_void_p, c_char_p, c_void_p, c_void_p, c_size_t, c_int64],
    ),
    "expt_run_set_status": (c_int, [c_void_p, c_char_p]),
    "expt_run_flush": (c_int, [c_void_p, c_int]),
    "expt_run_finish": (c_int, [c_void_p, c_char_p, POINTER(Error)]),
    "expt_run_sink_count": (c_size_t, [c_void_p]),
    "expt_run_sink_stats": (c_int, [c_void_p, c_size_t, POINTER(SinkStats)]),
    "expt_version": (c_char_p, []),
}

_lock = threading.Lock()
_lib = None


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "libexpt.so*")))
    found += ["libexpt.so.0", "libexpt.so"]
    name = ctypes.util.find_library("expt")
    if name:
        found.append(name)
    # `make install` puts it in PREFIX/lib, which the loader may not search before ldconfig.
    for prefix in (sys.prefix, sys.base_prefix, "/usr/local", "/usr"):
        found.append(os.path.join(prefix, "lib", "libexpt.so.0"))
    return found


def load():
    """Returns the loaded library: $EXPT_LIBRARY, else next to this package, else the system's."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        explicit = os.environ.get("EXPT_LIBRARY")
        tried = []
        lib = None
        for path in [explicit] if explicit else _candidates():
            try:
                lib = ctypes.CDLL(path)
                break
            except OSError as e:
                tried.append("%s (%s)" % (path, e))
        if lib is None:
            raise ImportError(
                "expt: cannot load libexpt; tried: %s. Build expt and set EXPT_LIBRARY to "
                "the path of libexpt.so, or install it ('make install')." % "; ".join(tried)
            )
        for name, (res, args) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        _lib = lib
        return lib
