"""TFLite (LiteRT) conversion: fp32, fp16 weights, full-integer int8; built-in ops only.

Conversion path: a ``tf.function`` calling the (BN-folded) Keras model, traced at batch 1 and
converted with ``TFLiteConverter.from_concrete_functions([fn])`` *without* ``trackable_obj``, so the
variables are frozen into constants. (With ``trackable_obj=model`` the converter keeps resource
variables and the result outputs NaN on TF 2.21 / Keras 3.15; Keras' own ``litert`` export allows
Flex ops.) Parity with the Keras model is checked by the tests and by ``--verify``.

Ops: ``supported_ops=[TFLITE_BUILTINS]`` (fp32, fp16) or ``[TFLITE_BUILTINS_INT8]`` (int8: every op
must have an int8 kernel). An op outside those fails the export with the op and layer named.

int8: weights and activations int8, calibrated on ``representative`` (an iterable of float32
``(1, H, W, 3)`` normalised images from tfseg's data pipeline); input and output stay float32 with
a QUANTIZE / DEQUANTIZE at the edges, so an int8 model is a drop-in for the fp32 one.
``float_layers`` (int8 only) keeps the ops of those Keras layers in float32 and quantises the rest
(selective quantisation through ``tf.lite.experimental.QuantizationDebugger``'s denylist), with a
QUANTIZE / DEQUANTIZE at each boundary. ``float_layer_names(model, "scores")`` names the class-score
path (``score_layers``). 8 bits there cost argmax agreement (the logits' top two classes are often
closer than one quantisation step). The layers have only ``num_classes`` channels, but the float
kernels and the boundary conversions still cost time: measured in docs/results.md.
fp16: float16 weights, dequantised at load time; computation in fp32 on CPUs without fp16 units.

XNNPACK guard (int8): XNNPACK, LiteRT's CPU delegate, refuses a quantised convolution whose
requantisation scale (input scale x weight scale / output scale) is 256 or more, and then the whole
model fails to load ("failed to create XNNPACK runtime"). Calibration gives such a scale where a
convolution's output barely varies on the calibration images, e.g. a squeeze-excitation reduction
whose ReLU outputs are all zero (Lite-HRNet, random weights: scale 370). ``convert_tflite`` finds
those convolutions (``xnnpack_rejected_convs``) and converts again with their layers in float32
(the ``float_layers`` mechanism); ``info["xnnpack_float_layers"]`` names them.
"""

import collections
import contextlib
import fnmatch
import os
import re
import sys
import tempfile

import numpy as np

from tfseg.arrays import ArrayPool
from tfseg.export_lib.errors import ExportError, quiet_absl
from tfseg.export_lib.graph import (
    LOGITS,
    OUTPUT_NAMES,
    _DeconvLeakyReLU,
    _FloatFinalResize,
    _LeakyFormPReLU,
    layer_for_op,
    max_form_prelus,
    named_outputs,
    output_layers,
    output_names,
    raise_deconv_leaks,
    weight_constants,
)
from tfseg.export_lib.targets import PRECISIONS

FLOAT_LAYER_PRESETS = ("scores",)
#: XNNPACK's limit on a quantised convolution's requantisation scale (input x weight / output)
XNNPACK_MAX_CONV_SCALE = 256.0
_CONV_OPS = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1), "FULLY_CONNECTED": (0, 1),
             "TRANSPOSE_CONV": (2, 1)}  # op -> (input, weights) operand positions


def float_layer_names(model, spec):
    """Keras layer names of ``model`` that ``spec`` selects: ``""`` none; ``"scores"`` the
    class-score path (``score_layers``); otherwise
    comma-separated layer names or ``fnmatch`` patterns (``"skipnet_score_*,skipnet_up_*"``).
    A name or pattern that matches no layer is an ExportError naming it."""
    spec = (spec or "").strip()
    if not spec:
        return []
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if spec == "scores":
        found = score_layers(model)
        if not found:
            raise ExportError(
                f"--int8_float_layers=scores: {model.name!r} has no class-score layers"
            )
        return found
    names = [layer.name for layer in layers]
    selected = []
    for pattern in (p.strip() for p in spec.split(",")):
        if not pattern:
            continue
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ExportError(
                f"--int8_float_layers: {pattern!r} matches no layer of {model.name!r} "
                f"(presets: {', '.join(FLOAT_LAYER_PRESETS)}; or layer names / fnmatch patterns)"
            )
        selected += [n for n in hits if n not in selected]
    return selected


