"""The export procedure behind ``python -m tfseg.export``: options -> checked artifact + report.

Order: check the options (no TensorFlow work) -> check the runtime a format needs (TensorRT,
TF-TRT) -> load the model -> resolve and check the input size -> fold BN (``graph.inference_model``)
-> build the artifact at a temporary path next to ``output`` -> (``verify``) compare it with the
Keras model -> rename it to ``output`` -> write ``<output>.report.json``.

Nothing is left at ``output`` when any step fails: the temporary file or folder is removed (and an
older artifact at ``output`` stays as it was). A failed verification does not publish the artifact
either; its report is still written, with ``"passed": false`` and ``"artifact_written": false``.
"""

import dataclasses
import os
import shutil
import tempfile
import time

from tfseg.export_lib.errors import ExportError, NotApplicable, VerificationError
from tfseg.export_lib.targets import PRECISIONS, TARGETS

FORMATS = ("saved_model", "tflite", "onnx", "openvino", "tensorrt", "tftrt", "auto")
FORMAT_PRECISIONS = {
    "saved_model": ("fp32",),
    "tflite": ("fp32", "fp16", "int8"),
    "onnx": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
    "tensorrt": ("fp32", "fp16", "int8"),
    "tftrt": ("fp32", "fp16", "int8"),
    # --format=auto: --precision is the lowest precision it may choose (export_lib.auto)
    "auto": ("fp32", "fp16", "bf16", "int8"),
}


# Keras-level rewrites per format (``graph.inference_model``): grouped convolutions as one plain
# Conv2D op where TF itself never runs the graph (ONNX), and transposed convolutions as sub-pixel
# convolutions where that is faster: every one for LiteRT, stride >= 4 elsewhere (the x8
# label-space upsampling; onnxruntime's own ConvTranspose is the fastest at x2). x2 ones become
# four 2x2 quadrant convolutions, except in int8 LiteRT, where the one 3x3 convolution measured
# faster (UNet-ResNet18 at 512x1024, 2 cores, idle: 481 against 507 ms; in fp32 quadrants win).
# Since session 21 every kernel from s to 2s qualifies (3x3/2 as one 2x2 convolution, 2x2/2 as a
# 1x1): faster in LiteRT int8 and fp32 for each network measured (LinkNet int8 88 -> 74 ms), but
# slower in onnxruntime at x2, whose DepthToSpace is slow (ADSCNet 133 -> 164 ms; docs/results.md).
# nearest_as_d2s: nearest UpSampling2D as concatenation + depth-to-space steps instead of TILE
# ops, which XNNPACK does not run (Lite-HRNet fp32 LiteRT 134 -> 123 ms, int8 unchanged at 92).
# native_resize: one bilinear Resize instead of the slice form where the size is static (measured
# faster in onnxruntime, float LiteRT and, since session 18, int8 LiteRT:
# graph._NativeBilinearUpsample)
# expand_depthwise: a depthwise convolution with a channel multiplier as a 0/1 1x1 expansion and a
# multiplier-1 depthwise convolution (XNNPACK runs the multiplier form as a slow grouped
# convolution; DFANet int8 64.3 -> 49.5 ms, fp32 110.4 -> 100.0; graph._ExpandedDepthwiseConv2D)
REWRITES = {
    "saved_model": {"grouped_conv": "keras", "subpixel_min_stride": 4},
    "tftrt": {"grouped_conv": "keras", "subpixel_min_stride": 4},
    "tflite": {"grouped_conv": "keras", "subpixel_min_stride": 2, "native_resize": True,
               "transpose_shuffle": True, "selu_as_elu": True, "nearest_as_d2s": True,
               "expand_depthwise": True},
    "onnx": {"grouped_conv": "native", "subpixel_min_stride": 4, "native_resize": True,
             "transpose_shuffle": True},
    "tensorrt": {"grouped_conv": "native", "subpixel_min_stride": 4, "native_resize": True,
                 "transpose_shuffle": True},
}
# OpenVINO reads the ONNX graph: the same forms (its int8 is NNCF's, export_lib.openvino_export)
REWRITES["openvino"] = dict(REWRITES["onnx"])


