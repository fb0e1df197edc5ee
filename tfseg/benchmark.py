"""Measure a model: ``python -m tfseg.benchmark --model=skipnet --encoder=mobilenet --input_size=512x1024``.

Per input size: trainable parameters, GFLOPs (1 MAC = 2 FLOPs; convolutions, transposed
convolutions and dense layers, see ``tfseg.flops``) and, per runtime, latency at batch 1 (``--warmup``
untimed runs each, then ``--runs`` rounds in which every runtime is called once in turn:
median, p90) and FPS (1000 / median ms). Interleaving keeps the comparison fair on a machine shared
with other work.

Runtimes (``--runtimes``, comma-separated):

- ``keras``: the Keras model called in a ``tf.function`` (TensorFlow's CPU kernels);
- ``saved_model``: the SavedModel of ``tfseg.export`` (BN folded), its ``serving_default``;
- ``tflite``, ``tflite_fp16``, ``tflite_int8``: LiteRT (``ai-edge-litert``, XNNPACK) on the
  ``tfseg.export`` conversion; int8 is calibrated on 4 random-normal inputs here (latency only: use
  ``tfseg.export --verify`` for accuracy); ``tflite_int8_mixed`` is int8 with the class-score
  layers left in float (``tfseg.export --int8_float_layers=scores``);
- ``onnxruntime``: the ``tfseg.export`` ONNX graph (opset 17) on onnxruntime's CPU provider;
- ``tensorrt``: ONNX -> TensorRT fp16 engine, where ``tensorrt`` and a GPU are present (skipped
  with a note elsewhere);
- ``none``: parameters and GFLOPs only.

``--threads`` sets the CPU threads of every runtime (TF intra-op, LiteRT, onnxruntime).
``--input_size=sweep`` is the papers' sweep: 640x360, 1280x720, 1920x1080, 512x256, 1024x512,
2048x1024 (W x H). A size that is not a multiple of the model's stride (32) is padded up (360 ->
384, 720 -> 736, 1080 -> 1088) and the table says so: latency and GFLOPs are those of the padded size.

The run also measures this machine's fp32 matrix-multiply throughput (numpy and TF, square sizes
1024 / 2048, best of a few runs) and prints each runtime's achieved GFLOP/s (model GFLOPs / median
latency) as a fraction of it. ``--json`` writes everything, ``--plot`` a PNG of FPS vs resolution.
``--model_path`` benchmarks a trained ``.keras`` model instead of a freshly built one.
``--kernels`` times single convolution layers in LiteRT fp32 against int8 instead of a model
(``tfseg.export_lib.kernels``): whether int8 can be faster on this CPU at all.
"""

import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

import tfseg
from tfseg.config import parse_size
from tfseg.registry import DECODERS, ENCODERS, MODELS

FLAGS = flags.FLAGS
RUNTIMES = [
    "keras",
    "saved_model",
    "tflite",
    "tflite_fp16",
    "tflite_int8",
    "tflite_int8_mixed",
    "onnxruntime",
    "tensorrt",
    "none",
]
# The papers' resolution sweep, as H x W (the issue and the papers write W x H).
SWEEP = ["360x640", "720x1280", "1080x1920", "256x512", "512x1024", "1024x2048"]