def score_layers(model):
    """The class-score path of ``model`` as ``build_model`` recorded it (``Anatomy.score_layers``):
    layers with the logits' channel count that lead to the output only through such layers."""
    from tfseg.models.anatomy import get_anatomy

    try:
        return list(get_anatomy(model).score_layers)
    except ValueError as e:
        raise ExportError(f"--int8_float_layers=scores: {e}") from None


def convert_tflite(
    model, *, input_size, precision="fp32", representative=None, float_layers=(), info=None,
    xnnpack_guard=True,
):
    """TFLite flatbuffer (bytes) of ``model`` at batch 1 and ``input_size`` = (H, W)
    (None: dynamic).

    ``float_layers``: Keras layer names kept in float32 in an int8 model (``float_layer_names``);
    the model's ``graph._FloatFinalResize`` layers are kept in float32 too.
    ``info`` (a dict, optional) receives ``float_ops``: the op types left in float, with counts,
    and ``xnnpack_float_layers``: the layers the XNNPACK guard kept in float (``xnnpack_guard``:
    see the module doc; off only to show what it prevents).
    """
    if precision not in PRECISIONS or precision == "bf16":
        raise ExportError(f"LiteRT has no precision {precision!r}; choose from fp32, fp16, int8")
    if float_layers and precision != "int8":
        raise ExportError(f"float layers are for --precision=int8, not {precision}")
    samples = None
    if precision == "int8":
        if representative is None:
            raise ExportError("int8 needs a representative dataset for calibration")
        samples = list(representative)
        if not samples:
            raise ExportError("the representative dataset for int8 calibration is empty")
        # the export copy's float final resize (graph.float_final_resize) stays in float32
        finals = [x.name for x in model.layers if isinstance(x, _FloatFinalResize)]
        float_layers = [*float_layers, *(n for n in finals if n not in float_layers)]
    guard = precision == "int8" and xnnpack_guard
    max_form, rejected, leaks = [], [], {}
    content, converter, fn = _convert(model, input_size, precision, samples, float_layers)
    try:
        with quiet_absl():
            max_form = _xnnpack_rejected_leaky_layers(content, model) if guard else []
            leaks = _xnnpack_deconv_leak_slopes(content, model) if guard else {}
            if max_form or leaks:
                model = max_form_prelus(model, max_form) if max_form else model
                model = raise_deconv_leaks(model, leaks) if leaks else model
                content, converter, fn = _convert(
                    model, input_size, precision, samples, float_layers
                )
            rejected = _xnnpack_float_layers(content, model) if guard else []
            if rejected:
                content = _selective_int8(converter, model, [*float_layers, *rejected], samples)
    except ExportError:
        raise
    except Exception as e:  # ConverterError and friends
        raise _unsupported_ops_error(e, fn, model, precision) from e
    if info is not None and precision == "int8":
        info["float_ops"] = float_op_types(content)
        info["xnnpack_float_layers"] = rejected
        info["prelu_max_form"] = max_form
        info["deconv_leak_slopes"] = leaks
    return content


