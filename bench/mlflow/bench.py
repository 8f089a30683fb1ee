"""Metric points per second into one MLflow server: expt's mlflow sink (through the Python
binding: each call queues and returns; the sink's thread sends runs/log-batch requests) against
the mlflow client's log_batch (1000 points per call, the server's limit) and log_metric (one
request per point), all in this one process, alternating, median of R rounds. A figure is the
time from the first call until the server holds every point (expt: flush() returned True; it
is checked by counting the points on the server afterwards)."""
import os, statistics, sys, time

import expt
import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

uri = os.environ["MLFLOW_TRACKING_URI"]
N = int(os.environ.get("N", "100000"))          # points per round (expt, log_batch)
N1 = int(os.environ.get("N1", "2000"))          # points per round (log_metric)
R = int(os.environ.get("R", "3"))
KEYS = 10                                       # points per step
client = MlflowClient(uri)
exp = client.get_experiment_by_name("bench") or client.get_experiment(client.create_experiment("bench"))
exp_id = exp.experiment_id


def count(run_id):
    return sum(len(client.get_metric_history(run_id, f"m{k}")) for k in range(KEYS))


def bench_expt(i):
    os.environ.pop("MLFLOW_RUN_ID", None)
    run = expt.start_run(experiment="bench", run_id=f"expt-{os.getpid()}-{i}", sinks=["mlflow"],
                         hooks=False)
    names = [f"m{k}" for k in range(KEYS)]
    t0 = time.perf_counter()
    for step in range(N // KEYS):
        run.log({n: step * 0.5 + k for k, n in enumerate(names)}, step=step)
    calls.append((time.perf_counter() - t0) / (N // KEYS))
    assert run.flush(600), "expt: not delivered"
    dt = time.perf_counter() - t0
    run.finish()
    runs = client.search_runs([exp_id], f"tags.`expt.run_id` = '{run.id}'")
    assert count(runs[0].info.run_id) == N, "expt: points missing"
    return N / dt


def bench_log_batch(i):
    r = client.create_run(exp_id, run_name=f"batch-{i}")
    ts = int(time.time() * 1000)
    t0 = time.perf_counter()
    batch = []
    for step in range(N // KEYS):
        for k in range(KEYS):
            batch.append(Metric(f"m{k}", step * 0.5 + k, ts + step, step))
        if len(batch) >= 1000:
            client.log_batch(r.info.run_id, metrics=batch, synchronous=True)
            batch = []
    if batch:
        client.log_batch(r.info.run_id, metrics=batch, synchronous=True)
    dt = time.perf_counter() - t0
    client.set_terminated(r.info.run_id)
    assert count(r.info.run_id) == N, "log_batch: points missing"
    return N / dt


def bench_log_metric(i):
    r = client.create_run(exp_id, run_name=f"single-{i}")
    t0 = time.perf_counter()
    for step in range(N1 // KEYS):
        for k in range(KEYS):
            client.log_metric(r.info.run_id, f"m{k}", step * 0.5 + k, step=step, synchronous=True)
    dt = time.perf_counter() - t0
    client.set_terminated(r.info.run_id)
    return N1 / dt


res = {"expt": [], "batch": [], "single": []}
calls = []  # seconds per expt logging call (10 points), before delivery
for i in range(R):
    res["expt"].append(bench_expt(i))
    res["batch"].append(bench_log_batch(i))
    res["single"].append(bench_log_metric(i))
e, b, s = (statistics.median(res[k]) for k in ("expt", "batch", "single"))
print(f"| tool | points per round | points/s (median of {R}) | expt / tool |")
print("|---|---|---|---|")
print(f"| expt mlflow sink (`run.log`, 10 keys per call) | {N} | {e:,.0f} | 1.00 |")
print(f"| mlflow `MlflowClient.log_batch` (1000 per call) | {N} | {b:,.0f} | {e / b:.2f} |")
print(f"| mlflow `MlflowClient.log_metric` | {N1} | {s:,.0f} | {e / s:.1f} |")
print(f"\nexpt's logging calls returned in {statistics.median(calls) * 1e6:.1f} µs each (10 points; "
      f"median of {R}), the network left to the sink's thread.")
print(f"mlflow {mlflow.__version__}; rounds: " + "; ".join(
    f"{k}: " + ", ".join(f"{v:,.0f}" for v in res[k]) for k in res))