def define_flags(fv=FLAGS):
    flags.DEFINE_enum(
        "model", "skipnet", tfseg.list_models(), "Decoder or complete network.", flag_values=fv
    )
    flags.DEFINE_enum(
        "encoder", "mobilenet", ENCODERS.names(), "Encoder for decoders.", flag_values=fv
    )
    flags.DEFINE_string("encoder_kwargs", "{}", "Encoder options as JSON.", flag_values=fv)
    flags.DEFINE_integer("num_classes", 19, "Output classes.", lower_bound=2, flag_values=fv)
    flags.DEFINE_list(
        "input_size", ["512x1024"], "Comma-separated HxW sizes, or 'sweep'.", flag_values=fv
    )
    flags.DEFINE_list(
        "runtimes", ["keras"], f"Runtimes to time: {RUNTIMES} (none: counts only).", flag_values=fv
    )
    flags.DEFINE_integer(
        "threads", None, "CPU threads (default: all).", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_integer("warmup", 3, "Untimed runs first.", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("runs", 10, "Timed runs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_bool(
        "pairs",
        False,
        "Measure every encoder x decoder pair (ignores --model/--encoder).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "all",
        False,
        "Measure every registered model: all encoder x decoder pairs and complete networks.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "model_path",
        None,
        "Benchmark this .keras model (ignores --model/--encoder).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "matmul", True, "Measure the fp32 matmul GFLOP/s of this machine.", flag_values=fv
    )
    flags.DEFINE_bool(
        "kernels",
        False,
        "Instead of a model: LiteRT fp32 against int8 throughput of single convolution layers "
        "(tfseg.export_lib.kernels), to see whether int8 can pay on this CPU.",
        flag_values=fv,
    )
    flags.DEFINE_string("json", None, "Write the results as JSON here.", flag_values=fv)
    flags.DEFINE_string("plot", None, "Write a PNG of FPS vs resolution here.", flag_values=fv)


# --------------------------------------------------------------------------------------------------
# sizes and the machine's reference throughput
# --------------------------------------------------------------------------------------------------


def parse_sizes(values):
    """``["512x1024", "sweep"]`` -> list of (H, W) (the sweep expanded, duplicates dropped)."""
    out = []
    for v in values:
        for s in SWEEP if str(v).strip().lower() == "sweep" else [v]:
            size = parse_size(s, "--input_size")
            if size not in out:
                out.append(size)
    return out


def padded(size, stride=32):
    return tuple(-(-d // stride) * stride for d in size)


def matmul_gflops(sizes=(1024, 2048), repeats=3):
    """Best fp32 GFLOP/s of a square matmul on this machine: ``{"numpy": .., "tensorflow": .., "best": ..}``.

    numpy uses its BLAS with all its threads; TF uses the configured intra-op threads.
    """
    import tensorflow as tf

    def best_of(fn, flops):
        fn()
        best = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = max(best, flops / (time.perf_counter() - start) / 1e9)
        return best

    result = {"numpy": 0.0, "tensorflow": 0.0}
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        ta, tb = tf.constant(a), tf.constant(b)
        tf_matmul = tf.function(tf.matmul)
        result["numpy"] = max(result["numpy"], best_of(lambda: a @ b, 2.0 * n**3))  # noqa: B023
        result["tensorflow"] = max(
            result["tensorflow"],
            best_of(lambda: tf_matmul(ta, tb).numpy(), 2.0 * n**3),  # noqa: B023
        )
    result["best"] = max(result["numpy"], result["tensorflow"])
    return result


# --------------------------------------------------------------------------------------------------
# runtimes: each returns a callable x -> output (numpy), or raises RuntimeUnavailable
# --------------------------------------------------------------------------------------------------


class RuntimeUnavailable(Exception):
    """The runtime cannot run here (e.g. TensorRT without a GPU); the table shows the reason."""


def _keras_fn(model, size, threads, tmp):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, *size, 3], tf.float32)])
    def f(x):
        return model(x, training=False)

    return lambda x: f(x).numpy()


