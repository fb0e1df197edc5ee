"""SwiftNet (Orsic et al., 2019): a pre-trained ImageNet encoder with a light upsampling path.

Paper: M. Orsic, I. Kreso, P. Bevandic, S. Segvic, "In Defense of Pre-trained ImageNet
Architectures for Real-time Semantic Segmentation of Road-driving Images", CVPR 2019
(arXiv:1903.08469); the single-scale SwiftNetRN-18. An ImageNet ResNet18 recognises; a pyramid
pooling module on its last stage widens the receptive field; a light upsampling path restores the
resolution, fed by lateral 1x1 connections from the earlier stages: each step upsamples by 2, adds
the lateral features and blends them with a 3x3 convolution. Layout as in the PyTorch reference zoo
(zh320, ``models/swiftnet.py``), whose parameter count tfseg matches; with ``u`` = ``up_channels``
(128) and the encoder's P2..P5 (any registered encoder: their channels are read from the tensors):

- lateral connections: a 1x1 convolution (+ BN + ReLU) of each of P2, P3, P4 to ``u`` channels;
- context: the zoo's pyramid pooling module on P5 (``tfseg.layers.pyramid_pooling``: adaptive
  average pools to 1, 2, 4 and 6 bins, each a 1x1 convolution to a quarter of P5's channels and
  resized back, concatenated with P5 and fused by a 1x1 convolution with a bias to ``u`` (+ BN +
  ReLU));
- upsampling path: x2 bilinear, + the P4 lateral, 3x3 convolution to ``u`` (+ BN + ReLU) (stride
  16); the same with P3 (stride 8); x2, + the P2 lateral, 3x3 convolution to the classes (+ BN)
  (stride 4); x4 bilinear upsampling to the input resolution.

The reference's blend of the last step doubles as the classifier (the paper keeps a separate one).

Departures from the reference (no parameters or MACs change):

- the last 3x3 convolution keeps its BN but not its ReLU, so the logits are linear (the reference
  clamps every negative logit to zero);
- upsampling is half-pixel bilinear, not ``align_corners=True``: ``BilinearUpsample`` for the
  fixed x2 / x4 factors, ``ResizeLike`` for the pooled maps of the pyramid pooling (exact for any
  size; the adaptive pools are ``AdaptiveAvgPool2D``, exact PyTorch bins).

Parameters with 19 classes: 11,945,574 (reference 11,945,574: the ResNet18 encoder's 11,176,512
and 769,062 in the decoder); 21.72 conv GMACs at 512x1024 (reference 21.72).

>>> model = tfseg.build_model("swiftnet", 19, input_shape=(512, 1024, 3))
>>> model = tfseg.build_model("swiftnet", 19, encoder="mobilenet")  # any registered encoder
"""

from keras import layers

from tfseg.encoders import encoder_pyramid
from tfseg.layers import BilinearUpsample, conv_bn_act, pyramid_pooling
from tfseg.registry import MODELS


def upsample_step(x, lateral, filters, *, activation="relu", name):
    """x2 bilinear upsampling of ``x``, plus ``lateral``, blended by a 3x3 convolution (+ BN +
    ``activation``; ``None``: linear) to ``filters``."""
    x = BilinearUpsample(2, name=f"{name}_up")(x)
    x = layers.Add(name=f"{name}_add")([x, lateral])
    return conv_bn_act(x, filters, 3, activation=activation, name=f"{name}_blend")


@MODELS.register(
    "swiftnet",
    stride=32,
    paper="SwiftNet (Orsic et al., 2019)",
    reference="SwiftNet",
    default_encoder="resnet18",
    any_encoder=True,
    features={8: "swiftnet_stage2_blend_relu"},
)
def swiftnet(
    inputs, num_classes, *, encoder, encoder_kwargs=None, up_channels=128, name="swiftnet"
):
    """SwiftNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      encoder: the registered encoder (``resnet18``, the paper's, by default through
        ``build_model``); its P2..P5 feed the decoder.
      encoder_kwargs: keyword arguments for the encoder builder.
      up_channels: width of the lateral connections and of the upsampling path.
      name: layer-name prefix of the decoder (the encoder's layers carry the encoder's name).
    """
    pyramid = encoder_pyramid(inputs, encoder, output_stride=32, encoder_kwargs=encoder_kwargs)
    laterals = {
        k: conv_bn_act(pyramid[f"P{k}"], up_channels, 1, name=f"{name}_lateral{k}")
        for k in (2, 3, 4)
    }
    x = pyramid_pooling(pyramid["P5"], up_channels, use_bias=True, name=f"{name}_spp")
    x = upsample_step(x, laterals[4], up_channels, name=f"{name}_stage3")
    x = upsample_step(x, laterals[3], up_channels, name=f"{name}_stage2")
    x = upsample_step(x, laterals[2], num_classes, activation=None, name=f"{name}_stage1")
    return BilinearUpsample(4, name=f"{name}_up")(x)
