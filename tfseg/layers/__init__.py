"""Reusable building blocks. Everything here uses ``keras.layers`` / ``keras.ops`` only."""

from tfseg.layers.blocks import bn_act, conv_bn_act, depthwise_bn_act
from tfseg.layers.misc import ChannelShuffle, CropToInput, StrideGuard, pad_to_multiple
from tfseg.layers.resize import BilinearUpsample, upsample_bilinear
from tfseg.layers.sampler import GuidedSampler, pixel_grid, regular_grid, sample

__all__ = [
    "conv_bn_act",
    "bn_act",
    "depthwise_bn_act",
    "BilinearUpsample",
    "upsample_bilinear",
    "ChannelShuffle",
    "StrideGuard",
    "CropToInput",
    "pad_to_multiple",
    "GuidedSampler",
    "sample",
    "regular_grid",
    "pixel_grid",
]
