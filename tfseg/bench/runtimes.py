"""The runtimes the benchmark times: each gives a callable ``x -> output`` (numpy) at batch 1.

``make_runner(runtime, model, size, ...)`` builds the artifact a runtime needs on the fly, from the
same export copy of the model that ``tfseg.export`` converts (BN folded, the per-format rewrites),
or raises ``RuntimeUnavailable`` when the runtime cannot run here (the table shows the reason).
"""

import os

import numpy as np

RUNTIMES = [
    "keras",
    "keras_bf16",
    "saved_model",
    "tflite",
    "tflite_fp16",
    "tflite_int8",
    "tflite_int8_mixed",
    "onnxruntime",
    "onnxruntime_int8",
    "tensorrt",
    "none",
]
# ``--runtimes=auto``: the CPU candidates of ``tfseg.export --format=auto`` (export_lib.auto)
AUTO_RUNTIMES = ["tflite", "tflite_int8", "tflite_int8_mixed", "onnxruntime", "onnxruntime_int8"]


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


def keras_runner(model, size):
    """The Keras model called in a ``tf.function`` at batch 1 and ``size`` = (H, W)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, *size, 3], tf.float32)])
    def f(x):
        return model(x, training=False)

    return lambda x: f(x).numpy().astype(np.float32, copy=False)


def _with_policy(config, policy):
    """A copy of a Keras model config with every layer's dtype policy set to ``policy``."""
    if isinstance(config, list):
        return [_with_policy(c, policy) for c in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
        return {**config, "config": {**config["config"], "name": policy}}
    return {k: _with_policy(v, policy) for k, v in config.items()}


def bf16_runner(model, size):
    """``keras`` with every layer computing in bfloat16 (Keras' ``mixed_bfloat16`` policy, float32
    weights cast per call), the same weights: TensorFlow runs bf16 convolutions through oneDNN,
    which pays where the CPU has AVX-512 BF16 or AMX (elsewhere it emulates them, slowly). The
    logits are cast back to float32. Speed here; the argmax agreement with float32 is the user's
    to check (``experiments``/docs/results.md)."""
    rebuilt = model.__class__.from_config(_with_policy(model.get_config(), "mixed_bfloat16"))
    rebuilt.set_weights(model.get_weights())
    return keras_runner(rebuilt, size)


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
    rng = np.random.default_rng(0)
    rep = [rng.standard_normal((1, *size, 3), dtype=np.float32) for _ in range(4)]
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

    proto = convert_onnx(export_copy(model, cache, "onnx"), opset=17, input_shape=(1, *size))
    if runtime == "onnxruntime":
        return OnnxRunner(proto, threads=threads)
    if runtime == "onnxruntime_int8":
        from tfseg.export_lib.onnx_int8 import quantize_onnx

        rng = np.random.default_rng(0)
        rep = [rng.standard_normal((1, *size, 3), dtype=np.float32) for _ in range(4)]
        return OnnxRunner(quantize_onnx(proto, rep), threads=threads)
    return tensorrt_runner(proto, size, workdir)


def make_runner(runtime, model, size, *, threads=None, workdir, cache):
    """A callable running ``model`` at ``size`` with ``runtime`` (artifacts built on the fly under
    ``workdir``; export copies shared through the dict ``cache``)."""
    if runtime == "keras":
        return keras_runner(model, size)
    if runtime == "keras_bf16":
        return bf16_runner(model, size)
    if runtime == "saved_model":
        return saved_model_runner(model, size, workdir, cache)
    if runtime.startswith("tflite"):
        return tflite_runner(runtime, model, size, threads, cache)
    if runtime in ("onnxruntime", "onnxruntime_int8", "tensorrt"):
        return onnx_runner(runtime, model, size, threads, workdir, cache)
    raise ValueError(f"unknown runtime {runtime!r}; choose from {RUNTIMES}")
