"""TensorBoard event files written by libexpt, read back by TensorBoard's own EventAccumulator:
scalars, images, histograms and hparams must match what was logged, exactly."""

import bisect
import glob
import math
import os

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

import expt
from expt import _png
from conftest import f32

EVERYTHING = {"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}


def load(tb_dir):
    assert glob.glob(os.path.join(tb_dir, "events.out.tfevents.*"))
    acc = event_accumulator.EventAccumulator(str(tb_dir), size_guidance=EVERYTHING)
    acc.Reload()
    return acc


def histogram_of(values, k=30):
    """What expt.histogram(values) should give: 30 equal buckets over [min, max], bucket i
    holding (limits[i-1], limits[i]], the first also min."""
    v = [x for x in values if math.isfinite(x)]
    lo, hi = min(v), max(v)
    if lo == hi:
        k = 1
    w = (hi - lo) / k
    limits = [hi if i + 1 == k else lo + w * (i + 1) for i in range(k)]
    counts = [0.0] * k
    for x in v:
        counts[min(bisect.bisect_left(limits, x), k - 1)] += 1
    s = sq = 0.0
    for x in v:
        s += x
        sq += x * x
    return dict(min=lo, max=hi, num=float(len(v)), sum=s, sum_squares=sq, bucket_limit=limits,
                bucket=counts)


def gradient_png(w, h):
    pixels = bytes((x * 7 + y * 13 + c * 50) % 256 for y in range(h) for x in range(w)
                   for c in range(3))
    return _png.encode(pixels, h, w, 3)


def test_scalars_images_histograms_hparams(workdir):
    tb = workdir / "tb"
    run = expt.start_run(sinks="tensorboard", tensorboard_dir=tb)
    run.param(lr=0.01, optimizer="adam", layers=3, use_bn=True)
    run.param("note", "three words here")
    values = {}
    for step in range(100):
        v = {"loss": 1.0 / (step + 1), "acc": step / 99.0, "big": 1e30 * step, "tiny": 1e-30}
        run.log(v, step=step)
        for k, x in v.items():
            values.setdefault(k, []).append((step, x))
    for i in range(5):
        run.log(nostep=i * 0.5)  # no step: TensorBoard gets 0, 1, 2, ...
    png = gradient_png(17, 9)
    run.image("samples/gradient", png, step=3)
    run.image("samples/gradient", gradient_png(4, 4), step=4)
    data = [math.sin(i) * 3 for i in range(1000)] + [float("nan")]
    run.histogram("weights", data, step=7)
    run.histogram("buckets", ([0.0, 0.5, 2.0, 10.0], [3, 0, 7]), step=8)
    run.histogram("flat", [2.5] * 10, step=9)
    assert run.finish() is True

    acc = load(tb)
    tags = acc.Tags()
    assert sorted(tags["scalars"]) == ["acc", "big", "loss", "nostep", "tiny"]
    for k, pts in values.items():
        got = [(e.step, e.value) for e in acc.Scalars(k)]
        assert got == [(s, f32(x)) for s, x in pts], k
    assert [(e.step, e.value) for e in acc.Scalars("nostep")] == [
        (i, f32(i * 0.5)) for i in range(5)]

    imgs = acc.Images("samples/gradient")
    assert [(e.step, e.width, e.height) for e in imgs] == [(3, 17, 9), (4, 4, 4)]
    assert imgs[0].encoded_image_string == png

    (h,) = acc.Histograms("weights")
    assert h.step == 7
    want = histogram_of(data)
    got = h.histogram_value
    for field in ("min", "max", "num", "sum", "sum_squares"):
        assert getattr(got, field) == want[field], field
    assert list(got.bucket_limit) == want["bucket_limit"]
    assert list(got.bucket) == want["bucket"]
    assert sum(got.bucket) == 1000

    (b,) = acc.Histograms("buckets")
    assert b.step == 8
    assert (b.histogram_value.min, b.histogram_value.max) == (0.0, 10.0)
    assert list(b.histogram_value.bucket_limit) == [0.5, 2.0, 10.0]
    assert list(b.histogram_value.bucket) == [3.0, 0.0, 7.0]
    assert b.histogram_value.num == 10.0
    assert b.histogram_value.sum == 3 * 0.25 + 7 * 6.0

    (f,) = acc.Histograms("flat")
    assert list(f.histogram_value.bucket_limit) == [2.5]
    assert list(f.histogram_value.bucket) == [10.0]

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"])
    assert start.version == 0
    hp = start.session_start_info.hparams
    assert set(hp) == {"lr", "optimizer", "layers", "use_bn", "note"}
    assert hp["lr"].number_value == 0.01
    assert hp["layers"].number_value == 3
    assert hp["optimizer"].string_value == "adam"
    assert hp["use_bn"].bool_value is True
    assert hp["note"].string_value == "three words here"
    assert start.session_start_info.start_time_secs > 0
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert end.session_end_info.status == api_pb2.STATUS_SUCCESS


def test_hparams_from_params_file_and_failed_status(workdir):
    """Inside a run launched by expt, the params come from $EXPT_PARAMS_FILE."""
    (workdir / "params.json").write_text('{"lr": 0.1, "batch": 64, "opt": "sgd"}')
    env = {"EXPT_RUN_ID": "mnist-3", "EXPT_EXPERIMENT": "mnist",
           "EXPT_OUTPUT_DIR": str(workdir / "out"), "EXPT_PARAMS_FILE": str(workdir / "params.json"),
           "EXPT_SINKS": "tensorboard"}
    os.environ.update(env)
    try:
        with __import__("pytest").raises(ZeroDivisionError):
            with expt.start_run(hooks=False) as run:
                assert run.id == "mnist-3"
                run.log(loss=1.5, step=0)
                1 / 0
    finally:
        for k in env:
            os.environ.pop(k)
    acc = load(workdir / "out" / "tensorboard")
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(0, 1.5)]
    content = acc.PluginTagToContent("hparams")
    hp = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info.hparams
    assert hp["lr"].number_value == 0.1
    assert hp["batch"].number_value == 64
    assert hp["opt"].string_value == "sgd"
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert end.session_end_info.status == api_pb2.STATUS_FAILURE


