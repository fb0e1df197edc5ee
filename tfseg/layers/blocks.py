"""Functional helpers that stack Conv/BN/activation with deterministic layer names."""

import keras
from keras import layers

# The one BatchNorm momentum of tfseg (PyTorch's 0.1). Keras' default 0.99 lags ~100 steps behind
# fast-changing weights, which made short from-scratch runs collapse at inference (val mIoU 0.03
# against 0.30 with recalibrated statistics, measured on the quickstart). ``build_model(bn_momentum=)``
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
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    return bn_act(x, activation, name=name)


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


def classifier(x, num_classes, *, name):
    """1x1 convolution to class logits (with bias, no normalisation)."""
    return layers.Conv2D(num_classes, 1, padding="same", name=name)(x)


def keras_serializable(cls):
    """Register a tfseg layer so ``.keras`` files load without ``custom_objects``."""
    return keras.saving.register_keras_serializable(package="tfseg")(cls)
