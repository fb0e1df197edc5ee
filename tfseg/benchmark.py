"""Measure a model: ``python -m tfseg.benchmark --model=skipnet --encoder=mobilenet --input_size=512x1024``.

Per input size: trainable parameters, GFLOPs (1 MAC = 2 FLOPs; convolutions, transposed
convolutions and dense layers, see ``tfseg.flops``) and, per runtime, latency (warm-up runs, then
timed runs: median and p90) and FPS at batch 1. ``--pairs`` measures every encoder x decoder pair.
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

import tfseg
from tfseg.config import parse_size
from tfseg.registry import DECODERS, ENCODERS

FLAGS = flags.FLAGS
RUNTIMES = ["keras", "none"]


def define_flags(fv=FLAGS):
    flags.DEFINE_enum(
        "model", "skipnet", tfseg.list_models(), "Decoder or complete network.", flag_values=fv
    )
    flags.DEFINE_enum(
        "encoder", "mobilenet", ENCODERS.names(), "Encoder for decoders.", flag_values=fv
    )
    flags.DEFINE_string("encoder_kwargs", "{}", "Encoder options as JSON.", flag_values=fv)
    flags.DEFINE_integer("num_classes", 19, "Output classes.", lower_bound=2, flag_values=fv)
    flags.DEFINE_list("input_size", ["512x1024"], "Comma-separated HxW sizes.", flag_values=fv)
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
    flags.DEFINE_string("json", None, "Write the results as JSON here.", flag_values=fv)


def measure(
    name, encoder, num_classes, size, *, runtimes=("keras",), warmup=3, runs=10, encoder_kwargs=None
):
    """Params, GFLOPs and latency of one model at one size; returns a dict."""
    from tfseg.flops import count_params, model_macs

    model = tfseg.build_model(
        name, num_classes, encoder=encoder, input_shape=(*size, 3), encoder_kwargs=encoder_kwargs
    )
    row = {
        "model": name,
        "encoder": encoder if name in DECODERS else None,
        "input_size": f"{size[0]}x{size[1]}",
        "params": count_params(model),
        "gflops": 2.0 * model_macs(model) / 1e9,
    }
    if "keras" in runtimes:
        row["keras"] = time_keras(model, size, warmup=warmup, runs=runs)
    return row


def time_keras(model, size, *, warmup, runs):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, *size, 3], tf.float32)])
    def f(x):
        return model(x, training=False)

    x = tf.random.normal((1, *size, 3))
    for _ in range(max(1, warmup)):
        f(x).numpy()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f(x).numpy()
        times.append(time.perf_counter() - t)
    return latency_stats(times)


def latency_stats(times):
    ms = np.asarray(times) * 1e3
    med = float(np.median(ms))
    return {
        "median_ms": med,
        "p90_ms": float(np.percentile(ms, 90)),
        "fps": 1e3 / med,
        "runs": len(ms),
    }


def format_rows(rows):
    lines = [f"{'model':<24}{'size':>10}{'params':>12}{'GFLOPs':>9}{'keras ms':>10}{'FPS':>8}"]
    for r in rows:
        label = r["model"] + (f"-{r['encoder']}" if r.get("encoder") else "")
        k = r.get("keras")
        lat = f"{k['median_ms']:10.1f}{k['fps']:8.2f}" if k else f"{'-':>10}{'-':>8}"
        lines.append(f"{label:<24}{r['input_size']:>10}{r['params']:>12,}{r['gflops']:>9.2f}{lat}")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        sizes = [parse_size(s, "--input_size") for s in FLAGS.input_size]
        bad = [r for r in FLAGS.runtimes if r not in RUNTIMES]
        if bad:
            raise ValueError(f"unknown runtime(s) {bad}; choose from {RUNTIMES}")
        encoder_kwargs = json.loads(FLAGS.encoder_kwargs)
    except (ValueError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if FLAGS.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    if FLAGS.pairs:
        targets = [(d, e) for d in DECODERS.names() for e in ENCODERS.names()]
    else:
        targets = [(FLAGS.model, FLAGS.encoder)]
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
                )
            except ValueError as e:
                print(f"error: {name}/{enc} at {size}: {e}", file=sys.stderr)
                sys.exit(1)
            rows.append(row)
            print(format_rows([row]).splitlines()[-1], flush=True)
    print()
    print(format_rows(rows))
    if FLAGS.json:
        from tfseg.utils import write_json_atomic

        write_json_atomic(FLAGS.json, {"cpu_count": os.cpu_count(), "results": rows})


if __name__ == "__main__":
    define_flags()
    app.run(main)