def _convert(model, input_size, precision, samples, float_layers):
    """``(flatbuffer, converter, traced function)`` of one conversion (``convert_tflite``)."""
    import tensorflow as tf

    h, w = input_size
    spec = [tf.TensorSpec([1, h, w, 3], tf.float32, name="images")]
    names = output_names(model)
    constants = weight_constants(model)

    # A list, not a dict: ``from_concrete_functions`` writes no signature, and a dict's outputs
    # would come out in key order. The file's outputs are in ``output_names`` order: logits first.
    @tf.function(input_signature=spec)
    def serve(images):
        out = named_outputs(model, images, names, constants)
        return [out[name] for name in names]

    fn = serve.get_concrete_function()
    with quiet_absl():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([np.asarray(s, np.float32)] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with quiet_absl():
            if float_layers:
                content = _selective_int8(converter, model, float_layers, samples)
            else:
                content = converter.convert()
    except ExportError:
        raise
    except Exception as e:  # ConverterError and friends
        raise _unsupported_ops_error(e, fn, model, precision) from e
    return content, converter, fn


def xnnpack_rejected_convs(content):
    """``[(op index, op name, output tensor name, largest requantisation scale)]`` of the
    quantised convolutions of a TFLite model that XNNPACK refuses (scale >= 256)."""
    it = _interpreter(content, delegates=False)
    tensors = {d["index"]: d for d in it.get_tensor_details()}

    def scales(index):
        return np.asarray(tensors[index]["quantization_parameters"]["scales"], np.float64)

    found = []
    for op in it._get_ops_details():
        if op["op_name"] not in _CONV_OPS:
            continue
        x, w = (op["inputs"][i] for i in _CONV_OPS[op["op_name"]])
        out = op["outputs"][0]
        sx, sw, so = scales(x), scales(w), scales(out)
        if not (sx.size and sw.size and so.size) or so[0] <= 0:
            continue  # a float op
        ratio = float(np.max(sx[0] * sw / so[0]))
        if ratio >= XNNPACK_MAX_CONV_SCALE:
            found.append((op["index"], op["op_name"], tensors[out]["name"], ratio))
    return found


def xnnpack_rejected_leaky(content, slopes):
    """``[(op index, output tensor name)]`` of the int8 LEAKY_RELU ops of a TFLite model that
    XNNPACK refuses: its quantised leaky ReLU needs the input/output scale ratio ``r`` within
    [2^-8, 2^7] and ``|r * slope|`` within [2^-8, 2^7]. ``slopes(output tensor name)`` gives an
    op's slope (``None``: skip the op). Calibration breaks the rule where the converter gives the
    op's output the scale of a wider tensor, e.g. a concatenation it feeds (CFPNet: a ratio of
    0.0065), and TFLite's own int8 kernel then runs the op, outside the delegated graph."""
    return [(index, name) for index, name, r, slope in _leaky_scale_ratios(content, slopes)
            if not (2**-8 <= r <= 2**7 and 2**-8 <= abs(r * slope) <= 2**7)]


def _leaky_scale_ratios(content, slopes):
    """``[(op index, output tensor name, input / output scale ratio, slope)]`` of the int8
    LEAKY_RELU ops of a TFLite model for which ``slopes(output tensor name)`` gives a slope."""
    it = _interpreter(content, delegates=False)
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    found = []
    for op in it._get_ops_details():
        if op["op_name"] != "LEAKY_RELU":
            continue
        x, y = tensors[op["inputs"][0]], tensors[op["outputs"][0]]
        (sx, _), (sy, _) = x["quantization"], y["quantization"]
        slope = slopes(y["name"])
        if sx and sy and slope is not None:  # else a float op, or not one asked about
            found.append((op["index"], y["name"], sx / sy, slope))
    return found


# The largest slope a deconvolution's stand-in leaky ReLU is raised to (``_RELU_LEAK`` x 16).
_MAX_DECONV_LEAK = 1.0 / 16


def _xnnpack_deconv_leak_slopes(content, model):
    """``{layer: slope}``: the ``_DeconvLeakyReLU`` layers (a ReLU after a transposed
    convolution, slope ``_RELU_LEAK``) whose LEAKY_RELU XNNPACK refuses in ``content`` only because
    ``|r slope| < 2^-8`` (``r``: input / output scale ratio), with the slope that passes:
    ``1.25 * 2^-8 / r``. The converter can give such an op the output scale of the ADD it feeds
    (ADSCNet's second decoder stage, ``r`` ~0.7), and TFLite's own int8 LEAKY_RELU, between two
    XNNPACK partitions, then cost ADSCNet ~15 % of its latency. The raised slope keeps the
    stand-in within about one output quantization step of the ReLU, as ``_RELU_LEAK`` is
    where ``r >= 1``: the leak ``slope |x|`` is at most ``1.25 * 2^-8 * 256 s_in / r = 1.25 s_out``
    for any int8 input ``x``. Slopes that would exceed ``_MAX_DECONV_LEAK`` are not raised."""
    layers = {x.name: x for x in model.layers if isinstance(x, _DeconvLeakyReLU)}
    if not layers:
        return {}
    names = list(layers)

    def slopes(tensor_name):
        layer = layer_for_op(tensor_name, names)
        return None if layer is None else float(layers[layer].negative_slope)

    raised = {}
    for _, name, r, slope in _leaky_scale_ratios(content, slopes):
        wanted = 1.25 * 2**-8 / r
        if 2**-8 <= r <= 2**7 and abs(r * slope) < 2**-8 and slope < wanted <= _MAX_DECONV_LEAK:
            layer = layer_for_op(name, names)
            raised[layer] = max(raised.get(layer, 0.0), float(wanted))
    return raised


def _xnnpack_rejected_leaky_layers(content, model):
    """The one-slope PReLU layers (``graph._LeakyFormPReLU``, slope in [0, 1]) of ``model`` whose
    LEAKY_RELU XNNPACK would refuse in ``content`` (sorted); ``max_form_prelus`` turns them into
    ``max(x, slope x)``, whose int8 kernels outside XNNPACK measured faster than TFLite's own int8
    LEAKY_RELU (CFPNet: 46 against 74 ms, docs/results.md)."""
    leaky = {x.name: x.slope for x in model.layers if isinstance(x, _LeakyFormPReLU)}
    if not leaky:
        return []
    names = list(leaky)

    def slopes(tensor_name):
        layer = layer_for_op(tensor_name, names)
        return leaky.get(layer) if layer is not None and 0 <= leaky[layer] <= 1 else None

    found = xnnpack_rejected_leaky(content, slopes)
    return sorted({layer_for_op(name, names) for _, name in found})


def _xnnpack_float_layers(content, model):
    """The Keras layers of the convolutions XNNPACK would refuse in ``content`` (sorted)."""
    layer_names = [layer.name for layer in model.layers]
    layers = {layer_for_op(name, layer_names) for _, _, name, _ in xnnpack_rejected_convs(content)}
    if None in layers:
        raise ExportError(
            "int8: XNNPACK would refuse a convolution of this model (requantisation scale >= "
            f"{XNNPACK_MAX_CONV_SCALE:g}) that no Keras layer can be found for; export with "
            "--int8_float_layers naming it, or in fp32"
        )
    return sorted(layers)


def _selective_int8(converter, model, float_layers, samples):
    """int8 conversion with the ops of ``float_layers`` left in float32.

    The debugger calibrates the model once; the denylist names the calibrated model's op output
    tensors, which carry the Keras layer names in their name scopes (``graph.layer_for_op``).
    """
    import tensorflow as tf

    # float kernels are needed for the denylisted ops
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=lambda: ([np.asarray(s, np.float32)] for s in samples[:1]),
    )
    it = _interpreter(debugger.calibrated_model, delegates=False)
    tensors = {d["index"]: d["name"] for d in it.get_tensor_details()}
    layer_names = [layer.name for layer in model.layers]
    wanted = set(float_layers)
    # an op that writes a model output is named after the output ("Identity"), not its layer
    outputs = {
        d["index"]: getattr(layer, "name", None)
        for d, layer in zip(it.get_output_details(), output_layers(model))
    }
    nodes = []
    for op in it._get_ops_details():
        for index in op["outputs"]:
            name = tensors.get(index, "")
            layer = outputs.get(index) or layer_for_op(name, layer_names)
            if layer in wanted and name not in nodes:
                nodes.append(name)
    if not nodes:
        raise ExportError(
            "--int8_float_layers: no TFLite op came from " + ", ".join(sorted(wanted))
        )
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    return debugger.get_nondebug_quantized_model()


