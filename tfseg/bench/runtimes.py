"""The runtimes the benchmark times: each gives a callable ``x -> output`` (numpy at batch 1 for
the exported formats; the ``keras*`` runtimes of ``tfseg.bench.backends`` also take larger batches
and run on every Keras backend).

``make_runner(runtime, model, size, ...)`` builds the artifact a runtime needs on the fly, from the
same export copy of the model that ``tfseg.export`` converts (BN folded, the per-format rewrites),
or raises ``RuntimeUnavailable`` when the runtime cannot run here (the table shows the reason).
"""

import os

import numpy as np

RUNTIMES = [
    "keras",
    "keras_bf16",
    "keras_fp16",
    "keras_train",
    "keras_bf16_train",
    "keras_fp16_train",
    "saved_model",
    "tflite",
    "tflite_fp16",
    "tflite_int8",
    "tflite_int8_mixed",
    "onnxruntime",
    "onnxruntime_int8",
    "openvino",
    "openvino_bf16",
    "openvino_int8",
    "tensorrt",
    "none",
]
# ``--runtimes=auto``: the CPU candidates of ``tfseg.export --format=auto`` (export_lib.auto)
AUTO_RUNTIMES = ["tflite", "tflite_int8", "tflite_int8_mixed", "onnxruntime", "onnxruntime_int8",
                 "openvino", "openvino_bf16", "openvino_int8"]


def expand_runtimes(names):
    """``names`` with ``auto`` replaced by ``AUTO_RUNTIMES`` (order kept, no duplicates);
    ``ValueError`` naming any unknown runtime."""
    out = []
    for name in names:
        for r in AUTO_RUNTIMES if name == "auto" else [name]:
            if r not in RUNTIMES:
                raise ValueError(f"unknown runtime {r!r}; choose from {RUNTIMES + ['auto']}")
            if r not in out:
                out.append(r)
    return out


class RuntimeUnavailable(Exception):
    """The runtime cannot run here (e.g. TensorRT without a GPU); the table shows the reason."""


def keras_runner(model, size, batch=1):
    """The Keras model at ``batch`` and ``size`` = (H, W) on the active backend (a
    ``tf.function`` under TensorFlow; see ``tfseg.bench.backends``). It returns the logits as a
    backend tensor, computed but left on the device (``np.asarray`` copies them out)."""
    from tfseg.bench.backends import inference_runner

    return inference_runner(model, size, batch)


def bf16_runner(model, size, batch=1):
    """``keras`` with every layer computing in bfloat16 (Keras' ``mixed_bfloat16`` policy, float32
    weights cast per call), the same weights. On a CPU, TensorFlow runs bf16 convolutions through
    oneDNN, which pays where the CPU has AVX-512 BF16 or AMX (elsewhere it emulates them, slowly);
    on a GPU, JAX and PyTorch use its bf16 tensor cores. Speed here; the argmax agreement with
    float32 is the user's to check (``experiments``/docs/results.md)."""
    from tfseg.bench.backends import inference_runner

    return inference_runner(model, size, batch, bf16=True)


def export_copy(model, cache, fmt, precision="fp32"):
    """The export copy of ``model`` that ``tfseg.export --format=fmt --precision=precision``
    converts (cached in the dict ``cache``)."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.pipeline import rewrites

    kw = rewrites(fmt, precision)
    key = (fmt, tuple(sorted(kw.items())))
    if key not in cache:
        cache[key] = inference_model(model, **kw)[0]
    return cache[key]


def calibration_inputs(size, count=4):
    """The benchmark's stand-in data at ``size`` = (H, W): ``count`` random-normal (1, H, W, 3)
    images (seed 0), the int8 calibration set of every quantized runtime and the batches that
    set a random-weight network's BN statistics (``measure``)."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, *size, 3), dtype=np.float32) for _ in range(count)]


def saved_model_runner(model, size, workdir, cache):
    """The ``serving_default`` signature of the SavedModel written under ``workdir``."""
    from tfseg.export_lib.saved_model import SavedModelRunner, write_saved_model

    path = os.path.join(workdir, f"sm_{size[0]}x{size[1]}")
    write_saved_model(export_copy(model, cache, "saved_model"), path, input_size=size, batch_size=1)
    return SavedModelRunner(path)


