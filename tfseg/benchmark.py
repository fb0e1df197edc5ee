"""Measure a model:
``python -m tfseg.benchmark --model=skipnet --encoder=mobilenet --input_size=512x1024``.

Per input size: trainable parameters, GFLOPs (1 MAC = 2 FLOPs; convolutions, transposed
convolutions and dense layers, see ``tfseg.flops``) and, per runtime, latency at batch 1
(``--warmup`` untimed runs each, then ``--runs`` rounds in which every runtime is called once in
turn: median, p90) and FPS (1000 / median ms). Interleaving keeps the comparison fair on a machine
shared with other work.

Runtimes (``--runtimes``, comma-separated):

- ``keras``: the Keras model called in a ``tf.function`` (TensorFlow's CPU kernels);
  ``keras_bf16`` the same weights with every layer computing in bfloat16 (``mixed_bfloat16``
  policy; oneDNN's bf16 kernels pay on CPUs with AVX-512 BF16 or AMX); ``keras_fp16`` in float16
  (``mixed_float16``: for GPUs; CPUs have no fast float16 convolutions);
- ``saved_model``: the SavedModel of ``tfseg.export`` (BN folded), its ``serving_default``;
- ``tflite``, ``tflite_fp16``, ``tflite_int8``: LiteRT (``ai-edge-litert``, XNNPACK) on the
  ``tfseg.export`` conversion; int8 is calibrated on 4 random-normal inputs here (latency only: use
  ``tfseg.export --verify`` for accuracy; a new network's BN statistics are first measured on the
  same inputs, ``--bn_statistics``, so that its activations have a trained network's scale and
  its int8 graph is one a trained network would give); ``tflite_int8_mixed`` is int8 with the
  class-score layers left in float (``tfseg.export --int8_float_layers=scores``);
- ``onnxruntime``: the ``tfseg.export`` ONNX graph (opset 17) on onnxruntime's CPU provider;
  ``onnxruntime_int8`` its int8 QDQ version (``tfseg.export --format=onnx --precision=int8``),
  calibrated on 4 random-normal inputs like ``tflite_int8``;
- ``openvino``, ``openvino_bf16``, ``openvino_int8``: OpenVINO's CPU plugin on the
  ``tfseg.export --format=openvino`` IR (from the same ONNX graph; bf16 the fp32 IR run in
  bfloat16, unavailable on a CPU without AVX-512 BF16 or AMX; int8 quantized by NNCF on the same 4
  inputs);
- ``auto``: the candidates of ``tfseg.export --format=auto --target=cpu`` (``tflite``,
  ``tflite_int8``, ``tflite_int8_mixed``, ``onnxruntime``, ``onnxruntime_int8``, ``openvino``,
  ``openvino_bf16``, ``openvino_int8``); the summary
  names the fastest. Speed only: the export's ``--format=auto`` adds the accuracy guard (each
  candidate must pass ``--verify`` on dataset images) that random weights cannot give;
- ``tensorrt``: ONNX -> TensorRT fp16 engine, where ``tensorrt`` and a GPU are present (skipped
  with a note elsewhere);
- ``keras_train``, ``keras_bf16_train``, ``keras_fp16_train``: one training step (SGD with
  momentum, cross-entropy, a fixed random batch) of the Keras model in float32 /
  ``mixed_bfloat16`` / ``mixed_float16`` (with dynamic loss scaling, as ``tfseg.train
  --precision=mixed_float16``); FPS counts images;
- ``none``: parameters and GFLOPs only.

Keras backends: the ``keras*`` runtimes run on whichever backend ``KERAS_BACKEND`` selects
(``tfseg.bench.backends``): TensorFlow, JAX (one ``jax.jit``-compiled call) or PyTorch, on a CPU or
a GPU, synchronised with the device, the logits left on it. Under JAX or PyTorch the benchmark
imports no TensorFlow at all (the other runtimes need it and are refused by name), so it runs on a
machine that has only JAX or PyTorch: ``KERAS_BACKEND=jax python -m tfseg.benchmark --model=ssn
--runtimes=keras,keras_bf16,keras_train --batch_sizes=1,8 --input_size=512x1024``.
``--batch_sizes`` times each size at several batches (the exported formats run batch 1 only).

``--threads`` sets the CPU threads of every runtime (TF intra-op, LiteRT, onnxruntime).
``--input_size=sweep`` is the papers' sweep: 640x360, 1280x720, 1920x1080, 512x256, 1024x512,
2048x1024 (W x H). A size that is not a multiple of the model's stride (32) is padded up (360 ->
384, 720 -> 736, 1080 -> 1088) and the table says so: latency and GFLOPs are those of the padded
size.

The run also measures this machine's fp32 matrix-multiply throughput (numpy and TF, square sizes
1024 / 2048, best of a few runs) and prints each runtime's achieved GFLOP/s (model GFLOPs / median
latency) as a fraction of it. ``--json`` writes everything, ``--plot`` a PNG of FPS vs resolution.
``--model_path`` benchmarks a trained ``.keras`` model instead of a freshly built one.
``--kernels`` times single convolution layers in LiteRT fp32 against int8 instead of a model
(``tfseg.bench.kernels``): whether int8 can be faster on this CPU at all.
"""

