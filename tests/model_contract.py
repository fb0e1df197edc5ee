"""The model contract every tfseg network must keep, as one helper that every model test calls.

``check_model_contract(name, encoder=...)`` checks, on small sizes so that ~50 networks fit the
suite's budget:

- the logits' shape and dtype at ``full_size`` (default 512x1024: symbolic shapes, no execution)
  and, through one dynamic-size model, at two small sizes that are multiples of the
  network's stride (executed);
- the stride guard: a size that is not a multiple of the stride raises the guard's message, and
  (``any_size=True``, the default) the network built with ``any_size=True`` gives logits at that
  size instead. The padding and cropping are the same two layers around any network
  (``StrideGuard``, ``CropToInput``): the zoo's test checks them on a few networks, not on all;
- gradients reach every trainable weight and a step along them lowers a fixed batch's loss;
- ``.keras`` save / load parity (and the recorded anatomy comes back);
- optionally (``export=True``) LiteRT fp32 and ONNX parity at the first small size, through the same
  graph rewrites as ``tfseg.export``, and the ONNX graph against the TX2 / Xavier op allow-lists.

It returns the dynamic-size model, for further checks by the caller.
"""

import keras
import numpy as np
import pytest

import tfseg
from tfseg.losses import make_loss
from tfseg.models import get_anatomy, stride_of


def small_sizes(stride, base=64):
    """Two different (H, W) multiples of ``stride``, the first non-square."""
    unit = max(stride, 1)
    h = unit * max(1, -(-base // unit))
    return (h, h + unit), (h + unit, h)


def _data(size, num_classes, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, *size, 3)).astype("float32")
    y = rng.integers(0, num_classes, size=(batch, *size)).astype("int32")
    return x, y


def _check_static(model, num_classes, full_size):
    """Symbolic logits shape at ``full_size`` (no weights created, nothing executed)."""
    spec = model.compute_output_spec(keras.KerasTensor((1, *full_size, 3)))
    spec = spec[0] if isinstance(spec, (list, tuple)) else spec
    assert tuple(spec.shape) == (1, *full_size, num_classes), spec.shape
    assert spec.dtype == "float32"


def _check_stride_guard(model, name, num_classes, stride, size, build_kw, any_size):
    if stride == 1:
        return
    odd = (size[0] + stride // 2, size[1])
    x = np.zeros((1, *odd, 3), "float32")
    with pytest.raises(ValueError, match=f"multiple of the model's stride {stride}"):
        model(x, training=False)
    if any_size:
        padded = tfseg.build_model(name, num_classes, any_size=True, **build_kw)
        assert tuple(padded(x, training=False).shape) == (1, *odd, num_classes)


def _seed_states(model):
    """The state variables of every random-number generator in ``model`` (dropout masks, noise)."""
    return [
        generator.state
        for layer in model._flatten_layers(include_self=True, recursive=True)
        for generator in getattr(layer, "_seed_generators", [])
    ]


def _check_train_step(model, num_classes, size, tries=4):
    """Training-mode gradients reach every trainable weight, finite, and a step along them lowers
    the loss of a fixed batch.

    The loss is a deterministic function of the weights here: every random generator (dropout) is
    set back to the same state before each forward pass, and BatchNorm in training mode uses the
    batch's statistics. So a small enough step against a correct, non-zero gradient must lower it:
    the step is sized for a 1 % first-order decrease, then a tenth of that, and so on. (One
    forward and backward pass, then usually one forward pass: no optimiser to build, and on the
    idle Zen 3 2.5 s against 5 s for ENet's former three eager Adam steps.)"""
    import tensorflow as tf

    x, y = _data(size, num_classes, seed=1)
    loss_fn = make_loss("ce")
    seeds = _seed_states(model)
    start = [np.asarray(s) for s in seeds]

    def loss_value():
        for variable, value in zip(seeds, start):
            variable.assign(value)
        value = loss_fn(y, model(x, training=True))
        return value + sum(model.losses) if model.losses else value

    weights = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = loss_value()
    grads = tape.gradient(loss, weights)
    loss = float(loss)
    missing = [w.path for w, g in zip(weights, grads) if g is None]
    assert not missing, f"no gradient reaches {missing}"
    bad = [w.path for w, g in zip(weights, grads) if not np.all(np.isfinite(g))]
    assert np.isfinite(loss) and not bad, f"loss {loss}; non-finite gradients of {bad}"
    squared = sum(float(tf.reduce_sum(tf.square(g))) for g in grads)
    assert squared > 0, "every gradient is zero"
    values = [np.asarray(w) for w in weights]
    losses = []
    for k in range(tries):
        rate = 0.01 * loss / squared / 10**k
        for w, v, g in zip(weights, values, grads):
            w.assign(v - rate * np.asarray(g))
        losses.append(float(loss_value()))
        if losses[-1] < loss:
            break
    for w, v in zip(weights, values):
        w.assign(v)
    assert losses[-1] < loss, f"loss {loss:.6f}, after steps against the gradient {losses}"


def _check_round_trip(model, tmp_path, size):
    x, _ = _data(size, 2, batch=1, seed=2)
    path = tmp_path / "contract.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(
        np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)),
        rtol=1e-4, atol=1e-4,
    )
    assert get_anatomy(loaded) == get_anatomy(model)