def float_op_types(content):
    """``{op name: count}`` of the ops computing in float32 in a quantised TFLite model (QUANTIZE /
    DEQUANTIZE at the boundaries not counted)."""
    it = _interpreter(content, delegates=False)
    shape = it.get_input_details()[0]["shape_signature"]
    if any(int(d) < 0 for d in shape):
        return {}
    it.allocate_tensors()
    dtypes = {d["index"]: d["dtype"] for d in it.get_tensor_details()}
    ops = collections.Counter(
        d["op_name"]
        for d in it._get_ops_details()
        if d["op_name"] not in ("QUANTIZE", "DEQUANTIZE")
        and any(dtypes.get(i) == np.float32 for i in d["outputs"])
    )
    return dict(sorted(ops.items()))


_OP_PATTERNS = (
    re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op"),
    re.compile(r"TF Select ops: ([\w, ]+)"),
    re.compile(r"Custom ops: ([\w, ]+)"),
    re.compile(r"'tfl\.(\w+)' op is not supported in int8"),
)


def _unsupported_ops_error(error, fn, model, precision):
    """ExportError naming the TF ops the converter could not map to built-ins, with their layers."""
    text = str(error)
    ops = []
    for pattern in _OP_PATTERNS:
        for m in pattern.finditer(text):
            for op in m.group(1).split(","):
                op = op.strip()
                if op and op not in ops:
                    ops.append(op)
    if not ops:
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        return ExportError(f"TFLite conversion ({precision}) failed: {first[:2000]}")
    layer_names = [layer.name for layer in model.layers]
    lines = [
        (
            f"TFLite export ({precision}) needs ops outside the TFLite built-ins (they would need "
            "Flex/Select-TF or custom ops, which the LiteRT pip runtime cannot run):"
        )
    ]
    for op in ops:
        layers = []
        for graph_op in fn.graph.get_operations():
            if graph_op.type.lower() == op.lower():
                layer = layer_for_op(graph_op.name, layer_names) or f"(op {graph_op.name})"
                if layer not in layers:
                    layers.append(layer)
        lines.append(f"  {op}: from layer(s) {', '.join(layers) or '(not found in the graph)'}")
    lines.append(
        "Replace those layers with built-in-friendly ops (see STYLE.md, export-friendly habits)."
    )
    return ExportError("\n".join(lines))


