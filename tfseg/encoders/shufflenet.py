"""ShuffleNet v1 encoder (Zhang et al., CVPR 2018, arXiv:1707.01083), Table 1 of the paper.

Stem: 3x3/2 convolution (24 channels) + 3x3/2 max-pool; stages 2-4 with [4, 8, 4] units. A unit is
1x1 group conv + BN + ReLU -> channel shuffle -> 3x3 depthwise conv + BN -> 1x1 group conv + BN,
added to the input (stride 1) or concatenated with a 3x3/2 average-pooled input (stride 2), then
ReLU. The first 1x1 convolution of stage 2 is not grouped (only 24 input channels), as in the paper.
Bottleneck width is a quarter of the unit's output channels.

The ``scale`` factor ("ShuffleNet s x") multiplies every width; widths are rounded to multiples of
``4 * groups`` (stages) and ``groups`` (stem) so that every group convolution divides evenly (the 1x
tables are unchanged). Layer names: ``f"{name}_stage3_unit2_gconv1_conv"``.
"""

import math

from keras import layers

from tfseg.encoders.core import StrideSchedule
from tfseg.layers import ChannelShuffle, SameAveragePooling2D, conv_bn_act, depthwise_bn_act
from tfseg.registry import ENCODERS

# Output channels of stages 2, 3, 4 for each number of groups (Table 1, 1x).
STAGE_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
STAGE_UNITS = (4, 8, 4)
STEM_CHANNELS = 24


def shufflenet_widths(groups=3, scale=1.0):
    """``(stem, (stage2, stage3, stage4))`` output channels for ``groups`` and width ``scale``."""
    if groups not in STAGE_CHANNELS:
        raise ValueError(f"groups must be one of {sorted(STAGE_CHANNELS)}, got {groups!r}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    unit = 4 * groups
    stages = tuple(max(unit, round(c * scale / unit) * unit) for c in STAGE_CHANNELS[groups])
    stem = max(groups, math.ceil(STEM_CHANNELS * scale / groups) * groups)
    return stem, stages


def _shuffle_unit(x, out_channels, *, groups, first_groups, strides, dilation, concat, name):
    in_channels = x.shape[-1]
    branch_channels = out_channels - in_channels if concat else out_channels
    y = conv_bn_act(x, out_channels // 4, 1, groups=first_groups, name=f"{name}_gconv1")
    if first_groups > 1:
        y = ChannelShuffle(groups, name=f"{name}_shuffle")(y)
    y = depthwise_bn_act(y, 3, strides=strides, dilation_rate=dilation, activation=None, name=name)
    y = conv_bn_act(y, branch_channels, 1, groups=groups, activation=None, name=f"{name}_gconv2")
    if concat:
        # TensorFlow's "same" average pooling on every backend (Keras' torch backend splits the
        # asymmetric padding of a 3x3/2 window differently: docs/backends.md)
        shortcut = SameAveragePooling2D(3, strides=strides, name=f"{name}_pool")(x)
        y = layers.Concatenate(axis=-1, name=f"{name}_concat")([shortcut, y])
    else:
        y = layers.Add(name=f"{name}_add")([x, y])
    return layers.Activation("relu", name=f"{name}_relu")(y)


@ENCODERS.register("shufflenet")
def shufflenet(inputs, *, output_stride=32, groups=3, scale=1.0, name="shufflenet"):
    """ShuffleNet v1 encoder. Returns ``{"P1": .., "P5": ..}``; P_k has stride 2**k.

    P1 = stem convolution, P2 = max-pool, P3..P5 = stages 2..4. ``groups`` in {1, 2, 3, 4, 8}
    (3 in RTSeg); ``scale`` is the paper's width factor s. With ``output_stride=8`` the first units
    of stages 3 and 4 keep stride 1 (the average-pool shortcut too) and the later units use dilation
    2 (stage 3) and 4 (stage 4).
    """
    stem_channels, stage_channels = shufflenet_widths(groups, scale)
    schedule = StrideSchedule(output_stride)
    schedule.down()
    x = conv_bn_act(inputs, stem_channels, 3, strides=2, name=f"{name}_conv1")
    pyramid = {"P1": x}
    schedule.down()
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool1")(x)
    pyramid["P2"] = x
    for stage, (channels, units) in enumerate(zip(stage_channels, STAGE_UNITS), start=2):
        strides, first_dilation = schedule.down()
        for unit in range(1, units + 1):
            x = _shuffle_unit(
                x,
                channels,
                groups=groups,
                first_groups=1 if (stage == 2 and unit == 1) else groups,
                strides=strides if unit == 1 else 1,
                dilation=first_dilation if unit == 1 else schedule.dilation,
                concat=unit == 1,
                name=f"{name}_stage{stage}_unit{unit}",
            )
        pyramid[f"P{stage + 1}"] = x
    return pyramid
