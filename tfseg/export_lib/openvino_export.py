"""OpenVINO IR for Intel / AMD x86 CPUs: ``tfseg.export --format=openvino`` (fp32, bf16 or int8).

The artifact is a folder with ``model.xml`` (the graph) and ``model.bin`` (the weights), OpenVINO's
own format, written in one rename like a SavedModel. It is made from the same ONNX graph as
``--format=onnx`` (BN folded, NHWC ``images`` in, ``logits`` out; ``ov.convert_model``), so the
input / output contract is unchanged:

    core = openvino.Core()
    compiled = core.compile_model("model_openvino/model.xml", "CPU")
    logits = compiled(images)[0]          # images: float32 (1, H, W, 3), normalised

- fp32: weights kept in float32 (``save_model(..., compress_to_fp16=False)``).
- bf16: the fp32 IR, run with ``INFERENCE_PRECISION_HINT=bf16``: OpenVINO computes the float
  layers in bfloat16 (oneDNN's ``vdpbf16ps`` on AVX-512 BF16, AMX tiles on Sapphire Rapids and
  later). Only on a CPU with those units: elsewhere OpenVINO silently runs the hint in float32, so
  the export refuses (``bf16_supported``). The precision is not a property of the IR's weights;
  tfseg records it in the IR (rt_info ``tfseg/inference_precision``), ``OpenVINORunner`` reads
  it back, and the export report says it (``openvino.inference_precision_hint``). Compiled by
  your own code, pass ``{"INFERENCE_PRECISION_HINT": "bf16"}``. Speed, on the Zen 4 of
  docs/results.md (AVX-512 BF16, no AMX), 16 networks at 512x1024: 1.6-1.9x fp32 (median 1.80x;
  Fast-SCNN 1.12x); int8 is faster still (median 1.50x over bf16) where it passes the accuracy
  guard, bf16 loses less (``verify.THRESHOLDS``; docs/openvino_bf16_native.json).
- int8: post-training quantization by NNCF (``nncf.quantize``, OpenVINO's own quantizer) on the
  calibration images, preset ``MIXED`` (symmetric int8 weights per output channel, asymmetric
  activations): FakeQuantize nodes that OpenVINO's CPU plugin runs as int8 oneDNN kernels, with
  ``vpmaddubsw`` on AVX2 and VNNI where the CPU has it.

Why a third CPU runtime: under the AVX2 profile (no VNNI), OpenVINO int8 is the fastest runtime
for 24 of the 37 networks of the reference comparison (SQNet 232 ms against onnxruntime int8's
364; ESPNet 67 against LiteRT fp32's 88; 512x1024, 2 threads, docs/zoo.md), which is where tfseg
was furthest from issue 22's goal. ``--format=auto`` measures it with the others on the machine it
runs on.

Before conversion the ONNX graph goes through onnxruntime's basic graph optimizations, which
remove the layout transposes tf2onnx leaves around broadcast multiplies and channel slices
(``ort_basic_optimized``); OpenVINO's converter keeps them. Before that, the downsamplers that
concatenate a convolution and a max pooling of the 3-channel input (LEDNet, AGLNet) become an
addition (``onnx_layout.pool_concat_adds``): OpenVINO cannot concatenate the convolution's 29
channels in its blocked layout (int8 under the AVX2 profile: LEDNet 204 -> 195 ms, AGLNet
230 -> 191; docs/openvino_downsampler_avx2.json).

The graph keeps tf2onnx's NCHW upsamplings: the NHWC form written for onnxruntime runs 1.4-1.7x
slower in OpenVINO (``experiments/openvino_layouts.py``).

``OpenVINORunner`` compiles the fp32 and int8 IRs for the CPU with ``INFERENCE_PRECISION_HINT=f32``:
on a CPU with AMX or AVX-512 BF16, OpenVINO otherwise runs float layers in bfloat16 by default (it
does on the Zen 4), which is a different numerical result than the one ``--verify`` checked.
(OpenVINO ignores a precision hint stored in the IR's ``runtime_options``, checked with 2026.4:
hence tfseg's own rt_info entry.)
"""

import logging
import os
import shutil
import tempfile

from tfseg.arrays import ArrayPool
from tfseg.export_lib.errors import ExportError

XML, BIN = "model.xml", "model.bin"
# the IR's rt_info entry with the precision tfseg verified it in: "f32" or "bf16"
PRECISION_KEY = ["tfseg", "inference_precision"]
HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}