def _interpreter(content, threads=None, delegates=True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {"model_content": content, "num_threads": threads}
    if not delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(**kwargs)


def tflite_op_types(content):
    """``{op name: count}`` of a TFLite model's operators (before any delegate)."""
    it = _interpreter(content, delegates=False)
    shape = it.get_input_details()[0]["shape_signature"]
    if any(int(d) < 0 for d in shape):
        it.resize_tensor_input(
            it.get_input_details()[0]["index"], [max(1, int(d)) if d > 0 else 64 for d in shape]
        )
    it.allocate_tensors()
    ops = collections.Counter(d["op_name"] for d in it._get_ops_details())
    return dict(sorted(ops.items()))


def _output_indices(interpreter):
    """``{output name: tensor index}``: tfseg's TFLite files have their outputs in the order of
    ``graph.OUTPUT_NAMES`` (``logits``, then ``instance`` for a ``--task=instance`` model); a
    signature naming ``logits`` (a file converted another way) takes precedence."""
    signatures = interpreter._get_full_signature_list() or {}
    if len(signatures) == 1:
        outputs = next(iter(signatures.values())).get("outputs", {})
        if LOGITS in outputs:
            return dict(outputs)
    details = interpreter.get_output_details()
    if len(details) > len(OUTPUT_NAMES):
        raise ValueError(
            f"the TFLite model has {len(details)} outputs; tfseg models have 1 (logits) or 2 "
            "(logits, instance)"
        )
    return {name: d["index"] for name, d in zip(OUTPUT_NAMES, details)}


class LiteRTRunner:
    """Runs a TFLite model with ``ai-edge-litert`` (XNNPACK): ``runner(x) -> logits``, numpy;
    ``runner.outputs(x) -> {name: array}`` with every output (``instance`` too, if the model has
    it).

    Dynamic-size models are resized to each input's shape; int8/uint8 inputs and outputs (if a
    model has them) are (de)quantised with the tensor's scale and zero point. A static-shape model
    with float32 input and outputs (every tfseg export) runs through LiteRT's ``CompiledModel``
    API with its outputs bound to the numpy arrays it returns (``_DirectOutputs``: no copy of the
    logits out of the runtime; an array is written again only once nothing references it); the
    ``Interpreter`` (``runner.interpreter``) runs everything else.
    ``direct=False`` forces the Interpreter.
    """

    def __init__(self, content, threads=None, direct=True):
        if isinstance(content, str):
            with open(content, "rb") as f:
                content = f.read()
        self._it = _interpreter(content, threads)
        self._allocated = False
        self._input = self._it.get_input_details()[0]
        self._indices = _output_indices(self._it)
        self.output_names = list(self._indices)
        self._shape = None
        signature = self._input["shape_signature"]
        if all(int(d) > 0 for d in signature):
            self._shape = tuple(int(d) for d in signature)
        self._direct = None
        if direct and self._shape is not None:
            self._direct = _DirectOutputs.create(content, threads, self._it, self._indices)
        if self._direct is None and self._shape is not None:
            self._allocate()

    @property
    def interpreter(self):
        """The ``Interpreter`` on the same model (its tensors allocated, XNNPACK applied, for a
        static-shape model)."""
        if self._shape is not None and not self._allocated:
            self._allocate()
        return self._it

    @property
    def direct(self):
        """True when calls run through ``CompiledModel`` with outputs written in place."""
        return self._direct is not None

    def _allocate(self):
        self._it.allocate_tensors()
        self._allocated = True

    def __call__(self, x):
        return self.outputs(x, names=(LOGITS,))[LOGITS]

    def outputs(self, x, names=None):
        """``{name: array}`` for ``names`` (default: every output of the model)."""
        x = np.asarray(x, np.float32)
        names = names or self.output_names
        if self._direct is not None and x.shape == self._direct.shape:
            return self._direct(x, names)
        it = self._it
        if self._shape != x.shape or not self._allocated:
            if self._shape != x.shape:
                it.resize_tensor_input(self._input["index"], list(x.shape))
            it.allocate_tensors()
            self._allocated = True
            self._shape = x.shape
            self._input = it.get_input_details()[0]
        dtype = self._input["dtype"]
        if dtype != np.float32:
            scale, zero = self._input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        it.set_tensor(self._input["index"], x)
        it.invoke()
        details = {d["index"]: d for d in it.get_output_details()}
        result = {}
        for name in names:
            d = details[self._indices[name]]
            # a copy made from a view of the output buffer: half the time of ``get_tensor``'s
            # copy (DABNet's 512x1024x19 logits, AMD Zen 4: 10 ms against 23 ms)
            y = np.array(it.tensor(d["index"])())
            if d["dtype"] != np.float32:
                scale, zero = d["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            result[name] = y
        return result


_ALIGNMENT = 64  # bytes: LiteRT copies a host buffer that is not aligned to this
_ENVIRONMENT = []  # the one LiteRT Environment of this process (``_DirectOutputs``), once made


@contextlib.contextmanager
def _native_stderr(sink):
    """Send what native code writes to file descriptor 2 into the open file ``sink`` meanwhile:
    creating a LiteRT Environment logs a dozen INFO lines (accelerator and vendor-plugin
    discovery). Their destruction at exit still logs two or three."""
    import ctypes

    try:  # LiteRT's log lines can sit in C stdio buffers for a while
        flush = ctypes.CDLL(None).fflush
    except (OSError, TypeError, AttributeError):  # no C runtime to load this way (Windows)
        def flush(_):
            return None
    sys.stderr.flush()
    flush(None)
    saved = os.dup(2)
    try:
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        flush(None)
        os.dup2(saved, 2)
        os.close(saved)


def _aligned_empty(shape):
    """An uninitialised float32 array of ``shape`` whose data starts on an ``_ALIGNMENT``-byte
    boundary (a view into a slightly larger allocation)."""
    n = int(np.prod(shape))
    raw = np.empty(n + _ALIGNMENT // 4, np.float32)
    start = (-raw.ctypes.data % _ALIGNMENT) // 4
    return raw[start:start + n].reshape(shape)


class _DirectOutputs:
    """A LiteRT ``CompiledModel`` (XNNPACK on the CPU, as the Interpreter) on the same model,
    each call's outputs bound to numpy arrays (``TensorBuffer.create_from_host_memory``), so the
    runtime writes the logits where the caller gets them. The Interpreter path copies them out of
    its arena instead: a 512x1024x19 float32 output is 40 MB. The values are identical.

    An array returned is the caller's for as long as anything references it (the array, a view
    of it, a buffer export such as ``memoryview`` or ``torch.from_numpy``): a later call writes
    into a returned array again only once its reference counts show that nothing outside this
    object holds it. That reuse spares the page faults of a fresh 40 MB allocation per call,
    which onnxruntime's outputs do not pay either. Fast-SCNN int8, 512x1024, 2 threads, AMD Zen 4
    (``experiments/export_rewrites.py --rewrite=litert_outputs``, docs/results.md): 20.5 ms per
    call through the Interpreter, 12.6 in place (a fresh array per call instead: 15.3).
    """

    POOL = 4  # arrays kept per output for reuse; an older one is left to whoever holds it

    def __init__(self, model, signature, input_name, input_buffer, input_buffer_shape, outputs,
                 tensor_buffer):
        self._model, self._signature = model, signature
        self._input, self._input_name = input_buffer, input_name
        self.shape = tuple(input_buffer_shape)  # the input shape it was compiled for
        self._outputs = outputs  # {tfseg name: (signature output name, shape)}
        self._tensor_buffer = tensor_buffer
        self._bound = None
        self._pools = {name: ArrayPool(self.POOL, lambda shape, _: _aligned_empty(shape))
                       for name in outputs}

    @classmethod
    def create(cls, content, threads, interpreter, indices):
        """The direct runner, or None where the API is missing or the model is not one it takes
        (one float32 input of the Interpreter's static shape, float32 outputs found by tensor
        index)."""
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.environment import Environment
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator
            from ai_edge_litert.options import CpuOptions, Options
            from ai_edge_litert.tensor_buffer import TensorBuffer
        except ImportError:
            return None
        want = interpreter.get_input_details()[0]
        if want["dtype"] != np.float32:
            return None
        by_index = {d["index"]: d for d in interpreter.get_output_details()}
        if any(by_index[i]["dtype"] != np.float32 for i in indices.values()):
            return None
        with tempfile.TemporaryFile() as sink, _native_stderr(sink):
            try:
                if not _ENVIRONMENT:
                    _ENVIRONMENT.append(Environment.create())
                options = Options(hardware_accelerators=HardwareAccelerator.CPU,
                                  cpu_options=CpuOptions(num_threads=threads or 0))
                model = CompiledModel.from_buffer(content, environment=_ENVIRONMENT[0],
                                                  options=options)
                signatures = model.get_signature_list()
                if len(signatures) != 1:
                    return None
                signature = next(iter(signatures))
                inputs = model.get_input_tensor_details(signature)
                found = {d["index"]: (name, tuple(d["shape"]))
                         for name, d in model.get_output_tensor_details(signature).items()
                         if d["dtype"] == "float32"}
                if len(inputs) != 1 or any(i not in found for i in indices.values()):
                    return None
                ((input_name, got),) = inputs.items()
                if got["dtype"] != "float32" or list(got["shape"]) != list(want["shape"]):
                    return None
                buffer = model.create_input_buffer_by_name(signature, input_name)
                # the first write to a buffer in the process creates another environment
                buffer.write(np.zeros(want["shape"], np.float32))
            except Exception:  # noqa: BLE001  (the Interpreter path runs the model instead)
                return None
        outputs = {name: found[i] for name, i in indices.items()}
        return cls(model, signature, input_name, buffer, tuple(int(d) for d in want["shape"]),
                   outputs, TensorBuffer)

    def __call__(self, x, names):
        self._bound = None  # the last call's buffers reference its arrays
        self._input.write(x)
        arrays = {name: self._pools[name].get(shape)
                  for name, (_, shape) in self._outputs.items()}
        buffers = {out: self._tensor_buffer.create_from_host_memory(arrays[name])
                   for name, (out, _) in self._outputs.items()}
        self._model.run_by_name(self._signature, {self._input_name: self._input}, buffers)
        # the buffers (and so the memory they point into) live until the next call binds others
        self._bound = buffers
        return {name: arrays[name] for name in names}
