"""Single-layer LiteRT throughput, fp32 against int8: does int8 pay on this CPU?

Whole-model int8 timings mix three things: the convolution kernels themselves, the float <-> int8
conversions at the model's ends, and the layers a model happens to have. This module times the
kernels alone: one layer per model, converted to fp32 and to full-integer int8 with int8 input and
output (so no QUANTIZE / DEQUANTIZE of large tensors is counted), run by LiteRT's XNNPACK delegate
and timed interleaved. ``python -m tfseg.benchmark --kernels --threads=2`` prints the table.

int8 convolutions need integer dot products to beat fp32 FMAs. x86 CPUs with AVX-512 VNNI or
AVX-VNNI, and Arm CPUs with the dot-product extension, have them; on AVX2 alone XNNPACK's int8 path
multiplies 16-bit values, which gives about the MACs per cycle of fp32 FMAs. The table shows what
that means on the machine it runs on.
"""

import numpy as np

from tfseg.bench.report import format_kernel_row
from tfseg.timing import latency_stats, time_interleaved

# (name, kind, H, W, C_in, C_out): layers of the models tfseg benchmarks at 512x1024.
KERNELS = (
    ("resnet18 conv2 3x3", "conv3x3", 128, 256, 64, 64),
    ("resnet18 conv4 3x3", "conv3x3", 32, 64, 256, 256),
    ("resnet18 conv5 3x3", "conv3x3", 16, 32, 512, 512),
    ("mobilenet pointwise 1x1", "conv1x1", 64, 128, 256, 256),
    ("mobilenet depthwise 3x3", "dw3x3", 64, 128, 256, 256),
)
KINDS = ("conv3x3", "conv1x1", "dw3x3")


def kernel_macs(kind, h, w, cin, cout):
    """Multiply-accumulates of one ``kind`` layer at ``h`` x ``w``, ``cin`` -> ``cout`` channels."""
    if kind == "conv3x3":
        return h * w * 9 * cin * cout
    if kind == "conv1x1":
        return h * w * cin * cout
    if kind == "dw3x3":
        return h * w * 9 * cin
    raise ValueError(f"unknown kernel kind {kind!r}; choose from {', '.join(KINDS)}")


def _layer_model(kind, h, w, cin, cout, seed):
    """A one-layer Keras model (batch 1, "same" padding) with seeded random weights."""
    import keras

    kernel_macs(kind, h, w, cin, cout)  # validates kind
    keras.utils.set_random_seed(seed)
    inp = keras.Input((h, w, cin), batch_size=1)
    if kind == "dw3x3":
        out = keras.layers.DepthwiseConv2D(3, padding="same")(inp)
    else:
        out = keras.layers.Conv2D(cout, 3 if kind == "conv3x3" else 1, padding="same")(inp)
    return keras.Model(inp, out)


def convert_layer(model, precision, calibration):
    """TFLite bytes of a one-layer ``model``: fp32, or int8 with int8 input and output."""
    import tensorflow as tf

    from tfseg.export_lib.errors import quiet_absl

    shape = [1, *model.input_shape[1:]]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def serve(x):
        return model(x, training=False)

    with quiet_absl():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    if precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([c] for c in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif precision != "fp32":
        raise ValueError(f"precision {precision!r}: choose fp32 or int8")
    with quiet_absl():
        return converter.convert()


def _invoker(content, threads):
    """``invoke()`` of a LiteRT interpreter of ``content`` holding a fixed random input."""
    from tfseg.export_lib.tflite import _interpreter

    it = _interpreter(content, threads=threads)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    if detail["dtype"] == np.int8:
        x = rng.integers(-128, 128, detail["shape"], dtype=np.int8)
    else:
        x = rng.standard_normal(detail["shape"]).astype(np.float32)
    it.set_tensor(detail["index"], x)
    return it.invoke


def _kernel_row(name, kind, shape, times):
    """The table row of one kernel from its fp32 / int8 durations ``times``."""
    macs = kernel_macs(kind, *shape)
    row = {"kernel": name, "kind": kind, "shape": list(shape), "macs": macs}
    for p, t in times.items():
        stats = latency_stats(t)
        row[p] = {"median_ms": stats["median_ms"], "gmacs": macs / stats["median_ms"] / 1e6}
    row["int8_speedup"] = row["fp32"]["median_ms"] / row["int8"]["median_ms"]
    return row


def measure_kernels(kernels=KERNELS, *, threads=None, warmup=2, runs=10, log=None):
    """One row per kernel: MACs, fp32 and int8 median ms, GMAC/s and the int8 speed-up.

    fp32 and int8 are timed interleaved (``timing.time_interleaved``): load from other processes
    hits both alike. ``log`` receives each row's table line as it is measured.
    """
    rows = []
    for name, kind, h, w, cin, cout in kernels:
        model = _layer_model(kind, h, w, cin, cout, seed=0)
        rng = np.random.default_rng(1)
        calibration = [rng.standard_normal((1, h, w, cin)).astype(np.float32) for _ in range(3)]
        invoke = {
            p: _invoker(convert_layer(model, p, calibration), threads) for p in ("fp32", "int8")
        }
        times = time_interleaved(invoke, warmup=warmup, runs=runs)
        rows.append(_kernel_row(name, kind, (h, w, cin, cout), times))
        if log:
            log(format_kernel_row(rows[-1]))
    return rows
