"""int8 ONNX for onnxruntime's CPU provider: static post-training quantization in QDQ form.

``quantize_onnx(proto, calibration)`` takes the fp32 graph of ``onnx_export.convert_onnx`` (BN
already folded by ``graph.inference_model``) and returns an ONNX model in which every convolution,
matrix multiplication and the ops between them run on 8-bit integers: QuantizeLinear /
DequantizeLinear pairs around them (``QuantFormat.QDQ``), which onnxruntime fuses into its
integer kernels (QLinearConv, ...). It uses onnxruntime's own quantizer
(``onnxruntime.quantization.quantize_static``), not a home-made one:

- weights: signed int8, one scale per output channel (``per_channel=True``), symmetric;
- activations: unsigned int8 with a zero point, ranges from the calibration images (MinMax);
  unsigned activations with signed weights (U8S8) are the pair onnxruntime's x86 integer GEMM
  runs fastest;
- ``reduce_range``: on x86 CPUs without VNNI (``avx512_vnni`` / ``avx_vnni`` / ``amx_int8`` absent,
  e.g. an AMD Zen 3 with AVX2 only) the U8S8 product is computed with ``vpmaddubsw``, whose 16-bit
  intermediate sums can saturate; onnxruntime's documented remedy is 7-bit weights
  (``reduce_range=True``). ``None`` (default) decides from ``/proc/cpuinfo``, and the report says
  which was used. An artifact made on a VNNI machine and run on one without can therefore be less
  accurate: export on (a CPU like) the deployment CPU, as ``--format=auto`` does anyway.

The upsampling that makes the logits stays float32 (``final_resizes``): its input, the
low-resolution class scores, is dequantized instead of its full-size output.
``float_pool_concats=True`` keeps the max pooling and the concatenation of ENet's / ERFNet's
downsampler in float too (``pool_concats``): faster for some networks, slower for others.

The input and output stay float32 (NHWC ``images`` in, ``logits`` out), as in the fp32 export, so
``OnnxRunner`` and ``tfseg.export --verify`` work unchanged.
"""

import os
import shutil
import tempfile

from tfseg.export_lib.errors import ExportError


def has_int8_dot_product():
    """True when this CPU has an 8-bit dot-product instruction (VNNI, AMX or Arm's dot product)."""
    from tfseg.cpuinfo import cpu_int8_features

    return bool(cpu_int8_features())


class _Reader:
    """onnxruntime's calibration data reader over a list of float32 ``(1, H, W, 3)`` arrays, with
    the ``__len__`` / ``set_range`` that ``quantize_static``'s ``CalibStridedMinMax`` uses to
    calibrate on one slice of the list at a time."""

    def __init__(self, input_name, images):
        self._feeds = [{input_name: x} for x in images]
        self.set_range(0, len(self._feeds))

    def __len__(self):
        return len(self._feeds)

    def set_range(self, start_index, end_index):
        self._items = iter(self._feeds[start_index:end_index])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # pragma: no cover - called by some onnxruntime versions
        pass