def tflite_runner(runtime, model, size, threads, cache):
    """LiteRT on the ``tflite*`` conversion; int8 calibrated on 4 random-normal inputs, and
    ``tflite_int8_mixed`` with the class-score layers left in float."""
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite, float_layer_names

    precision = {"tflite": "fp32", "tflite_fp16": "fp16"}.get(runtime, "int8")
    rep = calibration_inputs(size)
    folded = export_copy(model, cache, "tflite", precision)
    float_layers = float_layer_names(folded, "scores") if runtime.endswith("_mixed") else []
    content = convert_tflite(
        folded,
        input_size=size,
        precision=precision,
        representative=rep,
        float_layers=float_layers,
    )
    return LiteRTRunner(content, threads=threads)


def tensorrt_runner(proto, size, workdir):
    """An fp16 TensorRT engine built from the ONNX ``proto``; ``RuntimeUnavailable`` without
    ``tensorrt`` or when the engine cannot be built (no GPU)."""
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


def onnx_runner(runtime, model, size, threads, workdir, cache):
    """onnxruntime (CPU provider) or TensorRT on the opset-17 ONNX conversion;
    ``onnxruntime_int8`` on its QDQ int8 version (``export_lib.onnx_int8``), calibrated on 4
    random-normal inputs."""
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx

    precision = "int8" if runtime == "onnxruntime_int8" else "fp32"
    proto = convert_onnx(export_copy(model, cache, "onnx", precision), opset=17,
                         input_shape=(1, *size))
    if runtime == "onnxruntime":
        return OnnxRunner(proto, threads=threads)
    if runtime == "onnxruntime_int8":
        from tfseg.export_lib.onnx_int8 import quantize_onnx

        return OnnxRunner(quantize_onnx(proto, calibration_inputs(size)), threads=threads)
    return tensorrt_runner(proto, size, workdir)


def openvino_runner(runtime, model, size, threads, cache):
    """OpenVINO (CPU plugin) on the IR of ``tfseg.export --format=openvino``: converted from the
    opset-17 ONNX graph; ``openvino_int8`` quantized by NNCF on 4 random-normal inputs;
    ``openvino_bf16`` the fp32 IR in bfloat16 (unavailable on a CPU without AVX-512 BF16 / AMX)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        raise RuntimeUnavailable("openvino not installed") from None
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import convert_onnx

    precision = {"openvino_int8": "int8", "openvino_bf16": "bf16"}.get(runtime, "fp32")
    if precision == "bf16" and not ovx.bf16_supported():
        raise RuntimeUnavailable("no bfloat16 units on this CPU (AVX-512 BF16 or AMX)")
    proto = convert_onnx(export_copy(model, cache, "openvino", precision), opset=17,
                         input_shape=(1, *size), nhwc_upsamplings=False)
    ov_model = ovx.from_onnx(proto)
    if precision == "int8":
        ov_model = ovx.quantize(ov_model, calibration_inputs(size))
    return ovx.OpenVINORunner(ov_model, threads=threads, hint=ovx.HINTS[precision])


def make_runner(runtime, model, size, *, threads=None, workdir, cache, batch=1):
    """A callable running ``model`` on a batch of ``batch`` at ``size`` with ``runtime``
    (artifacts built on the fly under ``workdir``; export copies shared through the dict
    ``cache``). Only the ``keras*`` runtimes (``backends.BACKEND_RUNTIMES``) take ``batch`` > 1
    or run on a Keras backend other than TensorFlow; the others raise ``RuntimeUnavailable``."""
    from tfseg.bench.backends import BACKEND_RUNTIMES, backend, inference_runner, train_runner

    if runtime not in RUNTIMES or runtime == "none":
        raise ValueError(f"unknown runtime {runtime!r}; choose from {RUNTIMES}")
    if runtime not in BACKEND_RUNTIMES:
        if backend() != "tensorflow":
            raise RuntimeUnavailable(f"needs the TensorFlow backend (this is {backend()})")
        if batch != 1:
            raise RuntimeUnavailable("batch 1 only")
    if runtime == "keras":
        return keras_runner(model, size, batch)
    if runtime == "keras_bf16":
        return bf16_runner(model, size, batch)
    if runtime == "keras_fp16":
        return inference_runner(model, size, batch, precision="fp16")
    if runtime in ("keras_train", "keras_bf16_train", "keras_fp16_train"):
        precision = {"keras_train": "fp32"}.get(runtime, runtime.split("_")[1])
        return train_runner(model, size, batch, precision=precision)
    if runtime == "saved_model":
        return saved_model_runner(model, size, workdir, cache)
    if runtime.startswith("tflite"):
        return tflite_runner(runtime, model, size, threads, cache)
    if runtime.startswith("openvino"):
        return openvino_runner(runtime, model, size, threads, cache)
    return onnx_runner(runtime, model, size, threads, workdir, cache)