# ``--int8_float_layers`` value of the int8 ONNX export: ``onnx_int8.pool_concats`` in float
ONNX_FLOAT_DOWNSAMPLERS = "downsamplers"


def rewrites(fmt, precision="fp32"):
    """``inference_model`` keyword arguments for format ``fmt`` at ``precision``."""
    kw = dict(REWRITES[fmt])
    if fmt == "tflite" and precision == "int8":
        kw["subpixel_quadrants"] = False
        kw["prelu_as_max"] = True  # XNNPACK has no int8 PRELU (graph._LeakyFormPReLU)
        # one grouped CONV_2D per layer, which XNNPACK runs, instead of SPLIT + a convolution per
        # group + CONCATENATION (RegSeg int8: 208 -> 110 ms; fp32 gains nothing, docs/results.md)
        kw["grouped_conv"] = "native"
        # max-pool switches and unpooling as 0/1 masks from ops XNNPACK runs in int8 (ENet int8:
        # six XNNPACK partitions -> one; graph._MaskPoolSwitches, docs/results.md)
        kw["unpool_masks"] = True
        # "valid" average poolings as depthwise convolutions: XNNPACK has no int8 AVERAGE_POOL_2D
        kw["avg_pool_as_conv"] = True
        # "same" ones as depthwise convolutions and a multiply by the border correction (ADSCNet
        # int8: its five sizes of pool took ~40 of 99 ms in LiteRT's built-in kernel)
        kw["same_pool_as_conv"] = True
        # a ReLU after a transposed convolution cannot be fused into it, and XNNPACK has no
        # standalone int8 RELU: a leaky ReLU of slope 1/256 instead (graph.deconv_relus)
        kw["deconv_relu_as_leaky"] = True
        # the upsampling that makes the logits as one float resize after a DEQUANTIZE of the
        # low-resolution scores (graph._FloatFinalResize; Fast-SCNN int8 22.6 -> 19.0 ms)
        kw["float_final_resize"] = True
    if fmt == "onnx" and precision == "int8":
        # onnxruntime's int8 kernels (QDQ graph, CPU provider), measured under the AVX2 profile
        # (experiments/ort_int8_forms.py --forms=rewrites, docs/results.md):
        # a depthwise convolution with a channel multiplier above 1 takes QLinearConv's generic
        # path, 4-7x slower than fp32 (DFANet int8 187 -> 85 ms, BiSeNetV2 129 -> 105 ms as a 0/1
        # 1x1 convolution + a multiplier-1 depthwise one)
        kw["expand_depthwise"] = True
        # QLinearAveragePool ran 8x slower than the float pool (ADSCNet 58 against 7 ms); as
        # depthwise convolutions of constant weights: ADSCNet int8 180 -> 124 ms
        kw["avg_pool_as_conv"] = True
        kw["same_pool_as_conv"] = True
        # a channel shuffle as a 1x1 convolution by the permutation matrix, which QLinearConv
        # runs on int8 data in place of the float transpose between DequantizeLinear and
        # QuantizeLinear (LEDNet int8 133 -> 118 ms, AGLNet 160 -> 136, Lite-HRNet 159 -> 147:
        # docs/ort_int8_shuffles_avx2.json; in int8 LiteRT slower in a first probe: 157 -> 164,
        # 177 -> 200, 109 -> 119; graph._ConvChannelShuffle)
        kw["shuffle_as_conv"] = True
    if fmt == "openvino" and precision == "int8":
        # OpenVINO runs a multiplier-m int8 depthwise convolution as a generic grouped GEMM
        # (jit_gemm_I8: 51 of DFANet's 105 ms); expanded, under the AVX2 profile, int8 DFANet
        # 117 -> 84 ms, BiSeNetV2 119 -> 111 (fp32 not faster, so not applied there; docs/
        # openvino_expand_depthwise_avx2.json). Its int8 average poolings run in its own jit
        # kernel: no pool rewrite.
        kw["expand_depthwise"] = True
        # a channel shuffle as a 1x1 convolution by the permutation matrix: NNCF quantizes the
        # convolutions behind the shuffle, so its ShuffleChannels kernel ran in float32 (LEDNet
        # int8: 16 of 129 ms); the convolution runs in int8 (graph._ConvChannelShuffle)
        kw["shuffle_as_conv"] = True
    return kw


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """Everything one export needs (``tfseg.export`` builds it from its flags)."""

    model_path: str
    output: str
    format: str = "saved_model"
    precision: str = "fp32"
    target: str = "generic"
    input_size: tuple[int, int] | None = None
    verify: bool = False
    verify_images: int = 20
    dataset: str | None = None
    data_dir: str | None = None
    dataset_options: dict | None = None
    verify_split: str = "val"
    calibration_split: str = "train"
    calibration_steps: int = 100
    threads: int | None = None
    workspace_mb: int = 1024
    int8_float_layers: str = ""