import json
import os
import sys

from absl import app, flags

import tfseg
from tfseg.bench import report
from tfseg.bench.backends import BACKEND_RUNTIMES, backend, device_description
from tfseg.bench.measure import measure, model_targets, parse_sizes
from tfseg.bench.runtimes import RUNTIMES, expand_runtimes
from tfseg.registry import ENCODERS, MODELS
from tfseg.timing import matmul_gflops

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Define the program's flags on ``fv``."""
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
        "runtimes",
        ["keras"],
        f"Runtimes to time: {RUNTIMES} (none: counts only), or auto (the CPU candidates of "
        "tfseg.export --format=auto).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "threads", None, "CPU threads (default: all).", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_list(
        "batch_sizes",
        ["1"],
        "Images per call, comma-separated (batch > 1: the keras* runtimes only).",
        flag_values=fv,
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
        "bn_statistics",
        True,
        "Give a new (random-weight) network BN statistics measured on the 4 calibration inputs "
        "before timing an int8 runtime, as a trained one has (tfseg.models.batchnorm); "
        "--nobn_statistics keeps BN's initial ones. Not applied to --model_path.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "matmul", True, "Measure the fp32 matmul GFLOP/s of this machine.", flag_values=fv
    )
    flags.DEFINE_bool(
        "kernels",
        False,
        "Instead of a model: LiteRT fp32 against int8 throughput of single convolution layers "
        "(tfseg.bench.kernels), to see whether int8 can pay on this CPU.",
        flag_values=fv,
    )
    flags.DEFINE_string("json", None, "Write the results as JSON here.", flag_values=fv)
    flags.DEFINE_string("plot", None, "Write a PNG of FPS vs resolution here.", flag_values=fv)


def _say(line=""):
    """Print ``line`` now (the table grows while the benchmark runs)."""
    print(line, flush=True)


def _batch_sizes(values):
    """``["1", "8"]`` -> ``[1, 8]``; ``ValueError`` naming a value that is not a positive int."""
    out = []
    for v in values:
        if not str(v).strip().isdigit() or int(v) < 1:
            raise ValueError(f"--batch_sizes takes positive integers, got {v!r}")
        out.append(int(v))
    return out


def _check_backend(runtimes, kernels):
    """``ValueError`` naming the runtimes (or ``--kernels``) that need TensorFlow when the Keras
    backend is another one."""
    name = backend()
    if name == "tensorflow":
        return
    if kernels:
        raise ValueError(f"--kernels needs the TensorFlow backend (KERAS_BACKEND is {name})")
    bad = [r for r in runtimes if r not in BACKEND_RUNTIMES and r != "none"]
    if bad:
        raise ValueError(
            f"runtime(s) {', '.join(bad)} need the TensorFlow backend (KERAS_BACKEND is {name}); "
            f"on {name}: {', '.join(BACKEND_RUNTIMES)}"
        )


