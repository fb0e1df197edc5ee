"""One model at one input size: parameters, GFLOPs and per-runtime latency (one result row).

Sizes that are not a multiple of the model's stride are padded up (the row says so); the
``runtimes`` are timed interleaved (``timing.time_interleaved``).
"""

import shutil
import tempfile

import numpy as np

from tfseg.arrays import padded_size, parse_size
from tfseg.bench.report import format_line
from tfseg.bench.runtimes import RuntimeUnavailable, calibration_inputs, make_runner
from tfseg.registry import DECODERS, ENCODERS, MODELS
from tfseg.timing import latency_stats, time_interleaved

# The papers' resolution sweep, as H x W (the issue and the papers write W x H).
SWEEP = ["360x640", "720x1280", "1080x1920", "256x512", "512x1024", "1024x2048"]


def parse_sizes(values):
    """``["512x1024", "sweep"]`` -> list of (H, W) (the sweep expanded, duplicates dropped)."""
    out = []
    for v in values:
        for s in SWEEP if str(v).strip().lower() == "sweep" else [v]:
            size = parse_size(s, "--input_size")
            if size not in out:
                out.append(size)
    return out


def model_targets(model, encoder, *, model_path=None, pairs=False, every=False):
    """The ``(name, encoder)`` pairs to measure: one model, every decoder x encoder pair
    (``pairs``), those plus the complete networks (``every``), or ``(None, None)`` for a file."""
    if model_path:
        return [(None, None)]
    if every or pairs:
        targets = [(d, e) for d in DECODERS.names() for e in ENCODERS.names()]
        if every:
            targets += [(m, None) for m in MODELS.names()]
        return targets
    return [(model, encoder)]


def _build(name, encoder, num_classes, size, encoder_kwargs, model_path):
    """The model file at ``model_path`` (checked against ``size``), or a new registry model."""
    if model_path:
        from tfseg.models.saving import load_model

        model = load_model(model_path)
        static = tuple(model.inputs[0].shape[1:3])
        if None not in static and static != tuple(size):
            raise ValueError(f"{model_path} is built for {static[0]}x{static[1]}, not {size}")
        return model
    import tfseg
    from tfseg.models import takes_encoder

    # Networks without an encoder (ssn, erfnet, ...) ignore --encoder; those built on one get their
    # own default unless the caller names one (``None``).
    encoder = encoder if takes_encoder(name) else None
    encoder_kwargs = encoder_kwargs if takes_encoder(name) else None
    return tfseg.build_model(
        name, num_classes, encoder=encoder, input_shape=(*size, 3), encoder_kwargs=encoder_kwargs
    )


def _static_copy(model, size):
    """The same functional graph rebuilt on a static-size input (for counting MACs; new weights)."""
    import keras

    inp = keras.Input((*size, 3))
    # a model loaded from a .keras file keeps its input as a one-element list
    return keras.models.clone_model(
        model, input_tensors=[inp] if isinstance(model.input, (list, tuple)) else inp
    )


def _model_at(name, encoder, num_classes, size, encoder_kwargs, model_path, bn_statistics):
    """``(model, run_size)``: the model to time and ``size`` padded to its stride. A new
    (random-weight) network gets BN statistics measured on the calibration inputs when
    ``bn_statistics`` (``tfseg.models.batchnorm``: with BN's initial ones its activations shrink
    layer by layer, which changes what an int8 export is)."""
    from tfseg.models import model_stride, stride_of

    if model_path:
        model = _build(name, encoder, num_classes, size, encoder_kwargs, model_path)
        return model, padded_size(size, model_stride(model))
    run_size = padded_size(size, stride_of(name))
    model = _build(name, encoder, num_classes, run_size, encoder_kwargs, model_path)
    if bn_statistics:
        from tfseg.models.batchnorm import recalibrate_batchnorm

        # one batch of the four: statistics over images (a globally pooled map has one pixel)
        recalibrate_batchnorm(model, [np.concatenate(calibration_inputs(run_size))])
    return model, run_size


def _encoder_of(name, encoder):
    """The encoder model ``name`` is built on (``None``: a network without one)."""
    from tfseg.models import resolve_encoder, takes_encoder

    return resolve_encoder(name, encoder) if takes_encoder(name) else None


