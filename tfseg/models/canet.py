"""CANet (Liu and Yin, ICIP 2019): Cross Attention Network, MobileNetV2 context branch by default.

Paper: M. Liu, H. Yin, "Cross Attention Network for Semantic Segmentation", ICIP 2019,
arXiv:1907.10958. Two branches joined by a feature cross attention (FCA) module: a shallow spatial
branch keeps detail at 1/8; a deep context branch (an ImageNet encoder: the paper reports
lightweight backbones for speed and a deep one for accuracy, so the branch takes any encoder) gives
the context; the FCA module draws a spatial attention map from the spatial branch and a channel
attention vector from the context branch and applies both to the fused features. Layout as in the
PyTorch reference zoo (zh320, ``models/canet.py``), whose parameter count tfseg matches:

- spatial branch: three 3x3/2 convolutions (+ BN + ReLU) to 64, 128, 256 channels: stride 8;
- context branch: the encoder's P5 (320 channels on MobileNetV2) through a 3x3/2 transposed
  convolution (+ BN + ReLU) to 192, concatenated with P4 (96) and a second 3x3/2 transposed
  convolution to 256: stride 8 (channels read from the tensors, so any encoder fits);
- FCA: the two branches concatenated and fused by a 3x3 convolution (+ BN + ReLU) to 256; the
  spatial attention map is ``sigmoid(BN(conv3x3(spatial)))`` (one channel), the channel attention
  ``sigmoid(fc(maxpool(context)) + fc(avgpool(context)))`` with one fully connected layer (a 1x1
  convolution with bias, 256 -> 256) shared by the two global poolings; output
  ``fused * spatial_map * channel_vector + fused``;
- a 3x3 convolution (+ BN + ReLU) to the classes and a 15x15/8 transposed convolution (+ BN) to the
  input resolution.

Departures from the reference:

- the last transposed convolution + BN drops the reference's ReLU, so the logits are linear (no
  parameter changes; docs/zoo.md "Common to all networks");
- transposed convolutions pad "same" (Keras'): the reference's (padding 1 or 7, output padding 1
  or 7) puts each input pixel's kernel centre at the top-left of its output block, Keras' one to
  four pixels further in; same parameters and MACs.

Parameters with 19 classes: 4,774,186 (reference 4,774,186); 20.33 conv GMACs at 512x1024
(reference 20.33). No auxiliary heads (the reference has none).

>>> model = tfseg.build_model("canet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.encoders import encoder_pyramid
from tfseg.layers import conv_bn_act, deconv_bn_act
from tfseg.registry import MODELS

SPATIAL_WIDTH = 64
CONTEXT_HIDDEN = 192
FUSION_WIDTH = 256


def spatial_branch(inputs, filters=SPATIAL_WIDTH, *, name):
    """Three 3x3/2 convolutions (+ BN + ReLU) to ``filters``, twice and four times it: stride 8."""
    x = inputs
    for i in range(3):
        x = conv_bn_act(x, filters * 2**i, 3, strides=2, name=f"{name}_conv{i + 1}")
    return x


def context_branch(pyramid, filters=FUSION_WIDTH, hidden=CONTEXT_HIDDEN, *, name):
    """P5 up x2 (transposed convolution to ``hidden``), concatenated with P4, up x2 to
    ``filters``: the context features at stride 8."""
    x = deconv_bn_act(pyramid["P5"], hidden, name=f"{name}_up1")
    x = layers.Concatenate(name=f"{name}_concat")([x, pyramid["P4"]])
    return deconv_bn_act(x, filters, name=f"{name}_up2")


def feature_cross_attention(spatial, context, filters=FUSION_WIDTH, *, name):
    """The FCA module: a 3x3 convolution (+ BN + ReLU) of the concatenated branches to
    ``filters``, times the spatial branch's one-channel attention map and the context branch's
    channel attention vector, plus itself. Output ``{name}_add``."""
    x = layers.Concatenate(name=f"{name}_concat")([spatial, context])
    x = conv_bn_act(x, filters, 3, name=f"{name}_fuse")
    spatial_map = conv_bn_act(spatial, 1, 3, activation="sigmoid", name=f"{name}_spatial_attn")
    channels = context.shape[-1]
    fc = layers.Conv2D(channels, 1, kernel_initializer="he_normal", name=f"{name}_channel_fc")
    peak = layers.GlobalMaxPooling2D(keepdims=True, name=f"{name}_channel_maxpool")(context)
    mean = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_channel_avgpool")(context)
    w = layers.Add(name=f"{name}_channel_sum")([fc(peak), fc(mean)])
    w = layers.Activation("sigmoid", name=f"{name}_channel_sigmoid")(w)
    y = layers.Multiply(name=f"{name}_spatial_mul")([x, spatial_map])
    y = layers.Multiply(name=f"{name}_channel_mul")([y, w])
    return layers.Add(name=f"{name}_add")([y, x])


@MODELS.register(
    "canet",
    stride=32,
    paper="CANet (Liu et al., 2019)",
    reference="CANet",
    default_encoder="mobilenetv2",
    any_encoder=True,
    features={8: "canet_fca_add"},
)
def canet(inputs, num_classes, *, encoder, encoder_kwargs=None, name="canet"):
    """CANet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      encoder: the registered encoder of the context branch (``mobilenetv2``, the reference's,
        by default through ``build_model``); its P4 and P5 feed the branch.
      encoder_kwargs: keyword arguments for the encoder builder.
      name: layer-name prefix of the network's own layers (the encoder's carry the encoder's name).
    """
    spatial = spatial_branch(inputs, name=f"{name}_spatial")
    pyramid = encoder_pyramid(inputs, encoder, output_stride=32, encoder_kwargs=encoder_kwargs)
    context = context_branch(pyramid, name=f"{name}_context")
    x = feature_cross_attention(spatial, context, name=f"{name}_fca")
    x = conv_bn_act(x, num_classes, 3, name=f"{name}_classes")
    return deconv_bn_act(x, num_classes, 15, strides=8, activation=None, name=f"{name}_up")
