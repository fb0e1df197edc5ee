"""Reusable building blocks. Everything here uses ``keras.layers`` / ``keras.ops`` only."""

from tfseg.layers.blocks import (
    act,
    bn_act,
    conv_bn_act,
    conv_bn_prelu,
    deconv_bn_act,
    depthwise_bn_act,
    pointwise_bn_act,
    prelu,
    seg_head,
    separable_bn_act,
)
from tfseg.layers.conv import PerGroupConv2D, SubsampledPointwiseConv2D
from tfseg.layers.downsample import conv_pool_downsample, strided_depthwise
from tfseg.layers.factorized import factorized_conv
from tfseg.layers.init import torch_depthwise_init, torch_init
from tfseg.layers.misc import (
    ChannelMean,
    ChannelShuffle,
    ChannelSplit,
    CropToInput,
    StrideGuard,
    pad_to_multiple,
)
from tfseg.layers.norm import ExportableGroupNormalization
from tfseg.layers.pooling import (
    AdaptiveAvgPool2D,
    ResizeLike,
    SameAveragePooling2D,
    pyramid_pooling,
)
from tfseg.layers.resize import BilinearUpsample, bilinear_downsample, upsample_bilinear
from tfseg.layers.sampler import GuidedSampler, pixel_grid, regular_grid, sample
from tfseg.layers.unpool import MaxUnpool2D, PoolSwitches, max_pool_with_switches

__all__ = [
    "conv_bn_act",
    "bn_act",
    "depthwise_bn_act",
    "pointwise_bn_act",
    "separable_bn_act",
    "seg_head",
    "conv_bn_prelu",
    "deconv_bn_act",
    "prelu",
    "act",
    "BilinearUpsample",
    "upsample_bilinear",
    "bilinear_downsample",
    "ChannelShuffle",
    "ChannelSplit",
    "ChannelMean",
    "conv_pool_downsample",
    "strided_depthwise",
    "factorized_conv",
    "torch_init",
    "torch_depthwise_init",
    "StrideGuard",
    "CropToInput",
    "pad_to_multiple",
    "ExportableGroupNormalization",
    "AdaptiveAvgPool2D",
    "ResizeLike",
    "SameAveragePooling2D",
    "pyramid_pooling",
    "PerGroupConv2D",
    "SubsampledPointwiseConv2D",
    "MaxUnpool2D",
    "PoolSwitches",
    "max_pool_with_switches",
    "GuidedSampler",
    "sample",
    "regular_grid",
    "pixel_grid",
]