def check_options(o):
    """Raise ExportError for an impossible combination; cheap, runs before any model is loaded."""
    if o.format not in FORMATS:
        raise ExportError(f"unknown format {o.format!r}; choose from {', '.join(FORMATS)}")
    if o.target not in TARGETS:
        raise ExportError(f"unknown target {o.target!r}; choose from {', '.join(TARGETS)}")
    if o.precision not in PRECISIONS:
        raise ExportError(f"unknown precision {o.precision!r}; choose from {', '.join(PRECISIONS)}")
    if o.precision == "bf16" and o.format != "openvino" and o.format != "auto":
        raise ExportError(
            f"--precision=bf16 is OpenVINO's (--format=openvino, on a CPU with AVX-512 BF16 or "
            f"AMX), not --format={o.format}'s"
        )
    if o.precision not in FORMAT_PRECISIONS[o.format]:
        hint = {
            "saved_model": "a SavedModel is fp32; use --format=tflite or tensorrt for fp16/int8",
            "onnx": "an ONNX file is fp32 or int8 (QDQ, for onnxruntime); TensorRT picks fp16 "
            "when it builds the engine (--format=tensorrt, or tfseg/deploy/build_engine.py "
            "--precision on the device)",
            "openvino": "an OpenVINO IR is fp32, bf16 (the fp32 IR run in bfloat16) or int8 "
            "(NNCF); on a CPU, fp16 weights are expanded to fp32 at load time",
        }[o.format]
        raise ExportError(
            f"--precision={o.precision} is not available for --format={o.format}: {hint}"
        )
    if (o.format, o.precision) == ("onnx", "int8") and o.target not in ("generic", "cpu"):
        raise ExportError(
            f"--format=onnx --precision=int8 is onnxruntime's QDQ graph for CPUs "
            f"(--target=cpu or generic); for --target={o.target}, export the fp32 ONNX and let "
            "TensorRT calibrate int8 when it builds the engine (tfseg/deploy/build_engine.py "
            "--precision=int8)"
        )
    if o.format == "openvino" and o.target not in ("generic", "cpu"):
        raise ExportError(
            f"--format=openvino is for x86 CPUs (--target=cpu or generic), not "
            f"--target={o.target}; for a Jetson, export --format=onnx and build a TensorRT "
            "engine on the board"
        )
    if o.format == "auto" and o.target != "cpu":
        raise ExportError(
            "--format=auto measures the candidates on this machine, so it is for --target=cpu "
            f"(the artifact runs on a CPU like this one), not --target={o.target}"
        )
    if (o.int8_float_layers or "").strip() and o.format == "auto":
        raise ExportError(
            "--format=auto tries int8 with the class-score layers (LiteRT) and the downsamplers "
            "(onnxruntime) in float itself; --int8_float_layers is for --format=tflite or onnx "
            "with --precision=int8"
        )
    floats = (o.int8_float_layers or "").strip()
    if (o.format, o.precision) == ("onnx", "int8"):
        if floats not in ("", ONNX_FLOAT_DOWNSAMPLERS):
            raise ExportError(
                f"--format=onnx --precision=int8 takes --int8_float_layers="
                f"{ONNX_FLOAT_DOWNSAMPLERS} only (the downsamplers' max pooling and "
                f"concatenation in float), got {floats!r}"
            )
    elif floats and (o.format, o.precision) != ("tflite", "int8"):
        raise ExportError(
            "--int8_float_layers is for --format=tflite or onnx with --precision=int8, not "
            f"--format={o.format} --precision={o.precision}"
        )
    if o.precision not in TARGETS[o.target]["precisions"]:
        raise ExportError(
            f"--target={o.target} ({TARGETS[o.target]['description']}) does not support "
            f"--precision={o.precision}"
        )
    if o.input_size is not None and (len(o.input_size) != 2 or min(o.input_size) <= 0):
        raise ExportError(f"--input_size must be HxW with positive sizes, got {o.input_size}")
    if not o.output:
        raise ExportError("--output is required")
    if o.verify_images < 1 or o.calibration_steps < 1:
        raise ExportError("--verify_images and --calibration_steps must be >= 1")
    if not os.path.exists(o.model_path):
        raise ExportError(f"model file not found: {o.model_path}")