def _check_flags():
    """``(sizes, encoder_kwargs)`` from the flags; exits with ``error: ...`` on a bad value."""
    try:
        sizes = parse_sizes(FLAGS.input_size)
        FLAGS.runtimes = expand_runtimes(FLAGS.runtimes)
        FLAGS.batch_sizes = _batch_sizes(FLAGS.batch_sizes)
        _check_backend(FLAGS.runtimes, FLAGS.kernels)
        encoder_kwargs = json.loads(FLAGS.encoder_kwargs)
        if FLAGS.model_path and not os.path.exists(FLAGS.model_path):
            raise ValueError(f"model file not found: {FLAGS.model_path}")
    except (ValueError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    return sizes, encoder_kwargs


def _set_threads(threads):
    """The backend's CPU threads (``--threads``): TensorFlow's intra- and inter-op pools,
    PyTorch's intra-op pool; JAX fixes its threads at start-up (a note says so)."""
    name = backend()
    if name == "torch":
        import torch

        torch.set_num_threads(threads)
    elif name == "jax":
        _say("note: --threads is not applied on the JAX backend (XLA sets its threads at start-up)")
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _write_json(document):
    """Write ``document`` to ``--json`` atomically."""
    from tfseg.files import write_json_atomic

    write_json_atomic(FLAGS.json, document)


def run_kernels():
    """``--kernels``: the single-layer fp32 / int8 table (with the matmul reference)."""
    from tfseg.bench import kernels

    peak = matmul_gflops() if FLAGS.matmul else None
    if peak:
        _say(report.format_matmul_macs(peak))
    from tfseg.cpuinfo import cpu_int8_features

    found = cpu_int8_features()
    _say(f"int8 dot-product CPU flags: {', '.join(found) if found else 'none'}")
    _say(report.KERNEL_HEADER)
    rows = kernels.measure_kernels(
        threads=FLAGS.threads, warmup=FLAGS.warmup, runs=FLAGS.runs, log=_say
    )
    if FLAGS.json:
        document = report.kernels_json(rows, threads=FLAGS.threads, peak=peak, int8_cpu_flags=found)
        _write_json(document)


def _document(rows, peak):
    """The ``--json`` document of ``rows`` so far."""
    return report.results_json(
        rows, threads=FLAGS.threads, peak=peak, backend=backend(), device=device_description()
    )


def _measure_all(targets, sizes, encoder_kwargs, peak, timed):
    """One row per target, size and batch, each runtime's line printed as it is measured; the
    ``--json`` file is rewritten after every row (a stopped run keeps what it measured)."""
    rows = []
    for name, enc in targets:
        for size in sizes:
            for batch in FLAGS.batch_sizes:
                try:
                    row = measure(
                        name, enc, FLAGS.num_classes, size, runtimes=FLAGS.runtimes,
                        warmup=FLAGS.warmup, runs=FLAGS.runs, encoder_kwargs=encoder_kwargs,
                        threads=FLAGS.threads, model_path=FLAGS.model_path,
                        peak_gflops=peak["best"] if peak else None, log=_say, batch=batch,
                        bn_statistics=FLAGS.bn_statistics,
                    )  # fmt: skip
                except ValueError as e:
                    print(f"error: {name}/{enc} at {size}: {e}", file=sys.stderr)
                    sys.exit(1)
                if not timed:
                    _say(report.format_line(row, "none"))
                rows.append(row)
                if FLAGS.json:
                    _write_json(_document(rows, peak))
    return rows


def run_models(sizes, encoder_kwargs):
    """The model table: matmul reference, a line per runtime, the summary, JSON and plot."""
    # --encoder's default (mobilenet) is for decoders; a network built on an encoder keeps its own
    # unless --encoder is given.
    given = FLAGS["encoder"].present or FLAGS.model not in MODELS
    targets = model_targets(
        FLAGS.model,
        FLAGS.encoder if given else None,
        model_path=FLAGS.model_path,
        pairs=FLAGS.pairs,
        every=FLAGS.all,
    )
    timed = [r for r in FLAGS.runtimes if r != "none"]
    if timed:
        _say(f"Keras backend: {backend()}, device: {device_description()}")
    peak = matmul_gflops() if FLAGS.matmul and timed else None
    if peak:
        _say(report.format_matmul(peak))
    _say(report.HEADER)
    rows = _measure_all(targets, sizes, encoder_kwargs, peak, timed)
    print()
    print(report.format_rows(rows, peak))
    if FLAGS.json:
        _write_json(_document(rows, peak))
    if FLAGS.plot:
        report.plot_fps(rows, FLAGS.plot)
        print(f"wrote {FLAGS.plot}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    sizes, encoder_kwargs = _check_flags()
    if FLAGS.threads:
        _set_threads(FLAGS.threads)
    if FLAGS.kernels:
        run_kernels()
    else:
        run_models(sizes, encoder_kwargs)


if __name__ == "__main__":
    define_flags()
    app.run(main)