def final_resizes(proto):
    """Names of the ``Resize`` nodes that make the graph's outputs (looking through Transpose and
    Identity nodes after them): ``quantize_onnx`` leaves them in float, as the LiteRT int8 export
    does (``graph._FloatFinalResize``). In int8 the full-size logits would be interpolated in 8
    bits and then dequantized, 4 bytes written per value either way; in float only the
    low-resolution class scores are dequantized. Fast-SCNN, 512x1024, 2 threads, AMD Zen 4:
    17.6 -> 13.6 ms (``experiments/export_rewrites.py --rewrite=onnx_final_resize``,
    docs/results.md)."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    found = []
    for output in proto.graph.output:
        node = producer.get(output.name)
        while node is not None and node.op_type in ("Transpose", "Identity"):
            node = producer.get(node.input[0])
        if node is not None and node.op_type == "Resize" and node.name and node.name not in found:
            found.append(node.name)
    return found


def pool_concats(proto):
    """Names of the ``MaxPool`` nodes whose output a ``Concat`` reads, and of those ``Concat``
    nodes: the downsampler of ENet, ERFNet and their kin (a strided convolution and a max pooling
    of the same input, concatenated). In int8, onnxruntime can leave that pair in NCHW (a uint8
    MaxPool several times slower than the float one, 3.3 against 0.3 ms in ERFNet) and later
    blocks then pay transposes between NCHW and NHWC. Left in float (``quantize_onnx(...,
    float_pool_concats=True)``) it measured, int8 at 512x1024, 2 threads, AVX2 profile
    (``experiments/ort_int8_forms.py --forms=pool_concats``, docs/results.md): 8-16 % faster for
    ERFNet, ESNet, EDANet and FDDWNet, 6 % for FSSNet, within 3 % for BiSeNetV2, DABNet, ENet,
    MiniNetV2 and CFPNet, and 8 % / 13 % slower for AGLNet / LEDNet (whose blocks split the
    channels). Not the default, since no rule found so far tells the two groups apart."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    found = []
    for node in proto.graph.node:
        if node.op_type != "Concat":
            continue
        pools = [producer[i] for i in node.input
                 if i in producer and producer[i].op_type == "MaxPool"]
        for n in [*pools, node] if pools else []:
            if n.name and n.name not in found:
                found.append(n.name)
    return found


def quantize_onnx(proto, calibration, *, per_channel=True, reduce_range=None, info=None,
                  float_final_resize=True, float_pool_concats=False):
    """The int8 (QDQ) version of the fp32 ONNX ``proto`` as serialized bytes.

    ``calibration``: float32 ``(1, H, W, 3)`` arrays (normalised images, the model's input size);
    ``info`` (optional dict) receives the settings used and the quantized node counts;
    ``float_final_resize=False`` quantizes the logits' upsampling too (``final_resizes``);
    ``float_pool_concats=True`` keeps the downsamplers' max poolings and concatenations in float
    (``pool_concats``).
    """
    import onnx

    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as e:
        raise ExportError(f"int8 ONNX needs onnxruntime's quantization tools: {e}") from None
    images = list(calibration)
    if not images:
        raise ExportError("int8 ONNX needs at least one calibration image")
    if reduce_range is None:
        reduce_range = not has_int8_dot_product()
    reader_type = type("CalibrationReader", (_Reader, CalibrationDataReader), {})
    float_nodes = (final_resizes(proto) if float_final_resize else []) + (
        pool_concats(proto) if float_pool_concats else [])
    work = tempfile.mkdtemp(prefix="tfseg_onnx_int8_")
    try:
        src, dst = os.path.join(work, "fp32.onnx"), os.path.join(work, "int8.onnx")
        onnx.save(proto, src)
        quantize_static(
            src,
            dst,
            reader_type(proto.graph.input[0].name, images),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=float_nodes,
            # MinMax keeps every activation of every image it has run until it reduces them: 4
            # images of SegNet at 512x1024 ran out of 24 GB. One image at a time, each range
            # merged into the last (min of the minima, max of the maxima): the same ranges.
            extra_options={"CalibStridedMinMax": 1},
        )
        with open(dst, "rb") as f:
            content = f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if info is not None:
        quantized = onnx.load_from_string(content)
        ops = [n.op_type for n in quantized.graph.node]
        info.update(
            {
                "quantizer": "onnxruntime.quantization.quantize_static (QDQ, MinMax calibration)",
                "weights": "int8, per output channel" if per_channel else "int8, per tensor",
                "activations": "uint8 with zero point",
                "reduce_range": bool(reduce_range),
                "int8_dot_product_cpu": has_int8_dot_product(),
                "calibration_images": len(images),
                "float_nodes": float_nodes,
                "quantize_linear_nodes": ops.count("QuantizeLinear"),
                "dequantize_linear_nodes": ops.count("DequantizeLinear"),
            }
        )
    return content