def check_runtime(o):
    """Raise ExportError when the format needs software this machine lacks."""
    if o.format == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise ExportError(
                "--format=tensorrt needs the TensorRT Python bindings and an NVIDIA GPU on this "
                "machine (pip install tensorrt; on a Jetson they come with JetPack). Engines are "
                "specific to the TensorRT version and GPU: for a Jetson, export --format=onnx "
                f"--target={o.target if o.target != 'generic' else 'xavier'} here and build the "
                "engine on the board with tfseg/deploy/build_engine.py "
                "(see tfseg/deploy/README.md)."
            ) from None
    if o.format == "openvino":
        from tfseg.export_lib.openvino_export import bf16_supported, require_openvino

        require_openvino()
        if o.precision == "bf16" and not bf16_supported():
            from tfseg.cpuinfo import cpu_description

            raise NotApplicable(
                "--format=openvino --precision=bf16 needs a CPU with bfloat16 units (AVX-512 BF16 "
                f"or AMX), where it can be verified; this one has none ({cpu_description()}), "
                "and OpenVINO would run the IR in float32 here"
            )
    if o.format == "tftrt":
        from tfseg.export_lib.tftrt import require_tftrt

        require_tftrt()


def resolve_input_size(model, o):
    """``(H, W)`` the artifact is built for, ``(None, None)`` for dynamic; checks the stride."""
    from tfseg.models import model_stride

    stride = model_stride(model)
    static = tuple(model.inputs[0].shape[1:3])
    size = tuple(o.input_size) if o.input_size else static
    if size[0] is None or size[1] is None:
        if TARGETS[o.target]["static"]:
            raise ExportError(
                f"--target={o.target} needs a static input size: pass --input_size=HxW "
                f"(multiples of {stride}, e.g. 512x1024)"
            )
        if o.format == "tensorrt":
            raise ExportError(f"--format=tensorrt needs --input_size=HxW (multiples of {stride})")
        return (None, None), stride
    h, w = int(size[0]), int(size[1])
    if h % stride or w % stride:
        up = (-(-h // stride) * stride, -(-w // stride) * stride)
        raise ExportError(
            f"input size {h}x{w} is not divisible by the model's stride {stride}; "
            f"use e.g. {up[0]}x{up[1]} (pad images to it, as tfseg.predict does)"
        )
    return (h, w), stride


def _versions():
    import importlib.metadata as md

    out = {}
    for name in (
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "tf2onnx",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
        "openvino",
        "nncf",
    ):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def run_export(o, log=print):
    """Do the export described by ``o`` (an ``ExportOptions``); returns the report dict.

    Raises ExportError (nothing written) or VerificationError (report written, artifact not).
    """
    import tfseg
    from tfseg.export_lib.graph import INSTANCE, inference_model, output_names
    from tfseg.files import atomic_path, write_json_atomic
    from tfseg.models.saving import load_model

    check_options(o)
    check_runtime(o)
    start = time.time()
    try:
        model = load_model(o.model_path)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(str(e)) from e
    size, stride = resolve_input_size(model, o)
    batch = 1 if TARGETS[o.target]["static"] or o.format in ("tflite", "tensorrt") else None
    num_classes = int(model.outputs[0].shape[-1])
    outputs = output_names(model)  # ExportError for an unsupported multi-output model
    int8_formats = ("tflite", "onnx", "openvino")
    if INSTANCE in outputs and o.format in int8_formats and o.precision == "int8":
        raise ExportError(
            "--precision=int8 cannot carry the instance output of a --task=instance model: its "
            "centres are pixel coordinates, which 8 bits cannot hold to a pixel (SSN at 128x256: "
            "0.85 % of the pixels within 1 px of Keras, against 99.985 % in fp16). Export it with "
            "--precision=fp16 or fp32."
        )
    folded, bn_info = inference_model(model, **rewrites(o.format, o.precision))
    log(
        f"{model.name}: stride {stride}, input "
        f"{'dynamic' if size[0] is None else f'{size[0]}x{size[1]}'}; "
        f"BatchNorm folded into convolutions: {len(bn_info['folded'])} of "
        f"{bn_info['batchnorm_layers']}; "
        f"transposed convolutions as sub-pixel convolutions: {len(bn_info['subpixel_deconvs'])}"
    )
    spec = None
    if o.verify or o.precision == "int8":
        from tfseg.export_lib.samples import load_spec, resolve_dataset

        name, data_dir, options = resolve_dataset(
            o.model_path, o.dataset, o.data_dir, o.dataset_options
        )
        spec = load_spec(name, data_dir, options)
    report = {
        "tfseg_version": tfseg.__version__,
        "model_path": os.path.abspath(o.model_path),
        "model_name": model.name,
        "format": o.format,
        "precision": o.precision,
        "target": o.target,
        "target_description": TARGETS[o.target]["description"],
        "input_shape": [batch, size[0], size[1], 3],
        "input_dtype": "float32 (normalised: (x / 255 - mean) / std, ImageNet mean/std)",
        "num_classes": num_classes,
        "outputs": outputs,
        "stride": stride,
        "output": os.path.abspath(o.output),
        "batchnorm": {k: bn_info[k] for k in ("batchnorm_layers", "folded", "unfolded")},
        "rewrites": {
            k: bn_info[k]
            for k in (
                "native_grouped_convs",
                "subpixel_deconvs",
                "prelu_as_leaky",
                "prelu_as_max",
                "prelu_kept",
                "transpose_shuffles",
                "shuffle_as_conv",
                "selu_as_elu",
                "unpool_masks",
                "avg_pool_as_conv",
                "same_pool_as_conv",
                "strided_pointwise",
                "expanded_depthwise",
                "deconv_relu_as_leaky",
                "float_final_resize",
            )
        },
        "versions": _versions(),
    }
    if spec is not None:
        report["dataset"] = {"name": spec.name, "root": spec.root}
    builder = {
        "saved_model": _build_saved_model,
        "tflite": _build_tflite,
        "onnx": _build_onnx,
        "openvino": _build_openvino,
        "tensorrt": _build_tensorrt,
        "tftrt": _build_tftrt,
    }[o.format]
    folders = ("saved_model", "tftrt", "openvino")
    suffix = "" if o.format in folders else os.path.splitext(o.output)[1]
    verification = None
    try:
        with atomic_path(o.output, suffix=suffix) as tmp:
            runner = builder(
                o, folded, tmp, size=size, batch=batch, stride=stride, spec=spec,
                report=report, log=log,
            )  # fmt: skip
            report["artifact_bytes"] = _size_of(tmp)
            if o.verify:
                verification = _verify(o, model, runner, spec, size, stride, num_classes, log)
                report["verification"] = verification
                if not verification["passed"]:
                    hint = ""
                    if (o.format, o.precision) == ("tflite", "int8") and not o.int8_float_layers:
                        hint = " (try --int8_float_layers=scores: the class-score layers in float)"
                    raise VerificationError(
                        "verification failed: " + "; ".join(verification["failures"]) + hint,
                        report,
                    )
    except VerificationError:
        report["artifact_written"] = False
        report["seconds"] = time.time() - start
        write_json_atomic(o.output + ".report.json", report)
        raise
    report["artifact_written"] = True
    report["seconds"] = time.time() - start
    write_json_atomic(o.output + ".report.json", report)
    return report


def _size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def _samples(spec, split, count, size, stride):
    from tfseg.export_lib.samples import samples

    return samples(spec, split, count=count, input_size=size if size[0] else None, stride=stride)


def _verify(o, model, runner, spec, size, stride, num_classes, log):
    from tfseg.evaluation import make_predict_fn
    from tfseg.export_lib.graph import output_names
    from tfseg.export_lib.verify import compare

    predict = make_predict_fn(model)
    names = output_names(model)

    def reference(x):
        out = predict(x)
        if len(names) == 1:
            return out.numpy()
        return {name: v.numpy() for name, v in zip(names, out)}

    uint8_fn = getattr(runner, "labels_uint8", None)
    if len(names) > 1:
        runner = getattr(runner, "outputs", runner)  # every output, not only the logits
    result = compare(
        reference,
        runner,
        _samples(spec, o.verify_split, o.verify_images, size, stride),
        num_classes=max(num_classes, spec.num_classes),
        ignore_label=spec.ignore_label,
        precision=o.precision,
        uint8_fn=uint8_fn,
    )
    result["split"] = o.verify_split
    centres = ""
    if "centre_agreement" in result:
        centres = (
            f", instance centres within {result['centre_tolerance']:g} px on "
            f"{100 * result['centre_agreement']:.3f}% of the pixels (max |diff| "
            f"{result['max_abs_centre_diff']:.3g} px)"
        )
    log(
        f"verify on {result['num_images']} {spec.name} {o.verify_split} images: "
        f"max |logit diff| {result['max_abs_logit_diff']:.3g} "
        f"(relative {result['max_rel_logit_diff']:.2e}), argmax agreement "
        f"{100 * result['argmax_agreement']:.3f}%, mIoU keras {_pct(result['miou_keras'])} / "
        f"artifact {_pct(result['miou_artifact'])}{centres} -> "
        f"{'PASS' if result['passed'] else 'FAIL'}"
    )
    return result


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.2f}"


# --------------------------------------------------------------------------------------------------
# one builder per format: write the artifact at ``tmp``, fill ``report``, return a runner
# --------------------------------------------------------------------------------------------------


def _build_saved_model(o, model, tmp, *, size, batch, stride, spec, report, log):
    from tfseg.export_lib.saved_model import SavedModelRunner, write_saved_model

    write_saved_model(model, tmp, input_size=size, batch_size=batch, stride=stride)
    runner = SavedModelRunner(tmp)
    ops = runner.op_types()
    report["saved_model"] = {
        "signatures": {
            "serving_default": (
                "images float32 [B,H,W,3] (normalised) -> logits float32, labels int32"
            ),
            "serving_uint8": "images uint8 [B,H,W,3] RGB -> labels int32"
            + (" (padded to the stride and cropped back)" if size[0] is None else ""),
        },
        "op_types": ops,
        # Keras' BatchNormalization computes rsqrt(var + eps); none left = all BN folded.
        "batchnorm_ops": sum(v for k, v in ops.items() if "BatchNorm" in k or k == "Rsqrt"),
    }
    log(f"SavedModel written; graph op types: {', '.join(ops)}")
    return runner


def _build_tflite(o, model, tmp, *, size, batch, stride, spec, report, log):
    from tfseg.export_lib.tflite import (
        LiteRTRunner,
        convert_tflite,
        float_layer_names,
        tflite_op_types,
    )

    representative = None
    float_layers = []
    if o.precision == "int8":
        from tfseg.export_lib.samples import calibration_images

        log(f"int8 calibration on {o.calibration_steps} {spec.name} {o.calibration_split} images")
        representative = calibration_images(
            spec, o.calibration_split, steps=o.calibration_steps,
            input_size=size if size[0] else None, stride=stride,
        )  # fmt: skip
        float_layers = float_layer_names(model, o.int8_float_layers)
        if float_layers:
            log(f"int8 with {len(float_layers)} layer(s) kept in float: {', '.join(float_layers)}")
    info = {}
    content = convert_tflite(
        model, input_size=size, precision=o.precision, representative=representative,
        float_layers=float_layers, info=info,
    )  # fmt: skip
    with open(tmp, "wb") as f:
        f.write(content)
    ops = tflite_op_types(content)
    report["tflite"] = {
        "op_types": ops,
        "supported_ops": "TFLITE_BUILTINS_INT8" if o.precision == "int8" else "TFLITE_BUILTINS",
        "calibration_images": o.calibration_steps if o.precision == "int8" else None,
        "int8_float_layers": float_layers,
        "float_ops": info.get("float_ops"),
        "xnnpack_float_layers": info.get("xnnpack_float_layers"),
        "prelu_max_form": info.get("prelu_max_form"),
        "deconv_leak_slopes": info.get("deconv_leak_slopes"),
        "io": "float32 in / float32 out"
        + (" (QUANTIZE/DEQUANTIZE at the edges)" if o.precision == "int8" else ""),
    }
    log(f"TFLite ({o.precision}) op types: {', '.join(f'{k} x{v}' for k, v in ops.items())}")
    if info.get("xnnpack_float_layers"):
        log("int8: kept in float, as XNNPACK refuses their quantised form (requantisation scale "
            f">= 256): {', '.join(info['xnnpack_float_layers'])}")
    if info.get("prelu_max_form"):
        log("int8: PReLU in max form where XNNPACK would refuse the leaky ReLU's scales: "
            f"{', '.join(info['prelu_max_form'])}")
    if info.get("deconv_leak_slopes"):
        log("int8: ReLU stand-ins after transposed convolutions with a larger leak, where XNNPACK "
            "would refuse the leaky ReLU's scales: "
            + ", ".join(f"{k} {v:.4f}" for k, v in info["deconv_leak_slopes"].items()))
    return LiteRTRunner(content, threads=o.threads)


def _onnx_model(o, model, *, size, batch, report, log):
    from tfseg.export_lib.onnx_export import (
        check_onnx_model,
        convert_onnx,
        format_problems,
        onnx_op_types,
    )

    opset = TARGETS[o.target]["opset"]
    # upsamplings in NHWC where onnxruntime runs the file (export_lib.onnx_layout); TensorRT
    # targets and OpenVINO keep tf2onnx's NCHW resizes (OpenVINO: DDRNet fp32 under the AVX2
    # profile 168 ms with NHWC resizes, 99 ms with NCHW ones; experiments/openvino_layouts.py)
    nhwc = TARGETS[o.target]["tensorrt"] is None and o.format != "openvino"
    proto = convert_onnx(model, opset=opset, input_shape=(batch, size[0], size[1]),
                         nhwc_upsamplings=nhwc)
    problems = check_onnx_model(proto, o.target, [layer.name for layer in model.layers])
    if problems:
        raise ExportError(format_problems(problems, o.target))
    ops = onnx_op_types(proto)
    report["onnx"] = {
        "opset": opset,
        "op_types": ops,
        "tensorrt": TARGETS[o.target]["tensorrt"],
        "input": {"name": "images", "shape": [batch, size[0], size[1], 3], "layout": "NHWC"},
        "output": {"name": "logits", "layout": "NHWC"},
        "batchnorm_like_nodes": sum(
            1
            for n in proto.graph.node
            if n.op_type == "BatchNormalization" or "batchnorm" in n.name
        ),
    }
    log(f"ONNX opset {opset}; op types: {', '.join(f'{k} x{v}' for k, v in ops.items())}")
    return proto


def _build_onnx(o, model, tmp, *, size, batch, stride, spec, report, log):
    import onnx

    from tfseg.export_lib.onnx_export import OnnxRunner

    proto = _onnx_model(o, model, size=size, batch=batch, report=report, log=log)
    onnx.checker.check_model(proto)
    if o.precision != "int8":
        onnx.save(proto, tmp)
        return OnnxRunner(proto, threads=o.threads)
    from tfseg.export_lib.errors import NotApplicable
    from tfseg.export_lib.onnx_int8 import pool_concats, quantize_onnx
    from tfseg.export_lib.samples import calibration_images

    if size[0] is None:
        raise ExportError("--format=onnx --precision=int8 needs a static --input_size=HxW")
    log(f"int8 calibration on {o.calibration_steps} {spec.name} {o.calibration_split} images")
    downsamplers = (o.int8_float_layers or "").strip() == ONNX_FLOAT_DOWNSAMPLERS
    if downsamplers and not pool_concats(proto):
        raise NotApplicable(
            f"--int8_float_layers={ONNX_FLOAT_DOWNSAMPLERS}: the model has no max pooling that "
            "a concatenation reads (the downsampler of ENet / ERFNet)"
        )
    info = {}
    content = quantize_onnx(
        proto,
        calibration_images(
            spec, o.calibration_split, steps=o.calibration_steps, input_size=size, stride=stride
        ),
        info=info,
        float_pool_concats=downsamplers,
    )
    with open(tmp, "wb") as f:
        f.write(content)
    report["onnx"]["int8"] = info
    log(
        f"ONNX int8 (QDQ): {info['quantize_linear_nodes']} QuantizeLinear nodes, weights "
        f"{info['weights']}, reduce_range={info['reduce_range']}"
    )
    return OnnxRunner(content, threads=o.threads)


def _build_openvino(o, model, tmp, *, size, batch, stride, spec, report, log):
    from tfseg.export_lib import openvino_export as ovx

    if o.precision == "int8" and size[0] is None:
        raise ExportError("--format=openvino --precision=int8 needs a static --input_size=HxW")
    proto = _onnx_model(o, model, size=size, batch=batch, report=report, log=log)
    graph = {}
    ov_model = ovx.from_onnx(proto, info=graph)
    log(f"OpenVINO conversion, graph optimization: {graph['graph_optimization']}; downsamplers "
        f"as additions: {graph.get('pool_concat_adds', 0)}")
    info = {}
    if o.precision == "int8":
        from tfseg.export_lib.samples import calibration_images

        log(f"int8 calibration on {o.calibration_steps} {spec.name} {o.calibration_split} images")
        ov_model = ovx.quantize(
            ov_model,
            calibration_images(
                spec, o.calibration_split, steps=o.calibration_steps, input_size=size,
                stride=stride,
            ),
            info=info,
        )  # fmt: skip
    ovx.save(ov_model, tmp, o.precision)
    runner = ovx.OpenVINORunner(ov_model, threads=o.threads, hint=ovx.HINTS[o.precision])
    if runner.inference_precision != ovx.HINTS[o.precision]:  # bf16_supported said yes
        raise ExportError(
            f"OpenVINO compiled the {o.precision} IR to {runner.inference_precision} on this CPU")
    hint = ovx.HINTS[o.precision]
    report["openvino"] = {
        "files": [ovx.XML, ovx.BIN],
        "op_types": ovx.op_types(ov_model),
        "graph_optimization": graph["graph_optimization"],
        "pool_concat_adds": graph.get("pool_concat_adds", 0),
        "inference_precision_hint": f"{hint} (stored in the IR's rt_info tfseg/inference_precision"
        f", which tfseg's runner reads; pass INFERENCE_PRECISION_HINT={hint} when you compile)",
        "int8": info or None,
    }
    log(f"OpenVINO IR ({o.precision}, float layers in {runner.inference_precision}) op types: "
        + ", ".join(f"{k} x{v}" for k, v in report["openvino"]["op_types"].items()))
    return runner


def _build_tensorrt(o, model, tmp, *, size, batch, stride, spec, report, log):
    import onnx

    from tfseg.deploy import build_engine, engine

    proto = _onnx_model(o, model, size=size, batch=batch, report=report, log=log)
    work = tempfile.mkdtemp(prefix="tfseg_trt_")
    try:
        onnx_path = os.path.join(work, "model.onnx")
        onnx.save(proto, onnx_path)
        calib = None
        if o.precision == "int8":
            calib = os.path.join(work, "calib")
            os.makedirs(calib)
            from tfseg.deploy.common import write_png
            from tfseg.export_lib.samples import samples

            for i, s in enumerate(
                samples(
                    spec,
                    o.calibration_split,
                    count=o.calibration_steps,
                    input_size=size,
                    stride=stride,
                )
            ):
                write_png(os.path.join(calib, f"{i:05d}.png"), s["uint8"])
        summary = build_engine.build_engine(
            onnx_path, tmp, precision=o.precision, workspace_mb=o.workspace_mb,
            calib_images=calib, calib_count=o.calibration_steps, stride=stride,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["tensorrt"] = summary
    runner = engine.TensorRTRunner(tmp)
    return runner  # {name: array}: logits (and instance)


def _build_tftrt(o, model, tmp, *, size, batch, stride, spec, report, log):  # pragma: no cover
    from tfseg.export_lib.tftrt import convert_tftrt

    return convert_tftrt(
        model, tmp, precision=o.precision, size=size, batch=batch, stride=stride, spec=spec,
        calibration_split=o.calibration_split, calibration_steps=o.calibration_steps, report=report,
    )
