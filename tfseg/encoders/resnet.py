"""ResNet encoders (He et al. 2016).

- ``resnet18``: basic blocks [2, 2, 2, 2], torchvision layout (7x7/2 stem, 3x3/2 max-pool, stride on
  the first 3x3 convolution of a stage, 1x1 projection shortcuts, no conv bias). Strided layers pad
  explicitly and symmetrically (``ZeroPadding2D`` + "valid") as torchvision does.
- ``resnet50``, ``resnet101``: bottleneck blocks, layer for layer as ``keras.applications.ResNet50``
  / ``ResNet101`` (v1: stride on the first 1x1 convolution, conv bias + BatchNorm with epsilon
  1.001e-5), so the keras-applications ImageNet weights load. ``layout="torchvision"`` builds
  torchvision's ``resnet50`` / ``resnet101`` instead (ResNet v1.5: stride on the 3x3 convolution,
  padded symmetrically; no conv bias; epsilon 1e-5), the encoders of segmentation_models_pytorch
  and timm, parameter for parameter; same layer names.

Layer names follow keras-applications behind the prefix: ``f"{name}_conv3_block2_1_conv"``.
Pyramid: P1 = stem (stride 2), P2..P5 = stages conv2..conv5.
"""

from keras import layers

from tfseg.encoders.core import StrideSchedule
from tfseg.layers import conv_bn_act
from tfseg.registry import ENCODERS

_KERAS_BN_EPSILON = 1.001e-5


# --------------------------------------------------------------------------------------------------
# ResNet18 (basic blocks)
# --------------------------------------------------------------------------------------------------


def _strided_conv_bn_act(x, filters, kernel_size, strides, dilation, activation, *, name):
    """A convolution that pads symmetrically when strided (torchvision) and uses "same"
    otherwise."""
    if strides == 1:
        return conv_bn_act(
            x, filters, kernel_size, dilation_rate=dilation, activation=activation, name=name
        )
    pad = dilation * (kernel_size - 1) // 2
    x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return conv_bn_act(
        x,
        filters,
        kernel_size,
        strides=strides,
        dilation_rate=dilation,
        padding="valid",
        activation=activation,
        name=name,
    )


def _basic_block(x, filters, *, strides, first_dilation, dilation, name):
    """conv3x3(stride) - BN - ReLU - conv3x3 - BN, plus the (projected) shortcut, then ReLU."""
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn_act(x, filters, 1, strides=strides, activation=None, name=f"{name}_0")
    else:
        shortcut = x
    y = _strided_conv_bn_act(x, filters, 3, strides, first_dilation, "relu", name=f"{name}_1")
    y = conv_bn_act(y, filters, 3, dilation_rate=dilation, activation=None, name=f"{name}_2")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


@ENCODERS.register("resnet18")
def resnet18(inputs, *, output_stride=32, name="resnet18"):
    """ResNet18 encoder (torchvision layout). Returns ``{"P1": .., "P5": ..}``; P_k has stride 2**k.

    11.18M parameters (torchvision's 11.69M less the 1000-way classifier).
    """
    schedule = StrideSchedule(output_stride)
    strides, dil = schedule.down()
    x = _strided_conv_bn_act(inputs, 64, 7, strides, dil, "relu", name=f"{name}_conv1")
    pyramid = {"P1": x}
    _, dil = schedule.down()  # the max-pool always downsamples (stride 4 < 8)
    x = layers.ZeroPadding2D(1, name=f"{name}_pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool1_pool")(x)
    for stage, filters in enumerate((64, 128, 256, 512), start=2):
        if stage == 2:
            strides, first_dilation = 1, schedule.dilation
        else:
            strides, first_dilation = schedule.down()
        for block in range(1, 3):
            x = _basic_block(
                x,
                filters,
                strides=strides if block == 1 else 1,
                first_dilation=first_dilation if block == 1 else schedule.dilation,
                dilation=schedule.dilation,
                name=f"{name}_conv{stage}_block{block}",
            )
        pyramid[f"P{stage}"] = x
    return pyramid


# --------------------------------------------------------------------------------------------------
# ResNet50 / ResNet101 (bottleneck blocks, keras-applications layout)
# --------------------------------------------------------------------------------------------------


LAYOUTS = ("keras", "torchvision")


def _kbn(x, name, epsilon=_KERAS_BN_EPSILON):
    return layers.BatchNormalization(axis=-1, epsilon=epsilon, name=name)(x)


