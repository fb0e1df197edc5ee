"""MobileNetV2 encoder (Sandler et al. 2018), layer for layer as ``keras.applications.MobileNetV2``.

A 3x3/2 convolution (``Conv1``) then 17 inverted-residual blocks: 1x1 expansion (t = 6; none in the
first block) + BN + ReLU6, 3x3 depthwise + BN + ReLU6, linear 1x1 projection + BN, added to the
input where stride 1 and the widths agree. Parameter for parameter the same as torchvision's
``mobilenet_v2().features`` (no conv bias, BatchNorm everywhere): 2,223,872 parameters at ``alpha``
1.0 with the final 1x1 convolution to 1280 channels (``include_last_conv=True``), 1,811,712 without
it (the default).

Widths: ``_make_divisible(c * alpha, 8)`` as keras-applications and torchvision round them; the
final convolution keeps 1280 channels for ``alpha <= 1``. Strided depthwise convolutions zero-pad
as keras-applications' ``correct_pad`` (bottom/right only for even or unknown sizes) and use
"valid"; ``Conv1`` uses "same". Layer names are the keras-applications names behind the prefix
(``f"{name}_Conv1"``, ``f"{name}_block_3_depthwise"``, ``f"{name}_expanded_conv_project_BN"``), so
the keras-applications ImageNet files load (``--encoder_weights=imagenet`` or the local file
``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5``).

``layout="torchvision"`` builds torchvision's ``mobilenet_v2().features`` exactly: every strided
convolution (``Conv1`` and the strided depthwise ones) pads symmetrically by one (``ZeroPadding2D``
+ "valid", as PyTorch's ``padding=1``) and BatchNorm uses torchvision's epsilon 1e-5 (instead of
keras-applications' 1e-3), so torchvision / timm PyTorch checkpoints give the same features
(``tfseg.encoders.weights.torch_state``). Parameters and layer names are the same in both layouts.

The networks of the reference zoo that use MobileNetV2 (CANet, LiteSeg) take ``features[:18]``:
they stop at the 320-channel block and never use the 1280 convolution, hence the default.
"""

from keras import layers

from tfseg.encoders.core import StrideSchedule
from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM
from tfseg.registry import ENCODERS

# (output channels, stride, expansion) of blocks 0..16 (keras names: expanded_conv, block_1..16).
_BLOCKS = (
    (16, 1, 1),
    (24, 2, 6),
    (24, 1, 6),
    (32, 2, 6),
    (32, 1, 6),
    (32, 1, 6),
    (64, 2, 6),
    (64, 1, 6),
    (64, 1, 6),
    (64, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (160, 2, 6),
    (160, 1, 6),
    (160, 1, 6),
    (320, 1, 6),
)
LAST_CONV_CHANNELS = 1280


def make_divisible(value, divisor=8, min_value=None):
    """Round ``value`` to a multiple of ``divisor``, never below 90 % of it (keras-applications'
    and torchvision's ``_make_divisible``).

    >>> make_divisible(32 * 0.35), make_divisible(16 * 0.75), make_divisible(1280 * 1.4)
    (16, 16, 1792)
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


LAYOUTS = ("keras", "torchvision")
TORCH_BN_EPSILON = 1e-5


def _bn(x, name, layout="keras"):
    epsilon = TORCH_BN_EPSILON if layout == "torchvision" else BN_EPSILON
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=epsilon, name=name)(x)


def _correct_pad(x):
    """keras-applications' ``correct_pad`` for a 3x3 kernel: symmetric for odd static sizes,
    bottom/right only for even or unknown ones (where TF's "same" would pad too)."""
    height, width = x.shape[1:3]
    if height is None or width is None:
        return ((0, 1), (0, 1))
    return ((height % 2, 1), (width % 2, 1))


def _inverted_residual(x, filters, *, expansion, strides, dilation, layout, prefix):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(expansion * in_channels, 1, use_bias=False, name=f"{prefix}_expand")(y)
        y = _bn(y, f"{prefix}_expand_BN", layout)
        y = layers.ReLU(6.0, name=f"{prefix}_expand_relu")(y)
    if strides == 2:
        # torchvision: padding=dilation on both sides; keras-applications: correct_pad.
        pad = dilation if layout == "torchvision" else _correct_pad(y)
        y = layers.ZeroPadding2D(pad, name=f"{prefix}_pad")(y)
    y = layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding="valid" if strides == 2 else "same",
        dilation_rate=dilation,
        use_bias=False,
        name=f"{prefix}_depthwise",
    )(y)
    y = _bn(y, f"{prefix}_depthwise_BN", layout)
    y = layers.ReLU(6.0, name=f"{prefix}_depthwise_relu")(y)
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}_project")(y)
    y = _bn(y, f"{prefix}_project_BN", layout)
    if strides == 1 and in_channels == filters:
        y = layers.Add(name=f"{prefix}_add")([x, y])
    return y


