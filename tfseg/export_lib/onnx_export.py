"""ONNX conversion with tf2onnx, the per-target op check, and an onnxruntime runner.

The graph is traced from a ``tf.function`` that calls the (BN-folded) Keras model, and converted
with ``tf2onnx.convert.from_function`` at the target's opset; channel shuffles are then rewritten
on the NCHW tensor and, where onnxruntime runs the file, upsamplings in NHWC (``onnx_layout``).
Input ``images`` (NHWC float32, normalised as ``tfseg.data.normalize``), output ``logits`` (NHWC),
and ``instance`` (NHWC, the centre (y, x) of every pixel's instance in input pixels) for a
``--task=instance`` model. tf2onnx keeps the TF op names (``<model>_1/<layer>_1/<op>``), which is
how offending nodes are traced back to Keras layers.
"""

import collections
import logging
import os

from tfseg.export_lib import onnx_layout
from tfseg.export_lib.errors import ExportError
from tfseg.export_lib.graph import (
    LOGITS,
    layer_for_op,
    named_outputs,
    output_names,
    weight_constants,
)
from tfseg.export_lib.onnx_layout import nchw_channel_shuffles
from tfseg.export_lib.targets import (
    RESIZE_COORDINATE_MODES,
    RESIZE_MODES,
    TARGETS,
    allowed_ops,
)

INPUT_NAME = "images"
OUTPUT_NAME = LOGITS


def convert_onnx(model, *, opset, input_shape, nchw_shuffles=True, nhwc_upsamplings=True):
    """``onnx.ModelProto`` of ``model`` for inputs of ``input_shape`` = (batch, H, W), None =
    dynamic; ``nchw_shuffles=False`` leaves tf2onnx's channel shuffles as they are,
    ``nhwc_upsamplings=False`` its upsamplings in NCHW before the transpose to NHWC (for
    comparisons, and for TensorRT, which prefers NCHW; ``export_lib.onnx_layout``)."""
    import tensorflow as tf
    import tf2onnx

    tf2onnx.logging.set_level(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    batch, h, w = input_shape
    spec = [tf.TensorSpec([batch, h, w, 3], tf.float32, name=INPUT_NAME)]
    expected = output_names(model)
    constants = weight_constants(model)

    @tf.function(input_signature=spec)
    def serve(images):
        return named_outputs(model, images, expected, constants)

    try:
        proto = _tf2onnx_from_function(serve, spec, int(opset))
    except Exception as e:  # tf2onnx raises many types
        raise ExportError(f"tf2onnx could not convert the model: {type(e).__name__}: {e}") from e
    names = [o.name for o in proto.graph.output]
    if sorted(names) != sorted(expected):
        raise ExportError(f"unexpected ONNX outputs {names}; expected {expected}")
    if nchw_shuffles:
        nchw_channel_shuffles(proto)
    if nhwc_upsamplings:
        onnx_layout.nhwc_upsamplings(proto)
    return proto


# tf2onnx reads this variable to choose how its graph optimizers run (its own name for it)
_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"


def _tf2onnx_from_function(fn, spec, opset):
    """``tf2onnx.convert.from_function``'s ``onnx.ModelProto``, its graph optimizers run in place.

    By default tf2onnx deep-copies the whole graph before each of its optimizer passes (two dozen
    or more) so that a pass that raises can be skipped; those copies were a quarter of the
    conversion's time (RegSeg at 64x96: 2.9 of 11.6 s). In place, a pass that raises fails the
    conversion, which is then run again in tf2onnx's careful mode: the same result as before.
    (tf2onnx 1.17 compares the variable's *name* with "TRUE", so any value set turns the copies
    off, and only its absence turns them on; "FALSE" means "off" under either reading.)"""
    import tf2onnx

    def convert(value):
        before = os.environ.pop(_CATCH_ERRORS, None)
        if value is not None:
            os.environ[_CATCH_ERRORS] = value
        try:
            return tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)[0]
        finally:
            os.environ.pop(_CATCH_ERRORS, None)
            if before is not None:
                os.environ[_CATCH_ERRORS] = before

    try:
        return convert("FALSE")
    except Exception:  # noqa: BLE001 - run again below, where tf2onnx skips a failing pass
        return convert(None)


def onnx_op_types(proto):
    """``{op_type: count}`` of the graph's nodes, sorted by name."""
    return dict(sorted(collections.Counter(n.op_type for n in proto.graph.node).items()))


