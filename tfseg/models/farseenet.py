"""FarSee-Net (Zhang et al., 2020): cascaded factorised ASPP and feature-space super-resolution.

Paper: Z. Zhang, K. Zhang, "FarSee-Net: Real-Time Semantic Segmentation by Efficient Multi-scale
Context Aggregation and Feature Space Super-resolution", ICRA 2020 (arXiv:2003.03913). A front-end
ImageNet encoder gives two feature levels (stride 16 and 32); the back-end, a Cascaded Factorized
ASPP (CF-ASPP, the reference's ``FASPP``), aggregates context on each level with factorised atrous
convolutions (1x1 convolution, then a dilated depthwise 3x3), and upsamples by sub-pixel
convolution (a convolution to ``r*r`` times the channels and a pixel shuffle: "feature space
super-resolution") instead of a bilinear resize. Layout as in the PyTorch reference zoo (zh320,
``models/farseenet.py``), whose parameter count tfseg matches; every convolution is followed by BN
+ ReLU unless said otherwise:

- high level (P5, stride 32): four parallel branches to 256 channels: a 1x1 convolution, and
  three 1x1 convolutions each followed by a depthwise 3x3 of dilation 6, 12 and 18; concatenated
  (1024), a 1x1 convolution (no bias, no BN) to 2048 and a x2 pixel shuffle: 512 channels at
  stride 16;
- low level (P4, stride 16): a 1x1 convolution to 48 channels, concatenated with the upsampled high
  level (560); three parallel branches to 128 channels (a 1x1 convolution, and 1x1 convolutions
  followed by depthwise 3x3s of dilation 6 and 12), concatenated (384); a 1x1 convolution to 512
  and a 3x3 convolution at 512;
- a 1x1 convolution (no bias) to ``16 * num_classes`` and a x4 pixel shuffle give the logits at
  stride 4, then x4 bilinear upsampling.

Only P4 and P5 are read, and their widths come from the pyramid, so FarSee-Net builds on any
registered encoder (``encoder=``), as the paper says of its back-end.

Departures from the reference (no parameters or MACs change):

- the pixel shuffle is ``depth_to_space`` (TensorFlow's and ONNX's default "DCR" order: output
  channel ``c`` of sub-pixel ``(i, j)`` reads input channel ``(i * r + j) * C + c``), where
  PyTorch's ``nn.PixelShuffle`` reads channel ``c * r * r + i * r + j``: the same operation up to a
  fixed permutation of the preceding convolution's output channels (a converted PyTorch
  checkpoint would have to permute them). It exports as one TFLite ``DEPTH_TO_SPACE`` / ONNX
  ``DepthToSpace``;
- the final x4 upsampling is half-pixel bilinear (``BilinearUpsample``), not ``align_corners=True``
  (the common conventions of docs/zoo.md).

FarSee-Net has no feature map of its own at stride 8 (the encoder's P3 is named by the encoder, so
no fixed layer name fits every encoder): it registers its fused stride-16 features, and the
instance head attaches there with ``head_kwargs={"instance": {"stride": 16}}``.

Parameters with 19 classes: 16,753,056 (reference 16,753,056); 26.32 conv GMACs at 512x1024
(reference 26.32).

>>> model = tfseg.build_model("farseenet", 19, input_shape=(512, 1024, 3))
"""

import keras
from keras import layers, ops

from tfseg.encoders import encoder_pyramid
from tfseg.layers import BilinearUpsample, conv_bn_act, depthwise_bn_act
from tfseg.layers.blocks import keras_serializable
from tfseg.registry import MODELS

HIGH_DILATIONS = (6, 12, 18)
LOW_DILATIONS = (6, 12)


@keras_serializable
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling: ``(B, H, W, C * r * r) -> (B, H * r, W * r, C)`` by
    ``depth_to_space`` (TensorFlow's / ONNX's "DCR" channel order; PyTorch's ``nn.PixelShuffle``
    orders the channels "CRD", a fixed permutation of them)."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels % (self.factor**2):
            raise ValueError(
                f"{self.name}: {channels} channels are not divisible by factor**2={self.factor**2}"
            )

    def call(self, x):
        return ops.depth_to_space(x, self.factor)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.factor
        return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def factorized_atrous(x, filters, dilation, *, name):
    """1x1 convolution + BN + ReLU to ``filters``, then (``dilation`` not ``None``) a dilated 3x3
    depthwise convolution + BN + ReLU: the CF-ASPP branch."""
    x = conv_bn_act(x, filters, 1, name=f"{name}_pw")
    if dilation is not None:
        x = depthwise_bn_act(x, 3, dilation_rate=dilation, name=f"{name}_dw")
    return x


def sub_pixel(x, filters, factor, *, name):
    """1x1 convolution (no bias, no BN) to ``filters * factor**2`` and a x``factor`` pixel
    shuffle."""
    x = layers.Conv2D(
        filters * factor * factor,
        1,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    return PixelShuffle(factor, name=f"{name}_shuffle")(x)


def cf_aspp(high, low, num_classes, *, hidden=256, low_filters=48, name):
    """The back-end (the reference's ``FASPP``): class logits at the stride of ``low`` / 4."""
    branches = [
        factorized_atrous(high, hidden, d, name=f"{name}_high{i}")
        for i, d in enumerate((None,) + HIGH_DILATIONS)
    ]
    x = layers.Concatenate(name=f"{name}_high_concat")(branches)
    x = sub_pixel(x, 2 * hidden, 2, name=f"{name}_high_up")
    low = conv_bn_act(low, low_filters, 1, name=f"{name}_low_reduce")
    x = layers.Concatenate(name=f"{name}_low_concat")([x, low])
    branches = [
        factorized_atrous(x, hidden // 2, d, name=f"{name}_low{i}")
        for i, d in enumerate((None,) + LOW_DILATIONS)
    ]
    x = layers.Concatenate(name=f"{name}_low_branches")(branches)
    x = conv_bn_act(x, 2 * hidden, 1, name=f"{name}_fuse1")
    x = conv_bn_act(x, 2 * hidden, 3, name=f"{name}_fuse2")
    return sub_pixel(x, num_classes, 4, name=f"{name}_cls")


@MODELS.register(
    "farseenet",
    stride=32,
    paper="FarSee-Net (Zhang et al., 2020)",
    reference="FarseeNet",
    default_encoder="resnet18",
    any_encoder=True,
    features={16: "farseenet_faspp_fuse2_relu"},
)
def farseenet(inputs, num_classes, *, encoder, encoder_kwargs=None, hidden=256, name="farseenet"):
    """FarSee-Net logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      encoder: the front-end encoder (``resnet18`` by default through the registry); its P4 and
        P5 feed the back-end.
      encoder_kwargs: keyword arguments for the encoder builder.
      hidden: the CF-ASPP's high-level width (the reference's ``hid_channels``, 256); the low
        level uses half of it, the fusion twice it.
      name: layer-name prefix.
    """
    pyramid = encoder_pyramid(inputs, encoder, encoder_kwargs=encoder_kwargs)
    x = cf_aspp(pyramid["P5"], pyramid["P4"], num_classes, hidden=int(hidden), name=f"{name}_faspp")
    return BilinearUpsample(4, name=f"{name}_up")(x)
