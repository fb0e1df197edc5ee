"""The model contract every tfseg network must keep, as one helper that every model test calls.

``check_model_contract(name, encoder=...)`` checks, on small sizes so that ~50 networks fit the
suite's budget:

- the logits' shape and dtype at ``full_size`` (default 512x1024: symbolic shapes, no execution)
  and, through one dynamic-size model, at two small sizes that are multiples of the
  network's stride (executed);
- the stride guard: a size that is not a multiple of the stride raises the guard's message, and
  ``any_size=True`` gives logits at that size instead;
- a few training steps on a fixed batch lower its loss;
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


def _check_stride_guard(model, name, num_classes, stride, size, build_kw):
    if stride == 1:
        return
    odd = (size[0] + stride // 2, size[1])
    x = np.zeros((1, *odd, 3), "float32")
    with pytest.raises(ValueError, match=f"multiple of the model's stride {stride}"):
        model(x, training=False)
    padded = tfseg.build_model(name, num_classes, any_size=True, **build_kw)
    assert tuple(padded(x, training=False).shape) == (1, *odd, num_classes)


class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam, each variable's update one TensorFlow ``ResourceApplyAdam`` kernel (the same
    arithmetic: ``tests/models/test_contract.py`` checks the weights against Keras' own Adam).

    Eager Keras Adam dispatches about ten ops per variable, some 3 ms per variable here: 1.5 s a
    step for a network of 469 variables, more than its forward and backward passes. The contract
    trains eagerly (a traced step costs more to trace than three steps take)."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        import tensorflow as tf

        step = tf.cast(self.iterations + 1, "float32")
        b1, b2 = tf.constant(self.beta_1, "float32"), tf.constant(self.beta_2, "float32")
        common = dict(
            beta1_power=tf.pow(b1, step), beta2_power=tf.pow(b2, step),
            lr=tf.cast(learning_rate, "float32"), beta1=b1, beta2=b2,
            epsilon=tf.constant(self.epsilon, "float32"),
        )
        for grad, variable in zip(grads, trainable_variables):
            i = self._get_variable_index(variable)
            tf.raw_ops.ResourceApplyAdam(
                var=variable.value.handle, m=self._momentums[i].value.handle,
                v=self._velocities[i].value.handle, grad=tf.cast(grad, "float32"), **common,
            )


def _check_train_step(model, num_classes, size, steps=3):
    """Training-mode loss of a fixed batch falls over a few steps (``train_on_batch`` returns the
    loss of the forward pass before its update)."""
    x, y = _data(size, num_classes, seed=1)
    model.compile(optimizer=FusedAdam(3e-4), loss=make_loss("ce"), run_eagerly=True)
    losses = [float(np.asarray(model.train_on_batch(x, y)).ravel()[0]) for _ in range(steps)]
    assert np.all(np.isfinite(losses)) and min(losses[1:]) < losses[0], f"losses {losses}"


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
    _check_stride_guard(model, name, num_classes, stride, first, build_kw)
    _check_round_trip(model, tmp_path, first)
    if export:
        check_export_parity(model, first)
    _check_train_step(model, num_classes, first)
    return model
