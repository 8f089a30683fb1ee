"""Out of memory inside libexpt: the call raises MemoryError and the process (and the run) go on.
The library's test hook (expt_mem_fail_at, exported by the shared library, not public API) makes
one allocation fail."""

import ctypes

import pytest

import expt
from expt import _lib


@pytest.fixture
def fail_at():
    lib = _lib.load()
    lib.expt_mem_fail_at.argtypes = [ctypes.c_ulong]
    lib.expt_mem_fail_at.restype = None
    yield lib.expt_mem_fail_at
    lib.expt_mem_fail_at(0)


def test_out_of_memory_raises_and_the_run_goes_on(workdir, fail_at):
    with pytest.raises(MemoryError):
        fail_at(1)
        expt.start_run(run_id="oom-1", sinks=["jsonl"], hooks=False)
    fail_at(0)
    run = expt.start_run(run_id="oom-1", sinks=["jsonl"], hooks=False)
    for call in (lambda: expt.param(lr="0.1"), lambda: expt.tag(phase="x"),
                 lambda: expt.histogram("h", [1.0, 2.0]), lambda: expt.log(new_key=1.0)):
        assert run.flush(5)  # the sink threads are idle: the next allocation is the call's
        fail_at(1)
        with pytest.raises(MemoryError):
            call()
        fail_at(0)
        call()
    assert run.flush(5)
    assert run.finish() is True
