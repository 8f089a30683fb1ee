"""Logging benchmark from Python: one workload (STEPS steps of KEYS metrics) through expt's binding
and through the peers a user would otherwise use. Time runs from the first call until the data is
written (finish / end_run / close). Usage: py_bench.py MODE POINTS DIR
Prints one line: "<mode> <points> <seconds> <points/s>"."""

import os
import sys
import time

KEYS = 10


def workload(points):
    steps = points // KEYS
    keys = ["metric_%d" % k for k in range(KEYS)]
    return steps, keys


def expt_batch(points):
    import expt

    steps, keys = workload(points)
    run = expt.start_run(experiment="bench", sinks="store")
    t0 = time.perf_counter()
    for s in range(steps):
        run.log({k: (s * KEYS + i) * 0.001 for i, k in enumerate(keys)}, step=s)
    assert run.finish()
    return steps * KEYS, time.perf_counter() - t0


def expt_single(points):
    import expt

    steps, keys = workload(points)
    run = expt.start_run(experiment="bench", sinks="store")
    t0 = time.perf_counter()
    for s in range(steps):
        for i, k in enumerate(keys):
            expt.log({k: (s * KEYS + i) * 0.001}, step=s)
    assert run.finish()
    return steps * KEYS, time.perf_counter() - t0


def expt_kwarg(points, sinks="store"):
    import expt

    steps, _ = workload(points)
    run = expt.start_run(experiment="bench", sinks=sinks)
    t0 = time.perf_counter()
    for s in range(steps * KEYS):
        expt.log(loss=s * 0.001, step=s)
    assert run.finish()
    return steps * KEYS, time.perf_counter() - t0


def expt_kwarg_tb(points):
    return expt_kwarg(points, sinks="tensorboard")


def _mlflow(points, synchronous):
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))
    steps, keys = workload(points)
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        t0 = time.perf_counter()
        for s in range(steps):
            metrics = {k: (s * KEYS + i) * 0.001 for i, k in enumerate(keys)}
            if synchronous:
                mlflow.log_metrics(metrics, step=s)
            else:
                mlflow.log_metrics(metrics, step=s, synchronous=False)
        if not synchronous:
            mlflow.flush_async_logging()
    return steps * KEYS, time.perf_counter() - t0


def mlflow_sync(points):
    return _mlflow(points, True)


def mlflow_async(points):
    return _mlflow(points, False)


def tensorboardx(points):
    from tensorboardX import SummaryWriter

    steps, keys = workload(points)
    w = SummaryWriter(logdir=os.path.abspath("tbx"))
    t0 = time.perf_counter()
    for s in range(steps):
        for i, k in enumerate(keys):
            w.add_scalar(k, (s * KEYS + i) * 0.001, s)
    w.close()
    return steps * KEYS, time.perf_counter() - t0


def torch_tensorboard(points):
    from torch.utils.tensorboard import SummaryWriter

    steps, keys = workload(points)
    w = SummaryWriter(log_dir=os.path.abspath("torchtb"))
    t0 = time.perf_counter()
    for s in range(steps):
        for i, k in enumerate(keys):
            w.add_scalar(k, (s * KEYS + i) * 0.001, s)
    w.close()
    return steps * KEYS, time.perf_counter() - t0


MODES = {
    "expt-batch": expt_batch,
    "expt-single": expt_single,
    "expt-kwarg": expt_kwarg,
    "expt-kwarg-tb": expt_kwarg_tb,
    "mlflow-sync": mlflow_sync,
    "mlflow-async": mlflow_async,
    "tensorboardX": tensorboardx,
    "torch-tensorboard": torch_tensorboard,
}


def main():
    mode, points, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(d, exist_ok=True)
    os.chdir(d)
    n, secs = MODES[mode](points)
    print("%s %d %.3f %.0f" % (mode, n, secs, n / secs))


if __name__ == "__main__":
    main()
