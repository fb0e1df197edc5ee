"""Functional helpers that stack Conv/BN/activation with deterministic layer names."""

import keras
from keras import initializers, layers

# The one BatchNorm momentum of tfseg (PyTorch's 0.1). Keras' default 0.99 lags ~100 steps behind
# fast-changing weights, which made short from-scratch runs collapse at inference (val mIoU 0.03
# against 0.30 with recalibrated statistics, measured on the quickstart).
# ``build_model(bn_momentum=)``
# overrides it per model; it is not a weight, so pretrained files still load.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3


def bn_act(x, activation="relu", name=None):
    """BatchNorm followed by an optional activation (``None`` skips it)."""
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if activation is not None:
        x = _activation(x, activation, name=f"{name}_{activation}")
    return x


def _activation(x, activation, name):
    if activation == "prelu":
        return layers.PReLU(shared_axes=[1, 2], name=name)(x)
    if activation == "relu6":
        return layers.ReLU(max_value=6.0, name=name)(x)
    return layers.Activation(activation, name=name)(x)


def prelu(x, *, name):
    """PReLU with one slope for the whole layer, starting at 0.25: PyTorch's ``nn.PReLU()``.

    (``bn_act(..., "prelu")`` gives one slope per channel, starting at 0.)"""
    return layers.PReLU(
        alpha_initializer=initializers.Constant(0.25), shared_axes=[1, 2, 3], name=name
    )(x)


def act(x, activation, *, name):
    """An activation layer named ``name``, with the PyTorch zoo's conventions.

    ``activation``: ``None`` (``x`` unchanged, no layer), ``"prelu"`` (one slope per layer,
    ``prelu``), a callable ``f(x, name)`` that adds its own layer, or any Keras activation name
    (``layers.Activation``).
    """
    if activation is None:
        return x
    if callable(activation):
        return activation(x, name)
    if activation == "prelu":
        return prelu(x, name=name)
    return layers.Activation(activation, name=name)(x)


def activation_suffix(activation, default="act"):
    """The layer-name suffix of ``activation``: its name, or ``default`` for a callable."""
    return activation if isinstance(activation, str) else default


def conv_bn_act(
    x,
    filters,
    kernel_size,
    *,
    strides=1,
    dilation_rate=1,
    groups=1,
    activation="relu",
    padding="same",
    kernel_initializer="he_normal",
    name,
):
    """Conv2D (no bias) + BatchNorm + activation. ``activation=None`` leaves the output linear."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        groups=groups,
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name=f"{name}_conv",
    )(x)
    return bn_act(x, activation, name=name)


def conv_bn_prelu(x, filters, kernel_size, *, prelu_name=None, name, **conv_kwargs):
    """``conv_bn_act`` (linear) followed by a one-slope PReLU (``prelu``) named ``prelu_name``
    (default ``{name}_prelu``): layers ``{name}_conv``, ``{name}_bn``, ``{name}_prelu``.
    ``conv_kwargs``: ``conv_bn_act``'s (strides, dilation_rate, kernel_initializer...)."""
    x = conv_bn_act(x, filters, kernel_size, activation=None, name=name, **conv_kwargs)
    return prelu(x, name=prelu_name or f"{name}_prelu")


def deconv_bn_act(
    x,
    filters,
    kernel_size=3,
    *,
    strides=2,
    activation="relu",
    activation_name=None,
    use_bias=True,
    kernel_initializer="he_normal",
    name,
):
    """Transposed convolution (``{name}_deconv``, "same", 3x3/2 by default: doubles H and W) +
    BatchNorm (``{name}_bn``) + activation (``act``; layer ``activation_name``, by default
    ``{name}_<activation>``; ``None`` leaves the output linear)."""
    x = layers.Conv2DTranspose(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        name=f"{name}_deconv",
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if activation is None:
        return x
    return act(x, activation, name=activation_name or f"{name}_{activation_suffix(activation)}")


def depthwise_bn_act(x, kernel_size=3, *, strides=1, dilation_rate=1, activation="relu", name):
    """DepthwiseConv2D (no bias) + BatchNorm + activation."""
    x = layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
        name=f"{name}_dwconv",
    )(x)
    return bn_act(x, activation, name=f"{name}_dw")


def pointwise_bn_act(x, filters, *, activation="relu", use_bias=True, name):
    """1x1 convolution (``{name}_conv``, with a bias by default, as the reference zoo's
    ``PWConvBNAct``) + BatchNorm (``{name}_bn``) + activation (``act``: ``{name}_act``)."""
    x = layers.Conv2D(
        filters, 1, use_bias=use_bias, kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return act(x, activation, name=f"{name}_act")


def separable_bn_act(
    x,
    filters,
    kernel_size=3,
    *,
    strides=1,
    dilation_rate=1,
    activation="relu",
    pointwise_bias=True,
    name,
):
    """Depthwise-separable convolution as the reference zoo's ``DSConvBNAct``: depthwise
    ``kernel_size`` (no bias) + BN + activation (``{name}_dw_*``), then ``pointwise_bn_act``
    (``{name}_pw_*``). ``activation`` follows ``act`` ("prelu": one slope per layer)."""
    x = layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
        name=f"{name}_dw_conv",
    )(x)
    x = layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_dw_bn"
    )(x)
    x = act(x, activation, name=f"{name}_dw_act")
    return pointwise_bn_act(
        x, filters, activation=activation, use_bias=pointwise_bias, name=f"{name}_pw"
    )


def seg_head(x, num_classes, *, hidden=128, activation="relu", name):
    """The reference zoo's ``SegHead``: 3x3 convolution + BN + activation to ``hidden`` channels
    (``{name}_conv``, ``{name}_bn``, ``{name}_act``), then a 1x1 convolution to the classes without
    bias (``{name}_cls``), at the input's stride. Used for main and auxiliary logits."""
    x = conv_bn_act(x, hidden, 3, activation=None, name=name)
    x = act(x, activation, name=f"{name}_act")
    return layers.Conv2D(
        num_classes, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_cls"
    )(x)


def classifier(x, num_classes, *, name):
    """1x1 convolution to class logits (with bias, no normalisation)."""
    return layers.Conv2D(num_classes, 1, padding="same", name=name)(x)


def keras_serializable(cls):
    """Register a tfseg layer so ``.keras`` files load without ``custom_objects``."""
    return keras.saving.register_keras_serializable(package="tfseg")(cls)