def _folded(model, cache, fmt, precision="fp32"):
    """The export copy of ``model`` that ``tfseg.export --format=fmt --precision=precision``
    converts (cached)."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.pipeline import rewrites

    kw = rewrites(fmt, precision)
    key = (fmt, tuple(sorted(kw.items())))
    if key not in cache:
        cache[key] = inference_model(model, **kw)[0]
    return cache[key]


def make_runner(runtime, model, size, *, threads=None, workdir, cache):
    """A callable running ``model`` at ``size`` with ``runtime`` (artifacts built on the fly)."""
    if runtime == "keras":
        return _keras_fn(model, size, threads, workdir)
    if runtime == "saved_model":
        from tfseg.export_lib.saved_model import SavedModelRunner, write_saved_model

        path = os.path.join(workdir, f"sm_{size[0]}x{size[1]}")
        write_saved_model(_folded(model, cache, "saved_model"), path, input_size=size, batch_size=1)
        return SavedModelRunner(path)
    if runtime.startswith("tflite"):
        from tfseg.export_lib.tflite import (
            LiteRTRunner,
            convert_tflite,
            float_layer_names,
        )

        precision = {"tflite": "fp32", "tflite_fp16": "fp16"}.get(runtime, "int8")
        rng = np.random.default_rng(0)
        rep = [rng.standard_normal((1, *size, 3), dtype=np.float32) for _ in range(4)]
        folded = _folded(model, cache, "tflite", precision)
        float_layers = float_layer_names(folded, "scores") if runtime.endswith("_mixed") else []
        content = convert_tflite(
            folded,
            input_size=size,
            precision=precision,
            representative=rep,
            float_layers=float_layers,
        )
        return LiteRTRunner(content, threads=threads)
    if runtime in ("onnxruntime", "tensorrt"):
        from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx

        proto = convert_onnx(_folded(model, cache, "onnx"), opset=17, input_shape=(1, *size))
        if runtime == "onnxruntime":
            return OnnxRunner(proto, threads=threads)
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise RuntimeUnavailable("tensorrt not installed") from None
        import onnx

        from tfseg.deploy import build_engine, engine

        onnx_path = os.path.join(workdir, "model.onnx")
        engine_path = os.path.join(workdir, f"model_{size[0]}x{size[1]}.engine")
        onnx.save(proto, onnx_path)
        try:
            build_engine.build_engine(onnx_path, engine_path, precision="fp16")
            trt_runner = engine.TensorRTRunner(engine_path)
        except RuntimeError as e:
            raise RuntimeUnavailable(str(e).splitlines()[0]) from None
        return lambda x: trt_runner(x)["logits"]
    raise ValueError(f"unknown runtime {runtime!r}; choose from {RUNTIMES}")


def time_runner(fn, x, *, warmup, runs):
    for _ in range(max(1, warmup)):
        fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return latency_stats(times)


def time_keras(model, size, *, warmup, runs):
    """Latency of the Keras model in a ``tf.function`` (kept for callers of the first version)."""
    x = np.random.default_rng(0).standard_normal((1, *size, 3), dtype=np.float32)
    return time_runner(_keras_fn(model, size, None, None), x, warmup=warmup, runs=runs)


def latency_stats(times):
    ms = np.asarray(times) * 1e3
    med = float(np.median(ms))
    return {
        "median_ms": med,
        "p90_ms": float(np.percentile(ms, 90)),
        "fps": 1e3 / med,
        "runs": len(ms),
    }


# --------------------------------------------------------------------------------------------------
# one model at one size
# --------------------------------------------------------------------------------------------------


def _build(name, encoder, num_classes, size, encoder_kwargs, model_path):
    if model_path:
        from tfseg.models.saving import load_model

        model = load_model(model_path)
        static = tuple(model.inputs[0].shape[1:3])
        if None not in static and static != tuple(size):
            raise ValueError(f"{model_path} is built for {static[0]}x{static[1]}, not {size}")
        return model
    from tfseg.models import needs_encoder

    # Complete networks (ssn, erfnet, ...) take no encoder: --encoder's default applies to decoders.
    encoder = encoder if needs_encoder(name) else None
    encoder_kwargs = encoder_kwargs if needs_encoder(name) else None
    return tfseg.build_model(
        name, num_classes, encoder=encoder, input_shape=(*size, 3), encoder_kwargs=encoder_kwargs
    )


def measure(name, encoder, num_classes, size, *, runtimes=("keras",), warmup=3, runs=10,
            encoder_kwargs=None, threads=None, model_path=None, peak_gflops=None,
            log=None):  # fmt: skip
    """Params, GFLOPs and per-runtime latency of one model at one size (padded to the stride)."""
    from tfseg.flops import count_params, model_macs
    from tfseg.models import model_stride, stride_of

    if model_path:
        model = _build(name, encoder, num_classes, size, encoder_kwargs, model_path)
        run_size = padded(size, model_stride(model))
    else:
        stride = stride_of(name)
        run_size = padded(size, stride)
        model = _build(name, encoder, num_classes, run_size, encoder_kwargs, model_path)
    sized = _static_copy(model, run_size) if None in model.inputs[0].shape[1:3] else model
    gflops = 2.0 * model_macs(sized) / 1e9
    row = {
        "model": model.name if model_path else name,
        "encoder": encoder if (name in DECODERS and not model_path) else None,
        "input_size": f"{run_size[0]}x{run_size[1]}",
        "requested_size": f"{size[0]}x{size[1]}",
        "padded": run_size != tuple(size),
        "params": count_params(model),
        "gflops": gflops,
        "runtimes": [r for r in runtimes if r != "none"],
    }
    x = np.random.default_rng(0).standard_normal((1, *run_size, 3), dtype=np.float32)
    workdir = tempfile.mkdtemp(prefix="tfseg_bench_")
    cache, runners = {}, {}
    try:
        for runtime in row["runtimes"]:
            try:
                runners[runtime] = make_runner(
                    runtime, model, run_size, threads=threads, workdir=workdir, cache=cache
                )
            except RuntimeUnavailable as e:
                row[runtime] = {"skipped": str(e)}
        times = time_interleaved(runners, x, warmup=warmup, runs=runs)
        for runtime in row["runtimes"]:
            if runtime in times:
                stats = latency_stats(times[runtime])
                stats["gflops_per_s"] = gflops / (stats["median_ms"] / 1e3)
                if peak_gflops:
                    stats["fraction_of_matmul"] = stats["gflops_per_s"] / peak_gflops
                row[runtime] = stats
            if log:
                log(format_line(row, runtime))
    finally:
        runners.clear()
        shutil.rmtree(workdir, ignore_errors=True)
    return row


def time_interleaved(runners, x, *, warmup, runs):
    """``{name: [seconds] * runs}``: every runner warmed up, then timed round-robin, one call of
    each per round, so that load from other processes on a shared machine hits all runtimes alike."""
    for fn in runners.values():
        for _ in range(max(1, warmup)):
            fn(x)
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, fn in runners.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    return times


def _static_copy(model, size):
    """The same functional graph rebuilt on a static-size input (for counting MACs; new weights)."""
    import keras

    inp = keras.Input((*size, 3))
    # a model loaded from a .keras file keeps its input as a one-element list
    return keras.models.clone_model(
        model, input_tensors=[inp] if isinstance(model.input, (list, tuple)) else inp
    )


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------

_HEADER = (
    f"{'model':<22}{'size':>11}{'params':>12}{'GFLOPs':>8}  {'runtime':<18}"
    f"{'median ms':>10}{'p90 ms':>9}{'FPS':>8}{'GFLOP/s':>9}{'% matmul':>9}"
)


def _label(row):
    return row["model"] + (f"-{row['encoder']}" if row.get("encoder") else "")


def format_line(row, runtime):
    size = row["input_size"] + ("*" if row.get("padded") else "")
    head = f"{_label(row):<22}{size:>11}{row['params']:>12,}{row['gflops']:>8.2f}  {runtime:<18}"
    r = row.get(runtime)
    if r is None:
        return head + f"{'-':>10}"
    if "skipped" in r:
        return head + f"  ({r['skipped']})"
    frac = r.get("fraction_of_matmul")
    return head + (
        f"{r['median_ms']:>10.1f}{r['p90_ms']:>9.1f}{r['fps']:>8.2f}{r['gflops_per_s']:>9.1f}"
        f"{'' if frac is None else f'{100 * frac:>8.1f}%'}"
    )


def format_rows(rows, peak=None):
    lines = [_HEADER]
    for r in rows:
        runtimes = r.get("runtimes") or [k for k in ("keras",) if k in r] or ["none"]
        for runtime in runtimes:
            lines.append(format_line(r, runtime))
    if any(r.get("padded") for r in rows):
        lines.append("* padded up to a multiple of the model's stride (requested size in the JSON)")
    if peak:
        lines.append(
            f"fp32 matmul on this machine: {peak['best']:.1f} GFLOP/s "
            f"(numpy {peak['numpy']:.1f}, TensorFlow {peak['tensorflow']:.1f}); "
            "'% matmul' = achieved GFLOP/s / that"
        )
    return "\n".join(lines)


def plot_fps(rows, path):
    """PNG of FPS vs input pixels, one line per (model, runtime)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfseg.files import atomic_path

    fig, ax = plt.subplots(figsize=(8, 5))
    series = {}
    for r in rows:
        h, w = (int(v) for v in r["input_size"].split("x"))
        for runtime in r.get("runtimes", []):
            stats = r.get(runtime) or {}
            if "fps" in stats:
                series.setdefault((_label(r), runtime), []).append(
                    (h * w, stats["fps"], f"{w}x{h}")
                )
    for (label, runtime), points in sorted(series.items()):
        points.sort()
        ax.plot(
            [p[0] / 1e6 for p in points],
            [p[1] for p in points],
            marker="o",
            label=f"{label} {runtime}",
        )
    ax.set_xlabel("input size (megapixels, W x H at the points)")
    ax.set_ylabel("FPS (batch 1)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ticks = sorted({p[0]: p[2] for pts in series.values() for p in pts}.items())
    ax.set_xticks([t[0] / 1e6 for t in ticks])
    ax.set_xticklabels([t[1] for t in ticks], rotation=30, fontsize=8)
    if series:
        ax.legend(fontsize=7)
    ax.set_title("tfseg benchmark: FPS vs resolution")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def run_kernels():
    """``--kernels``: the single-layer fp32 / int8 table (with the matmul reference)."""
    from tfseg.export_lib import kernels

    peak = matmul_gflops() if FLAGS.matmul else None
    if peak:
        print(f"fp32 matmul: {peak['best']:.1f} GFLOP/s = {peak['best'] / 2:.1f} GMAC/s", flush=True)
    found = kernels.cpu_int8_features()
    print(f"int8 dot-product CPU flags: {', '.join(found) if found else 'none'}", flush=True)
    print(kernels.KERNEL_HEADER, flush=True)
    rows = kernels.measure_kernels(
        threads=FLAGS.threads,
        warmup=FLAGS.warmup,
        runs=FLAGS.runs,
        log=lambda line: print(line, flush=True),
    )
    if FLAGS.json:
        from tfseg.files import write_json_atomic

        write_json_atomic(
            FLAGS.json,
            {"cpu_count": os.cpu_count(), "threads": FLAGS.threads, "matmul": peak,
             "int8_cpu_flags": found, "kernels": rows},
        )  # fmt: skip


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        sizes = parse_sizes(FLAGS.input_size)
        bad = [r for r in FLAGS.runtimes if r not in RUNTIMES]
        if bad:
            raise ValueError(f"unknown runtime(s) {bad}; choose from {RUNTIMES}")
        encoder_kwargs = json.loads(FLAGS.encoder_kwargs)
        if FLAGS.model_path and not os.path.exists(FLAGS.model_path):
            raise ValueError(f"model file not found: {FLAGS.model_path}")
    except (ValueError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if FLAGS.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    if FLAGS.kernels:
        run_kernels()
        return
    if FLAGS.model_path:
        targets = [(None, None)]
    elif FLAGS.all or FLAGS.pairs:
        targets = [(d, e) for d in DECODERS.names() for e in ENCODERS.names()]
        if FLAGS.all:
            targets += [(m, None) for m in MODELS.names()]
    else:
        targets = [(FLAGS.model, FLAGS.encoder)]
    peak = None
    timed = [r for r in FLAGS.runtimes if r != "none"]
    if FLAGS.matmul and timed:
        peak = matmul_gflops()
        print(
            f"fp32 matmul: {peak['best']:.1f} GFLOP/s (numpy {peak['numpy']:.1f}, "
            f"TensorFlow {peak['tensorflow']:.1f})",
            flush=True,
        )
    print(_HEADER, flush=True)
    rows = []
    for name, enc in targets:
        for size in sizes:
            try:
                row = measure(
                    name,
                    enc,
                    FLAGS.num_classes,
                    size,
                    runtimes=FLAGS.runtimes,
                    warmup=FLAGS.warmup,
                    runs=FLAGS.runs,
                    encoder_kwargs=encoder_kwargs,
                    threads=FLAGS.threads,
                    model_path=FLAGS.model_path,
                    peak_gflops=peak["best"] if peak else None,
                    log=lambda line: print(line, flush=True),
                )
            except ValueError as e:
                print(f"error: {name}/{enc} at {size}: {e}", file=sys.stderr)
                sys.exit(1)
            if not timed:
                print(format_line(row, "none"), flush=True)
            rows.append(row)
    print()
    print(format_rows(rows, peak))
    if FLAGS.json:
        from tfseg.files import write_json_atomic

        write_json_atomic(
            FLAGS.json,
            {
                "cpu_count": os.cpu_count(),
                "threads": FLAGS.threads,
                "matmul": peak,
                "results": rows,
            },
        )
    if FLAGS.plot:
        plot_fps(rows, FLAGS.plot)
        print(f"wrote {FLAGS.plot}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
