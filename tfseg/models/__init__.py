"""Model assembly: ``build_model`` joins a registered encoder and decoder, or builds a complete network.

Contract (DESIGN.md §4): the returned ``keras.Model`` maps an NHWC float image batch (normalised as
by ``tfseg.data.normalize``) to logits (no softmax), NHWC, at the input resolution.

Registries:
- ``ENCODERS[name](inputs, *, output_stride=32, name=..., **kw) -> {"P1": .., "P5": ..}``; ``P_k`` has
  stride ``2**k`` for ``output_stride=32``. With ``output_stride=8`` the last two downsamplings are
  replaced by dilation 2 and 4, so P4 and P5 keep stride 8.
- ``DECODERS[name](pyramid, num_classes, *, name=..., **kw) -> logits``; the builder function may carry
  ``encoder_output_stride`` (default 32) saying what it asks of the encoder.
- ``MODELS[name](inputs, num_classes, **kw) -> logits`` for complete networks, with a ``stride``
  attribute (the input-size multiple they need; default 32).
"""

import keras

from tfseg.registry import DECODERS, ENCODERS, MODELS
from tfseg.layers import StrideGuard

# Importing the packages fills the registries.
import tfseg.encoders  # noqa: F401
import tfseg.decoders  # noqa: F401


def list_models():
    """Every name ``build_model`` accepts: decoders (which need ``encoder=``) and complete networks."""
    return sorted(set(DECODERS.names()) | set(MODELS.names()))


def needs_encoder(name):
    return name in DECODERS and name not in MODELS


def build_model(
    name,
    num_classes,
    *,
    encoder=None,
    input_shape=(None, None, 3),
    encoder_kwargs=None,
    bn_momentum=0.9,
    **kwargs,
):
    """Build a segmentation model.

    Args:
      name: a decoder (``skipnet``, ``unet``, ``dilation``, ...) used with ``encoder``, or a complete
        network from ``list_models()``.
      num_classes: number of output channels (logits).
      encoder: encoder name from ``list_encoders()``; required for decoders.
      input_shape: ``(H, W, 3)``; ``None`` dims make a model for any size divisible by its stride.
      encoder_kwargs: keyword arguments for the encoder builder (e.g. ``{"alpha": 0.5}``).
      bn_momentum: momentum of every BatchNormalization's moving statistics. Keras' default 0.99
        lags ~100 steps behind fast-changing weights, which made short from-scratch runs collapse at
        inference (val mIoU 0.03 against 0.30 with recalibrated statistics, measured on the
        quickstart); 0.9 (PyTorch's 0.1) keeps them current. Not a weight: pretrained files still load.
      **kwargs: keyword arguments for the decoder / network builder.

    >>> model = build_model("skipnet", 19, encoder="mobilenet", input_shape=(256, 512, 3))
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {tuple(input_shape)}")
    encoder_kwargs = dict(encoder_kwargs or {})
    if name in MODELS:
        if encoder is not None:
            encoder_kwargs.setdefault("encoder", encoder)
        fn = MODELS.get(name)
        stride = getattr(fn, "stride", 32)
        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x = StrideGuard(stride, name="stride_guard")(inputs)
        logits = fn(x, int(num_classes), **encoder_kwargs, **kwargs)
        model_name = name
    else:
        inputs, pyramid, logits, _ = encoder_decoder(
            name, num_classes, encoder, input_shape, encoder_kwargs, kwargs
        )
        model_name = f"{name}_{encoder}"
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    model = keras.Model(inputs, logits, name=model_name)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(bn_momentum)
    return model


def encoder_decoder(name, num_classes, encoder, input_shape, encoder_kwargs, kwargs):
    """Decoder ``name`` over ``encoder``: ``(inputs, pyramid, logits, encoder output stride)``
    (logits before the float32 ``logits`` layer; shared with ``build_instance_model``)."""
    decoder_fn = DECODERS.get(name)
    if encoder is None:
        raise ValueError(
            f"decoder {name!r} needs an encoder; choose one of: {', '.join(ENCODERS.names())}"
        )
    encoder_fn = ENCODERS.get(encoder)
    output_stride = getattr(decoder_fn, "encoder_output_stride", 32)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = StrideGuard(32, name="stride_guard")(inputs)
    pyramid = encoder_fn(x, output_stride=output_stride, name=encoder, **encoder_kwargs)
    logits = decoder_fn(pyramid, int(num_classes), name=name, **kwargs)
    return inputs, pyramid, logits, output_stride


def model_stride(model):
    """The input-size multiple a tfseg model needs (read from its ``StrideGuard`` layer; 32 if none)."""
    for layer in model.layers:
        if isinstance(layer, StrideGuard):
            return layer.stride
    return 32


# Complete networks register themselves in MODELS on import.
from tfseg.models import enet, erfnet, espnet  # noqa: E402,F401
from tfseg.models import ssn  # noqa: E402,F401
