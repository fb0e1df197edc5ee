"""LEDNet (Wang et al., ICIP 2019): a lightweight encoder-decoder network for real-time semantic
segmentation.

Paper: Y. Wang, Q. Zhou, J. Liu, J. Xiong, G. Gao, X. Wu, L. J. Latecki, "LEDNet: A Lightweight
Encoder-Decoder Network for Real-Time Semantic Segmentation", ICIP 2019 (arXiv:1905.02423).

Encoder (stride 8; the same as AGLNet's, which grew out of it, so the blocks come from
``tfseg.models.aglnet``):

- three stages of 32 / 64 / 128 channels at strides 2 / 4 / 8, each opened by a downsampling unit
  (a 3x3/2 convolution to ``out - in`` channels + BN + ReLU, concatenated with a 3x3/2 max-pool of
  its input: ENet's initial block);
- split-shuffle non-bottleneck (SS-nbt) units after them: 3, 2 and 8, the last eight dilated
  1, 2, 5, 9, 2, 5, 9, 17. A unit splits the channels in halves; one goes through 3x1 -> ReLU ->
  1x3 -> BN -> ReLU -> 3x1 (dilated) -> ReLU -> 1x3 (dilated) -> BN -> ReLU, the other through
  the same with 1x3 and 3x1 swapped (the convolutions without a BN have a bias); the halves are
  concatenated, added to the input, passed through a ReLU and channel-shuffled (2 groups).

Decoder, the attention pyramid network (APN), on the 128-channel stride-8 features ``x``:

- a pyramid of three 3x3/2 convolutions (128 channels, + BN + ReLU) down to stride 64; at each of
  strides 16, 32 and 64 a 3x3 convolution to the classes (+ BN + ReLU); merged top-down (x2
  upsampling, add) into a class-wise attention map at stride 8;
- the attention times a 3x3 convolution of ``x`` to the classes (+ BN), plus a global branch
  (global average pooling, 3x3 convolution to the classes + BN, broadcast over the image);
- x8 bilinear upsampling of the logits.

The layout follows the PyTorch reference zoo (``models/lednet.py`` of
zh320/realtime-semantic-segmentation-pytorch). Parameters with 19 classes: 1,461,383, as the
reference (1,461,383; the paper reports 0.94M); 11.81 GMACs at 512x1024, as the reference (11.81).

Departures from the reference (no parameters or MACs change):

- linear logits: the reference follows the BN of the middle (``x``) branch and of the global branch
  with a ReLU, so every logit is ``relu * relu + relu >= 0``; here those two BNs end the logits
  unclamped (``linear_logits=False`` builds the reference's ReLUs). The pyramid's attention keeps
  its ReLUs;
- bilinear upsampling is by fixed x2 / x8 factors with half-pixel centres
  (``tfseg.layers.BilinearUpsample``) where the reference resizes to the target size with
  ``align_corners=True``; with three stride-2 steps below stride 8, inputs must be multiples of 64
  (the reference takes any size). The global branch is added by broadcasting, which is what its
  upsampling of a 1x1 map amounts to;
- convolution kernels start as PyTorch's defaults (``tfseg.layers.init.torch_init``), as in
  AGLNet, rather than tfseg's He-normal.

>>> model = tfseg.build_model("lednet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, conv_bn_act
from tfseg.layers.init import torch_init
from tfseg.models.aglnet import downsampling_unit, ss_nbt_unit
from tfseg.registry import MODELS

WIDTHS = (32, 64, 128)
UNITS = (3, 2, 8)
STAGE3_DILATIONS = (1, 2, 5, 9, 2, 5, 9, 17)


def _conv_bn(x, filters, *, strides=1, activation="relu", name):
    """3x3 convolution (no bias) + BN + activation (``None``: linear)."""
    return conv_bn_act(
        x, filters, 3, strides=strides, activation=activation, kernel_initializer=torch_init(),
        name=name,
    )


def lednet_encoder(inputs, *, dilations=STAGE3_DILATIONS, name="lednet"):
    """The 128-channel stride-8 features: downsampling units and SS-nbt units
    (layers ``{name}_l1`` .. ``{name}_l16``)."""
    x, layer = inputs, 1
    for stage, (width, units) in enumerate(zip(WIDTHS, UNITS)):
        x = downsampling_unit(x, width, name=f"{name}_l{layer}")
        layer += 1
        rates = dilations if stage == len(WIDTHS) - 1 else (1,) * units
        for rate in rates:
            x = ss_nbt_unit(x, dilation=rate, name=f"{name}_l{layer}")
            layer += 1
    return x


def attention_pyramid(x, num_classes, *, linear_logits=True, name):
    """LEDNet's APN: ``pyramid attention(x) * conv(x) + global conv(x)``, at the stride of ``x``."""
    channels = x.shape[-1]
    down1 = _conv_bn(x, channels, strides=2, name=f"{name}_down1")
    down2 = _conv_bn(down1, channels, strides=2, name=f"{name}_down2")
    down3 = _conv_bn(down2, channels, strides=2, name=f"{name}_down3")
    y = _conv_bn(down3, num_classes, name=f"{name}_level3")
    y = BilinearUpsample(2, name=f"{name}_level3_up")(y)
    y = layers.Add(name=f"{name}_level2_add")([_conv_bn(down2, num_classes, name=f"{name}_level2"),
                                               y])
    y = BilinearUpsample(2, name=f"{name}_level2_up")(y)
    y = layers.Add(name=f"{name}_level1_add")([_conv_bn(down1, num_classes, name=f"{name}_level1"),
                                               y])
    attention = BilinearUpsample(2, name=f"{name}_level1_up")(y)

    out_act = None if linear_logits else "relu"
    mid = _conv_bn(x, num_classes, activation=out_act, name=f"{name}_mid")
    y = layers.Multiply(name=f"{name}_mul")([attention, mid])
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = _conv_bn(pooled, num_classes, activation=out_act, name=f"{name}_global")
    return layers.Add(name=f"{name}_out")([y, pooled])


@MODELS.register(
    "lednet",
    stride=64,
    paper="LEDNet (Wang et al., 2019)",
    reference="LEDNet",
    features={8: "lednet_l16_shuffle"},
)
def lednet(
    inputs, num_classes, *, dilations=STAGE3_DILATIONS, linear_logits=True, name="lednet"
):
    """LEDNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 64 (the APN halves the stride-8
        features three times).
      num_classes: logit channels.
      dilations: dilations of the eight SS-nbt units of stage 3.
      linear_logits: leave out the reference's ReLUs on the two class-score branches of the APN.
      name: layer-name prefix.
    """
    dilations = tuple(int(d) for d in dilations)
    if len(dilations) != UNITS[-1]:
        raise ValueError(f"{name}: dilations needs {UNITS[-1]} values, got {dilations}")
    x = lednet_encoder(inputs, dilations=dilations, name=name)
    x = attention_pyramid(x, num_classes, linear_logits=linear_logits, name=f"{name}_apn")
    return BilinearUpsample(8, name=f"{name}_upsample")(x)