def _base_row(model, name, encoder, size, run_size, runtimes, model_path):
    """The row's model columns: names, sizes, parameters and GFLOPs (at ``run_size``)."""
    from tfseg.flops import count_params, model_macs

    sized = _static_copy(model, run_size) if None in model.inputs[0].shape[1:3] else model
    return {
        "model": model.name if model_path else name,
        "encoder": None if model_path else _encoder_of(name, encoder),
        "input_size": f"{run_size[0]}x{run_size[1]}",
        "requested_size": f"{size[0]}x{size[1]}",
        "padded": run_size != tuple(size),
        "params": count_params(model),
        "gflops": 2.0 * model_macs(sized) / 1e9,
        "runtimes": [r for r in runtimes if r != "none"],
    }


#: a training step's FLOPs as a multiple of the forward pass's (the backward pass computes two
#: products per forward one: the gradients of the inputs and of the weights), the usual estimate
TRAIN_FLOPS_FACTOR = 3.0


def _runtime_stats(seconds, gflops, peak_gflops, batch=1, train=False):
    """Latency statistics (per call of ``batch`` images; ``fps`` = images per second) plus
    achieved GFLOP/s (a training step counted as ``TRAIN_FLOPS_FACTOR`` forward passes) and its
    fraction of ``peak_gflops``."""
    stats = latency_stats(seconds)
    stats["fps"] *= batch
    work = gflops * batch * (TRAIN_FLOPS_FACTOR if train else 1.0)
    stats["gflops_per_s"] = work / (stats["median_ms"] / 1e3)
    if peak_gflops:
        stats["fraction_of_matmul"] = stats["gflops_per_s"] / peak_gflops
    return stats


def _time_runtimes(row, model, run_size, *, warmup, runs, threads, peak_gflops, log, batch=1):
    """Build every runtime of ``row`` (or note why it is skipped), time them interleaved and
    store their statistics in ``row``."""
    x = np.random.default_rng(0).standard_normal((batch, *run_size, 3), dtype=np.float32)
    workdir = tempfile.mkdtemp(prefix="tfseg_bench_")
    cache, runners = {}, {}
    try:
        for runtime in row["runtimes"]:
            try:
                runners[runtime] = make_runner(
                    runtime, model, run_size, threads=threads, workdir=workdir, cache=cache,
                    batch=batch,
                )  # fmt: skip
            except RuntimeUnavailable as e:
                row[runtime] = {"skipped": str(e)}
        times = time_interleaved(runners, x, warmup=warmup, runs=runs)
        for runtime in row["runtimes"]:
            if runtime in times:
                row[runtime] = _runtime_stats(
                    times[runtime], row["gflops"], peak_gflops, batch, runtime.endswith("_train")
                )
            if log:
                log(format_line(row, runtime))
        inference = [r for r in times if not r.endswith("_train")]
        if len(inference) > 1:
            row["fastest"] = min(inference, key=lambda r: row[r]["median_ms"])
    finally:
        runners.clear()
        shutil.rmtree(workdir, ignore_errors=True)


def measure(name, encoder, num_classes, size, *, runtimes=("keras",), warmup=3, runs=10,
            encoder_kwargs=None, threads=None, model_path=None, peak_gflops=None,
            log=None, batch=1, bn_statistics=True):  # fmt: skip
    """Params, GFLOPs and per-runtime latency of one model at one size (padded to the stride),
    for batches of ``batch`` images (GFLOPs are per image).

    ``model_path``: a ``.keras`` file instead of the registry's ``name`` / ``encoder``;
    ``peak_gflops``: the matmul reference for ``fraction_of_matmul``; ``log`` receives each
    runtime's table line; ``bn_statistics``: a new network's BN statistics measured on the
    calibration inputs (``_model_at``) when an int8 runtime is timed, recorded in the row.
    """
    # only int8 graphs depend on the activations' ranges (which ops XNNPACK takes)
    bn_statistics = bn_statistics and any("int8" in r or r == "auto" for r in runtimes)
    model, run_size = _model_at(
        name, encoder, num_classes, size, encoder_kwargs, model_path, bn_statistics
    )
    row = _base_row(model, name, encoder, size, run_size, runtimes, model_path)
    row["batch"] = batch
    if not model_path:
        row["bn_statistics"] = "calibration inputs" if bn_statistics else "initial"
    _time_runtimes(
        row, model, run_size, warmup=warmup, runs=runs, threads=threads,
        peak_gflops=peak_gflops, log=log, batch=batch,
    )  # fmt: skip
    return row
