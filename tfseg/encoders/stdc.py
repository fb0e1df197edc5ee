"""STDC encoders (Fan et al., CVPR 2021, "Rethinking BiSeNet For Real-time Semantic Segmentation",
arXiv:2104.13188), in the layout of the reference zoo's STDC / PP-LiteSeg backbone.

Two stem convolutions (3x3/2 to 32, 3x3/2 to 64 channels), then stages 3, 4, 5 (256, 512, 1024
channels) of STDC modules. A module with ``c`` output channels is four Conv-BN-ReLU blocks whose
widths halve: 1x1 to c/2, 3x3 to c/4, 3x3 to c/8, 3x3 to c/8, and the four outputs concatenated (c
channels). The first module of a stage downsamples: its second block has stride 2 and the first
block's output passes through a 3x3/2 average pool (zero padding counted, as PyTorch's
``AvgPool2d(3, 2, 1)``) before the concatenation. ``stdc1`` has [2, 2, 2] modules per stage,
``stdc2`` [4, 5, 3]. No conv bias; strided layers pad symmetrically (``ZeroPadding2D`` + "valid")
as PyTorch does.

Parameters (trainable, as the reference counts them): stdc1 5,308,448, stdc2 9,338,912, i.e. the
reference networks' totals less their heads (STDC1 7,788,448 and STDC2 11,818,912 less the same
2,480,000; PP-LiteSeg-stdc1 6,326,670 less 1,018,222, PP-LiteSeg-stdc2 10,556,942 less 1,218,030).

With ``output_stride=8`` the first modules of stages 4 and 5 keep stride 1 and become the stride-1
module (no pool on the skip, which has no weights); their later 3x3 convolutions use dilation 2
(stage 4) and 4 (stage 5). Layer names: ``f"{name}_stage4_module1_block2_conv"``.
"""

from keras import layers

from tfseg.encoders.core import StrideSchedule
from tfseg.layers import conv_bn_act
from tfseg.registry import ENCODERS

STEM_CHANNELS = (32, 64)
STAGE_CHANNELS = (256, 512, 1024)
STAGE_MODULES = {"stdc1": (2, 2, 2), "stdc2": (4, 5, 3)}


def _conv3x3(x, filters, *, strides, dilation, name):
    """3x3 Conv-BN-ReLU; when strided, padded explicitly and symmetrically (PyTorch)."""
    if strides == 1:
        return conv_bn_act(x, filters, 3, dilation_rate=dilation, name=name)
    x = layers.ZeroPadding2D(dilation, name=f"{name}_pad")(x)
    return conv_bn_act(
        x, filters, 3, strides=strides, dilation_rate=dilation, padding="valid", name=name
    )


def stdc_module(x, filters, *, strides=1, first_dilation=1, dilation=1, name):
    """STDC module: four Conv-BN-ReLU blocks (c/2, c/4, c/8, c/8) concatenated to ``filters``.

    ``strides=2``: the second block downsamples and the first block's output is average-pooled
    3x3/2 before the concatenation. ``first_dilation``: the second block's dilation (the layer
    that downsamples, or did before the stage was dilated); ``dilation``: the third and fourth
    blocks'.
    """
    if filters % 8:
        raise ValueError(f"STDC module channels must be divisible by 8, got {filters}")
    x1 = conv_bn_act(x, filters // 2, 1, name=f"{name}_block1")
    x2 = _conv3x3(x1, filters // 4, strides=strides, dilation=first_dilation, name=f"{name}_block2")
    if strides == 2:
        x1 = layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(x1)
        x1 = layers.AveragePooling2D(3, strides=2, name=f"{name}_pool")(x1)
    x3 = _conv3x3(x2, filters // 8, strides=1, dilation=dilation, name=f"{name}_block3")
    x4 = _conv3x3(x3, filters // 8, strides=1, dilation=dilation, name=f"{name}_block4")
    return layers.Concatenate(name=f"{name}_concat")([x1, x2, x3, x4])


def _stdc(inputs, modules, *, output_stride, name):
    schedule = StrideSchedule(output_stride)
    pyramid = {}
    x = inputs
    for i, filters in enumerate(STEM_CHANNELS, start=1):
        strides, dilation = schedule.down()  # stride 2 and 4 < 8: always downsample
        x = _conv3x3(x, filters, strides=strides, dilation=dilation, name=f"{name}_stage{i}")
        pyramid[f"P{i}"] = x
    for stage, (filters, n_modules) in enumerate(zip(STAGE_CHANNELS, modules), start=3):
        strides, first_dilation = schedule.down()
        for m in range(1, n_modules + 1):
            first = m == 1
            x = stdc_module(
                x,
                filters,
                strides=strides if first else 1,
                first_dilation=first_dilation if first else schedule.dilation,
                dilation=schedule.dilation,
                name=f"{name}_stage{stage}_module{m}",
            )
        pyramid[f"P{stage}"] = x
    return pyramid


@ENCODERS.register("stdc1")
def stdc1(inputs, *, output_stride=32, name="stdc1"):
    """STDC1 encoder (stages of [2, 2, 2] modules), 5,308,448 parameters. Returns
    ``{"P1": .., "P5": ..}``: P1, P2 the stem convolutions (32, 64 channels), P3..P5 stages 3..5
    (256, 512, 1024 channels); P_k has stride 2**k."""
    return _stdc(inputs, STAGE_MODULES["stdc1"], output_stride=output_stride, name=name)


@ENCODERS.register("stdc2")
def stdc2(inputs, *, output_stride=32, name="stdc2"):
    """STDC2 encoder (stages of [4, 5, 3] modules), 9,338,912 parameters. Returns
    ``{"P1": .., "P5": ..}`` as :func:`stdc1` does."""
    return _stdc(inputs, STAGE_MODULES["stdc2"], output_stride=output_stride, name=name)
