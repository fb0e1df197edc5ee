"""MobileNet v1 encoder (Howard et al. 2017), layer for layer as ``keras.applications.MobileNet``.

A 3x3/2 convolution then 13 depthwise-separable blocks (depthwise 3x3 + BN + ReLU6, pointwise 1x1 +
BN + ReLU6). As in keras-applications, strided depthwise convolutions pad bottom/right by one
(``ZeroPadding2D(((0, 1), (0, 1)))`` + "valid") and the first convolution uses "same", so the
keras-applications ImageNet weights give identical outputs. Layer names are the keras-applications
names behind the prefix: ``f"{name}_conv_dw_3"``, ``f"{name}_conv_pw_3_bn"``.
"""

from keras import layers

from tfseg.encoders.core import StrideSchedule
from tfseg.registry import ENCODERS

# (pointwise filters, stride) of depthwise-separable blocks 1..13.
_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def _separable_block(x, filters, *, strides, dilation, depth_multiplier, block_id, name):
    if strides == 1:
        padding = "same"
    else:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_conv_pad_{block_id}")(x)
        padding = "valid"
    x = layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        depth_multiplier=depth_multiplier,
        use_bias=False,
        name=f"{name}_conv_dw_{block_id}",
    )(x)
    x = layers.BatchNormalization(axis=-1, name=f"{name}_conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv_pw_{block_id}")(x)
    x = layers.BatchNormalization(axis=-1, name=f"{name}_conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_conv_pw_{block_id}_relu")(x)


@ENCODERS.register("mobilenet")
def mobilenet(inputs, *, output_stride=32, alpha=1.0, depth_multiplier=1, name="mobilenet"):
    """MobileNet v1 encoder with width multiplier ``alpha``. Returns ``{"P1": .., "P5": ..}``.

    P_k is the output of the last block at stride 2**k (P1: block 1, P2: block 3, P3: block 5,
    P4: block 11, P5: block 13). With ``output_stride=8`` blocks 6 and 12 keep stride 1 and the
    blocks after them use dilation 2 (blocks 7-12) and 4 (block 13).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    schedule = StrideSchedule(output_stride)
    schedule.down()  # the first convolution always downsamples
    x = layers.Conv2D(
        int(32 * alpha), 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv1"
    )(inputs)
    x = layers.BatchNormalization(axis=-1, name=f"{name}_conv1_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_conv1_relu")(x)
    pyramid = {}
    level = 1
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        if stride == 2:
            pyramid[f"P{level}"] = x
            level += 1
            stride, dilation = schedule.down()
        else:
            dilation = schedule.dilation
        x = _separable_block(
            x,
            int(filters * alpha),
            strides=stride,
            dilation=dilation,
            depth_multiplier=depth_multiplier,
            block_id=block_id,
            name=name,
        )
    pyramid[f"P{level}"] = x
    return pyramid