def require_openvino():
    """The ``openvino`` module, or ``ExportError`` saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ExportError(
            "--format=openvino needs the openvino package (pip install -r "
            "requirements-export.txt)"
        ) from None
    return openvino


def ir_path(path):
    """``model.xml`` inside the artifact folder ``path`` (or ``path`` itself if it is the xml);
    ``ExportError`` naming ``path`` when it is not an OpenVINO IR."""
    xml = os.path.join(path, XML) if os.path.isdir(path) else path
    if not os.path.isfile(xml) or not xml.endswith(".xml"):
        raise ExportError(f"not an OpenVINO IR folder (no {XML}): {path}")
    if not os.path.isfile(os.path.splitext(xml)[0] + ".bin"):
        raise ExportError(f"OpenVINO IR without its weights file ({BIN}): {path}")
    return xml


def from_onnx(proto, *, optimize=True, pool_concats_as_adds=True, info=None):
    """``ov.Model`` from an ONNX ``ModelProto`` (via a temporary file: OpenVINO reads paths).

    ``optimize``: first rewrite the downsamplers on the 3-channel input as additions (on a copy;
    ``onnx_layout.pool_concat_adds``; ``pool_concats_as_adds=False``: not), then run
    onnxruntime's provider-independent ("basic") graph optimizations on it and convert their
    result (``ort_basic_optimized``); ``info`` gets what was done."""
    import onnx

    from tfseg.export_lib.onnx_layout import pool_concat_adds

    ov = require_openvino()
    work = tempfile.mkdtemp(prefix="tfseg_ov_")
    try:
        path = os.path.join(work, "model.onnx")
        adds = 0
        if optimize and pool_concats_as_adds:
            copy = onnx.ModelProto()
            copy.CopyFrom(proto)  # the caller's graph stays as it is
            adds, proto = pool_concat_adds(copy), copy
        if optimize and info is not None:
            info["pool_concat_adds"] = adds
        onnx.save(proto, path)
        if optimize:
            path = ort_basic_optimized(path, os.path.join(work, "optimized.onnx"), info)
        elif info is not None:
            info["graph_optimization"] = "none"
        return ov.convert_model(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ort_basic_optimized(path, out, info=None):
    """Path of the ONNX file ``path`` after onnxruntime's basic graph optimizations (written to
    ``out``), or ``path`` itself where they cannot be used; ``info["graph_optimization"]`` says
    which, and why.

    tf2onnx leaves layout transposes wherever a reshape, a broadcast multiply or a channel slice
    stopped it: CGNet's and RegSeg's squeeze-excitation products run as NCHW -> NHWC, a multiply
    and NHWC -> NCHW, and LEDNet's / AGLNet's channel splits likewise. onnxruntime removes them
    when it loads a file (its transpose optimizer, part of the "basic" level, with constant
    folding and redundant-node elimination: standard ONNX ops only); OpenVINO's converter leaves
    most of them. Converting onnxruntime's result instead made OpenVINO faster on every network
    measured, under the AVX2 profile, 512x1024, 2 threads, int8: CGNet 127 -> 92 ms, RegSeg
    94 -> 83, Lite-HRNet 179 -> 144, AGLNet 290 -> 223, LEDNet 174 -> 142
    (``experiments/openvino_layouts.py --forms=graph``; docs/openvino_graph_avx2.json)."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        return _unoptimized(path, info, "onnxruntime is not installed")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = out
    options.log_severity_level = 3
    try:
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        domains = {node.domain for node in onnx.load(out, load_external_data=False).graph.node}
    except Exception as e:  # onnxruntime raises several types
        return _unoptimized(path, info, f"onnxruntime could not optimize it: {e}")
    if domains - {"", "ai.onnx"}:
        return _unoptimized(path, info, f"the result has non-standard ops ({sorted(domains)})")
    if info is not None:
        info["graph_optimization"] = f"onnxruntime {ort.__version__} basic level"
    return out


def _unoptimized(path, info, why):
    logging.getLogger(__name__).warning("OpenVINO export without graph optimizations: %s", why)
    if info is not None:
        info["graph_optimization"] = f"none ({why})"
    return path


def quantize(model, calibration, info=None):
    """int8 ``ov.Model`` of ``model`` by NNCF, calibrated on ``calibration`` (float32
    ``(1, H, W, 3)`` arrays); ``info`` gets the settings and the number of FakeQuantize nodes."""
    try:
        import nncf
    except ImportError:
        raise ExportError(
            "--format=openvino --precision=int8 needs nncf (pip install -r "
            "requirements-export.txt)"
        ) from None
    from nncf.common.logging.logger import set_log_level

    images = list(calibration)
    if not images:
        raise ExportError("int8 calibration needs at least one image")
    set_log_level(logging.ERROR)
    q = nncf.quantize(
        model,
        nncf.Dataset(images),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(images),
    )
    if info is not None:
        info.update(
            quantizer=f"nncf {nncf.__version__}",
            preset="mixed (symmetric per-channel int8 weights, asymmetric int8 activations)",
            calibration_images=len(images),
            fake_quantize_nodes=op_types(q).get("FakeQuantize", 0),
        )
    return q


