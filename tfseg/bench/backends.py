"""Timing a Keras model on whichever Keras backend is active: TensorFlow, JAX or PyTorch.

The benchmark's ``keras*`` runtimes come from here. They need no TensorFlow unless the backend is
TensorFlow, so ``tfseg.benchmark`` (and ``tools/gpu_benchmark.py``) time models where only JAX or
PyTorch are installed, on a CPU or a GPU:

- inference (``keras``, ``keras_bf16``): TensorFlow, the model in a ``tf.function``; JAX, one
  ``jax.jit`` of ``model.stateless_call`` (the variables passed in, so nothing is re-traced per
  call); PyTorch, the model in eval mode under ``torch.no_grad``. Each call ends when the device
  has finished (``jax.block_until_ready``, ``torch.cuda.synchronize``, a TensorFlow tensor's
  value), and the logits stay on the device: copying a batch of 19-class logits to the host would
  cost more than the network on a fast GPU;
- training (``keras_train``, ``keras_bf16_train``, ``keras_fp16_train``): one optimizer step of
  Keras' own ``train_on_batch`` on a fixed batch already on the device (Keras compiles it:
  ``tf.function`` / ``jax.jit``; PyTorch runs it eagerly). The returned loss is read, which waits
  for the step;
- ``bf16`` / ``fp16``: the same weights in a copy of the model under Keras' ``mixed_bfloat16`` /
  ``mixed_float16`` policy (low-precision compute, float32 variables; the output layers stay
  float32, as in ``tfseg.train --precision``); float16 training wraps the optimizer in Keras'
  ``LossScaleOptimizer``, as ``tfseg.train --precision=mixed_float16`` does.

The input is put on the device once; warm-up calls (which include compilation) are not timed.
"""

import numpy as np

#: runtimes that run on every Keras backend (the others need TensorFlow: export, LiteRT, ...)
BACKEND_RUNTIMES = ("keras", "keras_bf16", "keras_fp16", "keras_train", "keras_bf16_train",
                    "keras_fp16_train")

#: the Keras dtype policy of each precision suffix of those runtimes
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def backend():
    """The active Keras backend's name."""
    import keras

    return keras.backend.backend()


def device_description():
    """The device the active backend computes on, in words (``"cpu"`` when it has no GPU)."""
    name = backend()
    if name == "jax":
        import jax

        d = jax.devices()[0]
        kind = "" if d.platform == "cpu" else f": {getattr(d, 'device_kind', d)}"
        return f"{d.platform}{kind} (jax {jax.__version__})"
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)} (torch {torch.__version__})"
        return f"cpu (torch {torch.__version__})"
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return f"{'gpu: ' + gpus[0].name if gpus else 'cpu'} (tensorflow {tf.__version__})"


def with_policy(model, policy):
    """A copy of ``model`` (same weights) whose layers compute under the dtype ``policy``, except
    the output layers (``build_model`` ends each output in a float32 linear layer: the logits and
    the losses stay float32)."""
    keep = set(getattr(model, "output_names", None) or [])
    rebuilt = model.__class__.from_config(_policy_config(model.get_config(), policy, keep))
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _policy_config(config, policy, keep=()):
    if isinstance(config, list):
        return [_policy_config(c, policy, keep) for c in config]
    if not isinstance(config, dict):
        return config
    if config.get("name") in keep and isinstance(config.get("dtype"), dict):
        return config  # an output layer's config: its float32 policy stays
    if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
        return {**config, "config": {**config["config"], "name": policy}}
    return {k: _policy_config(v, policy, keep) for k, v in config.items()}


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def wait(value):
    """Block until ``value`` (a backend tensor, or a nest of them) is computed; returns it."""
    name = backend()
    if name == "jax":
        import jax

        return jax.block_until_ready(value)
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return value
    _first(value).numpy()  # TensorFlow: reading the value waits for it
    return value


class _OnDevice:
    """Keeps the device copy of the last numpy input (the benchmark passes the same array to
    every call), so that timed calls measure the model, not the host-to-device copy."""

    def __init__(self):
        self.source, self.value = None, None

    def __call__(self, x):
        import keras

        if x is not self.source:
            self.source, self.value = x, keras.ops.convert_to_tensor(x)
        return self.value


def inference_runner(model, size, batch=1, bf16=False, precision=None):
    """A callable ``x -> logits`` (a backend tensor, computed when it returns) for inputs of
    ``(batch, *size, 3)`` on the active backend; ``precision`` (``fp32``, ``bf16``, ``fp16``;
    ``bf16=True`` is ``precision="bf16"``) is the compute precision."""
    precision = precision or ("bf16" if bf16 else "fp32")
    if precision != "fp32":
        model = with_policy(model, POLICIES[precision])
    name = backend()
    on_device = _OnDevice()
    if name == "tensorflow":
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec([batch, *size, 3], tf.float32)])
        def f(x):
            return _first(model(x, training=False))

        return lambda x: wait(f(on_device(x)))
    if name == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def f(trainable, non_trainable, x):
            outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return _first(outputs)

        return lambda x: wait(f(trainable, non_trainable, on_device(x)))
    if name == "torch":
        import torch

        model.eval()

        def run(x):
            with torch.no_grad():
                return wait(_first(model(on_device(x), training=False)))

        return run
    raise ValueError(f"unsupported Keras backend {name!r}")


def train_runner(model, size, batch=1, bf16=False, num_classes=None, seed=0, precision=None):
    """A callable ``x -> loss`` that runs one training step (SGD with momentum, tfseg's
    cross-entropy) on a fixed batch of ``(batch, *size, 3)`` random images and labels; ``x`` is
    ignored (the batch is made here, on the device, once). ``precision`` as in
    ``inference_runner`` (float16 with dynamic loss scaling). Trains a copy: ``model`` is
    unchanged."""
    import keras

    from tfseg.losses import make_loss

    precision = precision or ("bf16" if bf16 else "fp32")
    copy = with_policy(model, POLICIES[precision])
    logits = _first(copy.outputs)
    num_classes = num_classes or int(logits.shape[-1])
    rng = np.random.default_rng(seed)
    images = keras.ops.convert_to_tensor(rng.standard_normal((batch, *size, 3), dtype=np.float32))
    labels = keras.ops.convert_to_tensor(
        rng.integers(0, num_classes, (batch, *size)).astype("int32")
    )
    heads = len(copy.outputs)
    loss = make_loss("ce")
    optimizer = keras.optimizers.SGD(1e-3, momentum=0.9)
    if precision == "fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    copy.compile(
        optimizer=optimizer,
        loss=[loss] * heads if heads > 1 else loss,
    )
    targets = [labels] * heads if heads > 1 else labels

    def step(_x=None):
        out = copy.train_on_batch(images, targets)
        return float(np.asarray(out).ravel()[0])

    return step
