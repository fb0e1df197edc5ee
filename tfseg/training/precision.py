"""Mixed-precision training (``--precision=float32|mixed_float16|mixed_bfloat16``).

A mixed model is built under Keras' global dtype policy of that name: its layers compute in
float16 / bfloat16 and keep float32 variables; every output ends in a float32 linear layer
(``build_model``), so the logits and the losses are float32. With ``mixed_float16``, ``compile``
wraps the optimizer in Keras' ``LossScaleOptimizer`` (dynamic loss scaling, saved with
``last.keras`` and resumed). bfloat16 has float32's exponent range and needs no scaling.

``model.keras`` is always a float32 model: ``float32_model`` rebuilds the architecture under the
float32 policy and copies the weights, so evaluation, prediction and every export see exactly what a
float32 run would have written.
"""

import contextlib

import keras

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy is ``name`` inside the block (restored after)."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def is_mixed(model):
    """True when some layer of ``model`` computes in a precision other than its variables'."""
    return any(
        layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
        for layer in model.layers
    )


def float32_model(model, rebuild):
    """``model`` itself when it is float32; otherwise ``rebuild()`` (the same architecture, built
    under the float32 policy, with its own recorded anatomy) holding ``model``'s weights."""
    if not is_mixed(model):
        return model
    with dtype_policy("float32"):
        copy = rebuild()
    source, target = model.weights, copy.weights
    if [tuple(w.shape) for w in source] != [tuple(w.shape) for w in target]:
        raise ValueError(f"cannot copy {model.name} into a float32 rebuild: the weights differ")
    for s, t in zip(source, target):
        t.assign(s.numpy())
    return copy