def test_numpy_images_and_histograms(workdir):
    np = __import__("pytest").importorskip("numpy")
    tb = workdir / "tb"
    with expt.start_run(sinks="tensorboard", tensorboard_dir=tb) as run:
        rgb = (np.arange(6 * 5 * 3).reshape(6, 5, 3) * 3 % 256).astype(np.uint8)
        gray = np.linspace(0, 1, 20).reshape(4, 5)
        run.image("rgb", rgb, step=1)
        run.image("gray", gray, step=1)
        vals = np.random.default_rng(0).normal(size=(10, 10)).astype(np.float32)
        run.histogram("np", vals, step=2)
        run.histogram("np_buckets", (np.array([0, 1, 2]), np.array([5, 6])), step=3)
    acc = load(tb)
    (e,) = acc.Images("rgb")
    assert (e.width, e.height) == (5, 6)
    assert e.encoded_image_string == _png.encode(rgb.tobytes(), 6, 5, 3)
    (g,) = acc.Images("gray")
    want_gray = (np.clip(gray, 0, 1) * 255 + 0.5).astype(np.uint8)
    assert g.encoded_image_string == _png.encode(want_gray.tobytes(), 4, 5, 1)
    (h,) = acc.Histograms("np")
    want = histogram_of([float(x) for x in vals.ravel()])
    assert list(h.histogram_value.bucket) == want["bucket"]
    assert h.histogram_value.sum == want["sum"]
    (b,) = acc.Histograms("np_buckets")
    assert list(b.histogram_value.bucket) == [5.0, 6.0]


def test_hparams_plugin_compares_runs_by_params(workdir):
    """TensorBoard's HParams plugin itself builds the experiment from two runs' files: each
    param an hparam with the right type and values, the scalars its metrics."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    for i, (lr, opt) in enumerate([(0.1, "adam"), (0.01, "sgd")]):
        with expt.start_run(sinks="tensorboard", run_id="r-%d" % i,
                            tensorboard_dir=workdir / "tb" / ("r-%d" % i), hooks=False) as run:
            run.param(lr=lr, opt=opt, warmup=i == 0)
            for s in range(5):
                run.log({"loss": lr * s, "acc": 1 - lr}, step=s)
    root = str(workdir / "tb")
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(root)
    mux.Reload()
    tb = base_plugin.TBContext(logdir=root, multiplexer=mux,
                               data_provider=data_provider.MultiplexerDataProvider(mux, root))
    bc = backend_context.Context(tb)
    rctx = context.RequestContext()
    content = bc.hparams_metadata(rctx, "")
    assert sorted(content) == ["r-0", "r-1"]
    exp = bc.experiment_from_metadata(rctx, "", True, content,
                                      bc.hparams_from_data_provider(rctx, "", 0))
    infos = {h.name: h for h in exp.hparam_infos}
    assert set(infos) == {"lr", "opt", "warmup"}
    assert infos["lr"].type == api_pb2.DATA_TYPE_FLOAT64
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == (
        0.01, 0.1)
    assert infos["opt"].type == api_pb2.DATA_TYPE_STRING
    assert sorted(v.string_value for v in infos["opt"].domain_discrete.values) == ["adam", "sgd"]
    assert infos["warmup"].type == api_pb2.DATA_TYPE_BOOL
    assert sorted(m.name.tag for m in exp.metric_infos) == ["acc", "loss"]
