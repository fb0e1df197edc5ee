"""LiteSeg (Emara et al., DICTA 2019): a deeper ASPP on an ImageNet encoder, MobileNetV2 default.

Paper: T. Emara, H. E. Abd El Munim, H. M. Abbas, "LiteSeg: A Novel Lightweight ConvNet for
Semantic Segmentation", DICTA 2019, arXiv:1912.06683. A DeepLabv3+-like decoder whose atrous
spatial pyramid pooling is deeper (DASPP) and keeps a long residual connection (its input is
concatenated with its branches), with a skip from the encoder's stride-8 features. The paper
evaluates it on several backbones (MobileNetV2, ShuffleNet, Darknet19), so it takes any encoder.
Layout as in the PyTorch reference zoo (zh320, ``models/liteseg.py``), whose parameter count tfseg
matches:

- the encoder's P5 (320 channels on MobileNetV2) into the DASPP: with ``c`` the input width, a 1x1
  convolution and three 3x3 convolutions of dilation 3, 6, 9 (each + BN + ReLU) to ``c // 5``, and
  global average pooling + a 1x1 convolution (no bias, no BN) to ``c - 4 * (c // 5)``, broadcast
  back; the input and the five branches concatenated (``2 c``) and fused by a 1x1 convolution
  (+ BN + ReLU) to 512;
- x4 bilinear upsampling to stride 8, concatenated with the encoder's P3 (32 channels);
- a head of two 3x3 convolutions (+ BN + ReLU) to 256 and 128 and a 1x1 convolution (no bias) to
  the classes; x8 bilinear upsampling.

The paper's abstract names depthwise separable convolutions among its means; the reference uses
plain convolutions in the DASPP and the head, and so does tfseg. Departures from the reference (none
changes parameters or MACs): the x4 and x8 upsamplings are half-pixel bilinear by fixed factors
(``BilinearUpsample``), not ``align_corners=True`` to the skip's / input's size, so inputs must be
multiples of 32 (the reference takes any size).

Parameters with 19 classes: 4,286,336 (reference 4,286,336); 16.08 conv GMACs at 512x1024
(reference 16.08). No auxiliary heads (the reference has none).

>>> model = tfseg.build_model("liteseg", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.encoders import encoder_pyramid
from tfseg.layers import BilinearUpsample, ResizeLike, conv_bn_act
from tfseg.registry import MODELS

DASPP_WIDTH = 512
DASPP_DILATIONS = (3, 6, 9)
HEAD_WIDTH = 256


def _conv1x1(x, filters, *, name):
    """The reference's ``conv1x1``: a 1x1 convolution without bias, no BN."""
    return layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)


def daspp(x, filters=DASPP_WIDTH, dilations=DASPP_DILATIONS, *, name):
    """Deeper atrous spatial pyramid pooling: a 1x1 and three dilated 3x3 convolutions (+ BN +
    ReLU) to a fifth of the input width, an image-pooling branch with the rest, the input and the
    five branches concatenated and fused by a 1x1 convolution (+ BN + ReLU) to ``filters``.
    Output ``{name}_fuse_relu``."""
    channels = x.shape[-1]
    hidden = channels // 5
    branches = [x, conv_bn_act(x, hidden, 1, name=f"{name}_branch1")]
    for i, rate in enumerate(dilations):
        branches.append(
            conv_bn_act(x, hidden, 3, dilation_rate=rate, name=f"{name}_branch{i + 2}")
        )
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = _conv1x1(pooled, channels - hidden * 4, name=f"{name}_image")
    branches.append(ResizeLike(name=f"{name}_image_up")([pooled, x]))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn_act(y, filters, 1, name=f"{name}_fuse")


def head(x, num_classes, hidden=HEAD_WIDTH, *, name):
    """Two 3x3 convolutions (+ BN + ReLU) to ``hidden`` and half of it, a 1x1 convolution (no
    bias) to the classes."""
    x = conv_bn_act(x, hidden, 3, name=f"{name}_conv1")
    x = conv_bn_act(x, hidden // 2, 3, name=f"{name}_conv2")
    return _conv1x1(x, num_classes, name=f"{name}_classes")


@MODELS.register(
    "liteseg",
    stride=32,
    paper="LiteSeg (Emara et al., 2019)",
    reference="LiteSeg",
    default_encoder="mobilenetv2",
    any_encoder=True,
    features={8: "liteseg_concat"},
)
def liteseg(inputs, num_classes, *, encoder, encoder_kwargs=None, name="liteseg"):
    """LiteSeg logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      encoder: the registered encoder (``mobilenetv2``, the reference's, by default through
        ``build_model``); its P5 feeds the DASPP and its P3 the skip.
      encoder_kwargs: keyword arguments for the encoder builder.
      name: layer-name prefix of the network's own layers (the encoder's carry the encoder's name).
    """
    pyramid = encoder_pyramid(inputs, encoder, output_stride=32, encoder_kwargs=encoder_kwargs)
    x = daspp(pyramid["P5"], name=f"{name}_daspp")
    x = BilinearUpsample(4, name=f"{name}_daspp_up")(x)
    x = layers.Concatenate(name=f"{name}_concat")([x, pyramid["P3"]])
    x = head(x, num_classes, name=f"{name}_head")
    return BilinearUpsample(8, name=f"{name}_up")(x)