@ENCODERS.register("mobilenetv2")
def mobilenetv2(
    inputs,
    *,
    output_stride=32,
    alpha=1.0,
    include_last_conv=False,
    layout="keras",
    name="mobilenetv2",
):
    """MobileNetV2 encoder with width multiplier ``alpha``. Returns ``{"P1": .., "P5": ..}``.

    P_k is the output of the last block at stride 2**k, as the reference zoo's ``Mobilenetv2``
    splits ``features``: P1 block 0 (``expanded_conv``, 16 channels), P2 block 2 (24), P3 block 5
    (32), P4 block 12 (96), P5 block 16 (320, linear) or, with ``include_last_conv``, the 1x1
    convolution to 1280 channels + BN + ReLU6 after it (keras-applications' ``Conv_1``/``out_relu``,
    torchvision's ``features[18]``). With ``output_stride=8`` blocks 6 and 13 keep stride 1 and the
    blocks after them use dilation 2 (blocks 7-13) and 4 (blocks 14-16).

    ``layout``: ``"keras"`` (keras-applications padding and BatchNorm epsilon, the default) or
    ``"torchvision"`` (symmetric padding, epsilon 1e-5: torchvision's ``mobilenet_v2``).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if layout not in LAYOUTS:
        raise ValueError(f"{name}: layout must be one of {LAYOUTS}, got {layout!r}")
    schedule = StrideSchedule(output_stride)
    schedule.down()  # the first convolution always downsamples
    x = inputs
    if layout == "torchvision":
        x = layers.ZeroPadding2D(1, name=f"{name}_Conv1_pad")(x)
    x = layers.Conv2D(
        make_divisible(32 * alpha),
        3,
        strides=2,
        padding="valid" if layout == "torchvision" else "same",
        use_bias=False,
        name=f"{name}_Conv1",
    )(x)
    x = _bn(x, f"{name}_bn_Conv1", layout)
    x = layers.ReLU(6.0, name=f"{name}_Conv1_relu")(x)
    pyramid = {}
    level = 1
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        if stride == 2:
            pyramid[f"P{level}"] = x
            level += 1
            stride, dilation = schedule.down()
        else:
            dilation = schedule.dilation
        x = _inverted_residual(
            x,
            make_divisible(int(filters * alpha)),
            expansion=expansion,
            strides=stride,
            dilation=dilation,
            layout=layout,
            prefix=f"{name}_block_{block_id}" if block_id else f"{name}_expanded_conv",
        )
    if include_last_conv:
        last = make_divisible(LAST_CONV_CHANNELS * alpha) if alpha > 1.0 else LAST_CONV_CHANNELS
        x = layers.Conv2D(last, 1, use_bias=False, name=f"{name}_Conv_1")(x)
        x = _bn(x, f"{name}_Conv_1_bn", layout)
        x = layers.ReLU(6.0, name=f"{name}_out_relu")(x)
    pyramid[f"P{level}"] = x
    return pyramid