def _bottleneck_block(x, filters, *, strides, dilation, conv_shortcut, layout, name):
    """A bottleneck block; ``dilation`` applies to the 3x3 convolution.

    ``layout="keras"``: keras-applications ``residual_block_v1`` (stride on the first 1x1
    convolution, conv bias). ``layout="torchvision"``: torchvision's ``Bottleneck`` (ResNet v1.5:
    stride on the 3x3 convolution, padded symmetrically; no conv bias; BatchNorm epsilon 1e-5).
    """
    torchvision = layout == "torchvision"
    bias = not torchvision
    eps = 1e-5 if torchvision else _KERAS_BN_EPSILON
    if conv_shortcut:
        shortcut = layers.Conv2D(
            4 * filters, 1, strides=strides, use_bias=bias, name=f"{name}_0_conv"
        )(x)
        shortcut = _kbn(shortcut, f"{name}_0_bn", eps)
    else:
        shortcut = x
    x = layers.Conv2D(
        filters, 1, strides=1 if torchvision else strides, use_bias=bias, name=f"{name}_1_conv"
    )(x)
    x = _kbn(x, f"{name}_1_bn", eps)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    if torchvision and strides != 1:
        x = layers.ZeroPadding2D(dilation, name=f"{name}_2_pad")(x)
        x = layers.Conv2D(
            filters, 3, strides=strides, dilation_rate=dilation, use_bias=False,
            name=f"{name}_2_conv",
        )(x)  # fmt: skip
    else:
        x = layers.Conv2D(
            filters, 3, padding="same", dilation_rate=dilation, use_bias=bias,
            name=f"{name}_2_conv",
        )(x)  # fmt: skip
    x = _kbn(x, f"{name}_2_bn", eps)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, use_bias=bias, name=f"{name}_3_conv")(x)
    x = _kbn(x, f"{name}_3_bn", eps)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _bottleneck_resnet(inputs, blocks, *, output_stride, layout, name):
    if layout not in LAYOUTS:
        raise ValueError(f"{name}: layout must be one of {LAYOUTS}, got {layout!r}")
    torchvision = layout == "torchvision"
    schedule = StrideSchedule(output_stride)
    schedule.down()  # the stem always downsamples
    x = layers.ZeroPadding2D(3, name=f"{name}_conv1_pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, use_bias=not torchvision, name=f"{name}_conv1_conv")(x)
    x = _kbn(x, f"{name}_conv1_bn", 1e-5 if torchvision else _KERAS_BN_EPSILON)
    x = layers.Activation("relu", name=f"{name}_conv1_relu")(x)
    pyramid = {"P1": x}
    schedule.down()
    x = layers.ZeroPadding2D(1, name=f"{name}_pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool1_pool")(x)
    for stage, (filters, n_blocks) in enumerate(zip((64, 128, 256, 512), blocks), start=2):
        # Every 3x3 convolution of a dilated stage uses the stage's new dilation (the keras
        # layout's strided 1x1 convolution sits before it; SMP dilates torchvision's the same way).
        strides = 1 if stage == 2 else schedule.down()[0]
        for block in range(1, n_blocks + 1):
            x = _bottleneck_block(
                x,
                filters,
                strides=strides if block == 1 else 1,
                dilation=schedule.dilation,
                conv_shortcut=block == 1,
                layout=layout,
                name=f"{name}_conv{stage}_block{block}",
            )
        pyramid[f"P{stage}"] = x
    return pyramid


@ENCODERS.register("resnet50")
def resnet50(inputs, *, output_stride=32, layout="keras", name="resnet50"):
    """ResNet50 encoder as ``keras.applications.ResNet50`` (``layout="torchvision"``: as
    torchvision's ``resnet50``, 23,508,032 parameters). Returns ``{"P1": .., "P5": ..}``."""
    return _bottleneck_resnet(
        inputs, (3, 4, 6, 3), output_stride=output_stride, layout=layout, name=name
    )


@ENCODERS.register("resnet101")
def resnet101(inputs, *, output_stride=32, layout="keras", name="resnet101"):
    """ResNet101 encoder as ``keras.applications.ResNet101`` (``layout="torchvision"``: as
    torchvision's ``resnet101``, 42,500,160 parameters). Returns ``{"P1": .., "P5": ..}``."""
    return _bottleneck_resnet(
        inputs, (3, 4, 23, 3), output_stride=output_stride, layout=layout, name=name
    )
