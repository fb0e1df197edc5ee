"""Atrous Spatial Pyramid Pooling (ASPP) with segmentation_models_pytorch's layout, shared by the
``deeplabv3`` and ``deeplabv3plus`` decoders.

DeepLabV3 (Chen et al., 2017, sec. 3.3) runs, in parallel on the deepest feature map, a 1x1
convolution, three 3x3 convolutions with atrous rates (12, 24, 36 at output stride 8 in SMP; the
paper doubles its stride-16 rates 6/12/18) and an image-level branch (global average pooling, 1x1
convolution, broadcast back), each with BatchNorm + ReLU; the five maps are concatenated and
projected by a 1x1 convolution + BN + ReLU, then dropout. DeepLabV3+ (Chen et al., 2018, sec. 3.2)
makes the three atrous convolutions depthwise-separable.

SMP's separable convolution (``SeparableConv2d``) is a depthwise convolution and a 1x1 pointwise
convolution, both without bias and *without* normalisation between them, followed by one
BatchNorm + ReLU: that is ``separable_conv_bn_act`` here (tfseg's ``separable_bn_act`` follows the
reference zoo's ``DSConvBNAct``, with a BN + activation after the depthwise step and a pointwise
bias, which would add parameters). Checked against SMP's
``segmentation_models_pytorch/decoders/deeplabv3/decoder.py`` (``ASPP``, ``ASPPConv``,
``ASPPSeparableConv``, ``ASPPPooling``, ``SeparableConv2d``).

The image-level branch is broadcast back with ``ResizeLike`` (a constant-shape ``Tile`` when the
sizes are static, as in every export), which equals SMP's bilinear resize of a 1x1 map.
"""

from keras import layers

from tfseg.layers.blocks import bn_act, conv_bn_act
from tfseg.layers.pooling import AdaptiveAvgPool2D, ResizeLike


def separable_conv_bn_act(x, filters, kernel_size=3, *, dilation_rate=1, name):
    """SMP's ``SeparableConv2d`` (bias-free depthwise ``kernel_size`` + bias-free 1x1 pointwise,
    nothing between them) followed by BatchNorm + ReLU. Layers ``{name}_dw``, ``{name}_pw``,
    ``{name}_bn``, ``{name}_relu``."""
    x = layers.DepthwiseConv2D(
        kernel_size,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
        name=f"{name}_dw",
    )(x)
    x = layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_pw"
    )(x)
    return bn_act(x, "relu", name=name)


def aspp(x, filters=256, *, rates=(12, 24, 36), separable=False, dropout=0.5, name):
    """ASPP over ``x`` (see the module docstring): ``filters`` channels out.

    Args:
      filters: channels of every branch and of the projection (SMP's ``out_channels``, 256).
      rates: atrous rates of the 3x3 branches (SMP's default 12, 24, 36); any number of them.
      separable: depthwise-separable 3x3 branches (DeepLabV3+) instead of plain ones (DeepLabV3).
      dropout: rate of the dropout after the projection (SMP's ``nn.Dropout(0.5)``, element-wise).

    Layers: ``{name}_b0_*`` (1x1), ``{name}_b{i}_*`` (atrous, i = 1..len(rates)),
    ``{name}_pool_*`` (image-level branch), ``{name}_concat``, ``{name}_project_*``,
    ``{name}_dropout``.
    """
    branches = [conv_bn_act(x, filters, 1, name=f"{name}_b0")]
    for i, rate in enumerate(rates, start=1):
        if separable:
            y = separable_conv_bn_act(x, filters, 3, dilation_rate=int(rate), name=f"{name}_b{i}")
        else:
            y = conv_bn_act(x, filters, 3, dilation_rate=int(rate), name=f"{name}_b{i}")
        branches.append(y)
    pooled = AdaptiveAvgPool2D(1, name=f"{name}_pool_avg")(x)
    pooled = conv_bn_act(pooled, filters, 1, name=f"{name}_pool")
    branches.append(ResizeLike(name=f"{name}_pool_up")([pooled, x]))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    y = conv_bn_act(y, filters, 1, name=f"{name}_project")
    return layers.Dropout(dropout, name=f"{name}_dropout")(y)