def assert_parity(got, reference, what):
    """``--verify``'s fp32 criterion: max |diff| / max |Keras logit| within its threshold."""
    from tfseg.export_lib.verify import THRESHOLDS

    limit = THRESHOLDS["fp32"]["max_rel_logit_diff"]
    rel = float(np.max(np.abs(got - reference)) / max(float(np.max(np.abs(reference))), 1e-6))
    assert got.shape == reference.shape and rel <= limit, f"{what}: relative logit diff {rel:.2e}"


def check_export_parity(model, size):
    """LiteRT fp32 and ONNX (opset 13) logits equal Keras' at ``size`` (``assert_parity``), and
    the ONNX graph passes the TX2 (TensorRT 8.2) and Xavier (8.5) allow-lists."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import (
        OnnxRunner,
        check_onnx_model,
        convert_onnx,
        format_problems,
    )
    from tfseg.export_lib.pipeline import rewrites
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite

    x, _ = _data(size, 2, batch=1, seed=3)
    reference = np.asarray(model(x, training=False))
    reference = reference[0] if isinstance(reference, list) else reference
    lite, _ = inference_model(model, **rewrites("tflite"))
    content = convert_tflite(lite, input_size=size)
    got = LiteRTRunner(content)(x)
    assert_parity(got, reference, "LiteRT fp32")
    onnx_model, _ = inference_model(model, **rewrites("onnx"))
    proto = convert_onnx(onnx_model, opset=13, input_shape=(1, *size))
    for target in ("tx2", "xavier"):
        problems = check_onnx_model(proto, target, [layer.name for layer in onnx_model.layers])
        assert not problems, format_problems(problems, target)
    assert_parity(OnnxRunner(proto)(x), reference, "ONNX opset 13")


def check_model_contract(
    name,
    tmp_path,
    *,
    encoder=None,
    num_classes=5,
    full_size=(512, 1024),
    base=64,
    export=False,
    any_size=True,
    **build_kw,
):
    """Check the model contract of ``name`` (see the module docstring); returns the model."""
    if encoder is not None:
        build_kw["encoder"] = encoder
    stride = stride_of(name)
    keras.utils.set_random_seed(0)
    model = tfseg.build_model(name, num_classes, **build_kw)
    if full_size is not None:
        _check_static(model, num_classes, full_size)
    first, second = small_sizes(stride, base)
    for size in (first, second):
        x, _ = _data(size, num_classes, batch=1)
        out = model(x, training=False)
        assert tuple(out.shape) == (1, *size, num_classes) and out.dtype == "float32"
    _check_stride_guard(model, name, num_classes, stride, first, build_kw, any_size)
    _check_round_trip(model, tmp_path, first)
    if export:
        check_export_parity(model, first)
    _check_train_step(model, num_classes, first)
    return model