def bf16_supported():
    """Whether OpenVINO's CPU plugin computes in bfloat16 on this CPU (AVX-512 BF16 or AMX):
    ``"BF16"`` among its optimization capabilities."""
    ov = require_openvino()
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def save(model, folder, precision="fp32"):
    """Write ``model`` as ``folder/model.xml`` + ``model.bin`` (weights not compressed), with the
    inference precision of ``precision`` (``HINTS``) in its rt_info."""
    ov = require_openvino()
    if precision not in HINTS:
        raise ExportError(f"unknown OpenVINO precision {precision!r}; choose from {list(HINTS)}")
    os.makedirs(folder, exist_ok=True)
    model.set_rt_info(HINTS[precision], PRECISION_KEY)
    ov.save_model(model, os.path.join(folder, XML), compress_to_fp16=False)


def op_types(model):
    """``{op type: count}`` of an ``ov.Model`` (sorted by type)."""
    counts = {}
    for op in model.get_ops():
        t = op.get_type_name()
        if t not in ("Parameter", "Result", "Constant"):
            counts[t] = counts.get(t, 0) + 1
    return dict(sorted(counts.items()))


def stored_hint(model):
    """The inference precision hint tfseg stored in ``model`` (``ov.Model``), ``"f32"`` if none."""
    if model.has_rt_info(PRECISION_KEY):
        return str(model.get_rt_info(PRECISION_KEY).astype(str))
    return "f32"


class OpenVINORunner:
    """Runs an OpenVINO IR (folder, ``.xml`` path or ``ov.Model``) on the CPU:
    ``runner(x) -> logits`` (numpy in, numpy out); ``runner.outputs(x) -> {name: array}``.

    ``hint``: ``"f32"`` or ``"bf16"``, default the one stored in the IR (``save``), else f32.
    ``inference_precision`` is what the plugin compiled it to (``"f32"`` for a bf16 hint on a CPU
    without bfloat16 units).

    A model with static float32 outputs (every tfseg export) writes them into numpy arrays bound
    to the request before each call (``set_output_tensor`` on shared memory, from a
    ``tfseg.arrays.ArrayPool``): an array returned stays the caller's as long as they reference
    it, and no copy of the logits is made. Copying them out of the request instead
    (``.data.copy()``, as before session 38) cost 5-9 ms a call at 512x1024 on the AMD Zen 4
    (ENet int8 54.7 -> 48.7 ms, Fast-SCNN int8 24.1 -> 17.6; ``docs/results.md``). Other models
    are copied, and so are all with ``bind_outputs=False``.
    """

    def __init__(self, model, threads=None, hint=None, bind_outputs=True):
        ov = require_openvino()
        core = ov.Core()
        if not isinstance(model, ov.Model):
            xml = ir_path(os.fspath(model))
            try:
                model = core.read_model(xml)
            except RuntimeError as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ExportError(f"cannot read the OpenVINO IR {xml}: {first}") from None
        hint = hint or stored_hint(model)
        if hint not in ("f32", "bf16"):
            raise ExportError(f"unknown OpenVINO inference precision {hint!r} (f32 or bf16)")
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(model, "CPU", config)
        compiled = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = "bf16" if "bf" in str(compiled).lower() else "f32"
        self.request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._logits = self.output_names.index("logits") if "logits" in self.output_names else 0
        self._tensor = ov.Tensor
        self._shapes = None  # static float32 output shapes: the outputs are bound (docstring)
        if bind_outputs and all(o.get_partial_shape().is_static
                                and o.get_element_type() == ov.Type.f32
                                for o in self.compiled.outputs):
            self._shapes = [tuple(o.get_shape()) for o in self.compiled.outputs]
            self._pools = [ArrayPool() for _ in self._shapes]

    def _infer(self, x):
        """Run on ``x``; the outputs as numpy arrays that are the caller's."""
        if self._shapes is None:
            self.request.infer({0: x})
            return [self.request.get_output_tensor(i).data.copy()
                    for i in range(len(self.output_names))]
        arrays = [pool.get(shape) for pool, shape in zip(self._pools, self._shapes)]
        for i, array in enumerate(arrays):
            self.request.set_output_tensor(i, self._tensor(array, shared_memory=True))
        self.request.infer({0: x})
        return arrays

    def __call__(self, x):
        return self._infer(x)[self._logits]

    def outputs(self, x, names=None):
        """``{name: array}`` for ``names`` (default: every output of the model)."""
        got = dict(zip(self.output_names, self._infer(x)))
        return {n: got[n] for n in (names or self.output_names)}