def _constants(graph):
    names = {init.name for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            names.update(node.output)
    return names


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _restriction(node, constants, static_resize):
    """Why TensorRT's ONNX parser would reject ``node`` (its "Restrictions" column), or None."""
    inputs = list(node.input)

    def const(i):
        return i >= len(inputs) or not inputs[i] or inputs[i] in constants

    op = node.op_type
    if op in ("Conv", "ConvTranspose") and not const(1):
        return "weights W are not an initializer"
    if op in ("AveragePool", "MaxPool", "LpPool") and len(_attr(node, "kernel_shape", [])) not in (
        2,
        3,
    ):
        return "only 2D/3D pooling is supported"
    if op == "Resize":
        mode = _attr(node, "mode", "nearest")
        if mode not in RESIZE_MODES:
            return f"Resize mode {mode!r} (supported: {', '.join(sorted(RESIZE_MODES))})"
        ctm = _attr(node, "coordinate_transformation_mode", "half_pixel")
        if ctm not in RESIZE_COORDINATE_MODES:
            return f"Resize coordinate_transformation_mode {ctm!r}"
        if static_resize and not (const(2) and const(3)):
            return "Resize scales/sizes are computed at run time (must be constants on Jetson)"
    if op == "Slice" and not const(3):
        return "Slice axes are not an initializer"
    if op in ("Squeeze", "Unsqueeze") and not const(1):
        return f"{op} axes are not constant"
    if op == "TopK" and not const(1):
        return "TopK K is not an initializer"
    if op == "CumSum" and not const(1):
        return "CumSum axis is not an initializer"
    return None


def check_onnx_model(proto, target, layer_names=()):
    """Nodes of ``proto`` that ``target`` cannot run: a list of dicts (op, node, layer, reason).

    Generic target: any op outside the standard ONNX domain (tf2onnx leaves a TF op it cannot
    convert as a node of that TF type). Jetson targets: in addition, ops missing from the TensorRT
    version's allow-list and nodes breaking its restrictions (see ``targets``).
    """
    import onnx.defs

    allowed = allowed_ops(target)
    static = TARGETS[target]["static"]
    constants = _constants(proto.graph)
    consumers = collections.defaultdict(list)
    for node in proto.graph.node:
        for name in node.input:
            consumers[name].append(node)

    def layer_of(node, hops=3):
        # tf2onnx gives nodes it inserts names like "Resize__11" and moves the TF op's name to the
        # last node of the rewrite: follow the outputs a few hops to find the layer.
        layer = layer_for_op(node.name, layer_names)
        frontier = [node]
        for _ in range(hops):
            if layer is not None:
                break
            frontier = [c for n in frontier for out in n.output for c in consumers[out]]
            for c in frontier:
                layer = layer or layer_for_op(c.name, layer_names)
        return layer

    problems = []
    for node in proto.graph.node:
        reason = None
        standard = node.domain in ("", "ai.onnx") and onnx.defs.has(node.op_type)
        if not standard:
            reason = "not a standard ONNX op (tf2onnx could not convert it)"
        elif allowed is not None and node.op_type not in allowed:
            reason = f"not supported by TensorRT {TARGETS[target]['tensorrt']}'s ONNX parser"
        elif allowed is not None:
            reason = _restriction(node, constants, static)
        if reason:
            problems.append(
                {
                    "op": node.op_type,
                    "node": node.name,
                    "layer": layer_of(node),
                    "reason": reason,
                }
            )
    return problems


def format_problems(problems, target):
    """A user message listing each offending op once with the layers that produced it."""
    by_op = collections.OrderedDict()
    for p in problems:
        entry = by_op.setdefault((p["op"], p["reason"]), [])
        layer = p["layer"] or f"(no Keras layer; node {p['node']})"
        if layer not in entry:
            entry.append(layer)
    lines = [
        f"the ONNX graph has ops that target {target!r} ({TARGETS[target]['description']}) "
        "cannot run:"
    ]
    for (op, reason), layers in by_op.items():
        shown = ", ".join(layers[:8]) + (f", ... ({len(layers)} layers)" if len(layers) > 8 else "")
        lines.append(f"  {op}: {reason}; from layer(s) {shown}")
    return "\n".join(lines)


class OnnxRunner:
    """Runs an ONNX model with onnxruntime (CPU): ``runner(x) -> logits`` (numpy in, numpy out);
    ``runner.outputs(x) -> {name: array}`` with every output (``instance`` too, if present)."""

    def __init__(self, model, threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._logits = OUTPUT_NAME if OUTPUT_NAME in self.output_names else self.output_names[0]

    def __call__(self, x):
        return self.session.run([self._logits], {self.input_name: x})[0]

    def outputs(self, x, names=None):
        """``{name: array}`` for ``names`` (default: every output of the model)."""
        names = list(names or self.output_names)
        return dict(zip(names, self.session.run(names, {self.input_name: x})))
