"""AGLNet (Zhou et al., Applied Soft Computing 2020): attention-guided lightweight network for
real-time semantic segmentation of self-driving images.

Encoder (three stages, 32 / 64 / 128 channels at strides 2 / 4 / 8): each stage opens with a
downsampling unit (a 3x3/2 convolution to ``out - in`` channels + BN + ReLU, concatenated with a
3x3/2 max-pool of the input) followed by split-shuffle non-bottleneck units (SS-nbt, LEDNet's unit):
3, 2 and 8 of them, the last eight dilated 1, 2, 5, 9, 2, 5, 9, 17. An SS-nbt unit splits the
channels in two halves; one half goes through 3x1 -> ReLU -> 1x3 -> BN -> ReLU -> 3x1 (dilated) ->
ReLU -> 1x3 (dilated) -> BN -> ReLU, the other through the same with 1x3 and 3x1 swapped (the
unbatched convolutions have a bias); the halves are concatenated, added to the input, passed through
a ReLU and channel-shuffled (2 groups).

Decoder:

- FAPM (factorised attention pyramid module) on the stride-8 output: a pyramid of factorised
  convolutions to one channel (1x7/2 -> 7x1, 1x5/2 -> 5x1, 1x3/2 -> 3x1, each + BN + ReLU) merged
  top-down with x2 bilinear upsampling gives a spatial attention map at stride 8, which a 1x1
  convolution (no bias) spreads to 128 channels and multiplies with the features; a global pooling
  branch (1x1 convolution, no bias) is added;
- two GAUMs (global attention upsample modules) with the stage-2 and stage-1 features: the
  high-level features go through a 3x3/2 transposed convolution (+ BN + ReLU); the low-level ones
  are weighted by a sigmoid spatial attention (1x1 convolution to one channel, no bias); their
  product is weighted by a sigmoid channel attention (global pooling + 1x1, no bias) and multiplied
  by the product once more, and the upsampled high-level features are added;
- a 1x1 convolution (no bias) to the classes at stride 2 and x2 bilinear upsampling.

The layout follows the PyTorch reference zoo (``models/aglnet.py`` of
zh320/realtime-semantic-segmentation-pytorch): 1,024,332 trainable parameters with 19 classes there
and here, 12.47 GMACs at 512x1024 there, 12.47 here. The paper reports 1.12M parameters.

Differences from the reference: bilinear resizing uses fixed x2 factors with half-pixel centres
(``tfseg.layers.BilinearUpsample``) where the reference resizes to the target size with
``align_corners=True``; so the FAPM pyramid (three stride-2 steps below stride 8) needs inputs that
are multiples of 64 (the reference takes any size). Strided convolutions and pools use TF "same"
padding.

Initialisation: convolution kernels start as PyTorch's defaults, like the reference (kaiming-uniform
with a=sqrt(5), i.e. U(+-1/sqrt(fan_in)); biases zero), not tfseg's usual He-normal. GAUM multiplies
the features by themselves, so with He-normal kernels the untrained network (BN still at its initial
statistics) grows its logits to ~1e29 at inference, beyond float32 parity of any export.

>>> model = tfseg.build_model("aglnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, ChannelShuffle, bn_act
from tfseg.layers.blocks import deconv_bn_act
from tfseg.layers.downsample import conv_pool_downsample
from tfseg.layers.factorized import factorized_conv
from tfseg.layers.init import torch_init
from tfseg.layers.misc import ChannelSplit
from tfseg.registry import MODELS

STAGE3_DILATIONS = (1, 2, 5, 9, 2, 5, 9, 17)


def _conv(x, filters, kernel, *, strides=1, dilation=1, use_bias=True, name):
    return layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        dilation_rate=dilation,
        use_bias=use_bias,
        kernel_initializer=torch_init(),
        name=name,
    )(x)


def _conv_bn_relu(x, filters, kernel, *, strides=1, dilation=1, name):
    """Convolution (no bias) + BN + ReLU."""
    x = _conv(
        x, filters, kernel, strides=strides, dilation=dilation, use_bias=False, name=f"{name}_conv"
    )
    return bn_act(x, "relu", name=name)


def downsampling_unit(x, filters, *, name):
    """3x3/2 convolution to ``filters - in`` (+ BN + ReLU) || 3x3/2 max-pool, concatenated."""
    return conv_pool_downsample(x, filters, kernel_initializer=torch_init, name=name)


def ss_nbt_unit(x, *, dilation=1, name):
    """LEDNet's split-shuffle non-bottleneck unit (two factorised branches, residual, shuffle)."""
    channels = x.shape[-1]
    half = channels // 2
    left, right = ChannelSplit(2, name=f"{name}_split")(x)

    def relu(y, layer_name):
        return layers.ReLU(name=layer_name)(y)

    def branch(y, first, tag):
        p = f"{name}_{tag}"
        for pair, rate in (("a", 1), ("b", dilation)):
            c1, c2 = (1, 2) if pair == "a" else (3, 4)
            y = factorized_conv(
                y, half, 3, dilation=rate, first=first, activation_between=relu,
                activation="relu", use_bias=(True, False), kernel_initializer=torch_init,
                names={"conv1": f"{p}_conv{c1}", "act1": f"{p}_relu{c1}",
                       "conv2": f"{p}_conv{c2}_conv", "bn2": f"{p}_conv{c2}_bn",
                       "act2": f"{p}_conv{c2}_relu"},
                name=f"{p}_{pair}",
            )
        return y

    left = branch(left, "kx1", "left")
    right = branch(right, "1xk", "right")
    y = layers.Concatenate(name=f"{name}_concat")([left, right])
    y = layers.Add(name=f"{name}_add")([x, y])
    y = layers.ReLU(name=f"{name}_relu")(y)
    return ChannelShuffle(2, name=f"{name}_shuffle")(y)


def _global_pool(x, name):
    return layers.GlobalAveragePooling2D(keepdims=True, name=name)(x)


def fapm(x, *, name):
    """Factorised attention pyramid module: ``x * spread(pyramid attention(x)) + gp(x)``."""
    channels = x.shape[-1]
    # Pyramid feature attention: one channel, three stride-2 levels merged top-down.
    y1 = _conv_bn_relu(x, 1, (1, 7), strides=2, name=f"{name}_pfa11")
    x1 = _conv_bn_relu(y1, 1, (7, 1), name=f"{name}_pfa12")
    y2 = _conv_bn_relu(y1, 1, (1, 5), strides=2, name=f"{name}_pfa21")
    x2 = _conv_bn_relu(y2, 1, (5, 1), name=f"{name}_pfa22")
    y3 = _conv_bn_relu(y2, 1, (1, 3), strides=2, name=f"{name}_pfa31")
    y3 = _conv_bn_relu(y3, 1, (3, 1), name=f"{name}_pfa32")
    y = BilinearUpsample(2, name=f"{name}_pfa_up3")(y3)
    y = layers.Add(name=f"{name}_pfa_add2")([y, x2])
    y = BilinearUpsample(2, name=f"{name}_pfa_up2")(y)
    y = layers.Add(name=f"{name}_pfa_add1")([y, x1])
    y = BilinearUpsample(2, name=f"{name}_pfa_up1")(y)
    attention = _conv(y, channels, 1, use_bias=False, name=f"{name}_spread")
    gp = _global_pool(x, f"{name}_gp_pool")
    gp = _conv(gp, channels, 1, use_bias=False, name=f"{name}_gp_conv")
    y = layers.Multiply(name=f"{name}_mul")([x, attention])
    return layers.Add(name=f"{name}_out")([y, gp])


def gaum(high, low, out_channels, *, name):
    """Global attention upsample module: upsampled ``high`` guided by attention on ``low``."""
    low_channels = low.shape[-1]
    if out_channels != low_channels:
        raise ValueError(
            f"{name}: out_channels ({out_channels}) must equal the low-level width ({low_channels})"
        )
    # Spatial attention on the low-level features.
    s = _conv(low, 1, 1, use_bias=False, name=f"{name}_sab_conv")
    s = layers.Activation("sigmoid", name=f"{name}_sab_sigmoid")(s)
    low = layers.Multiply(name=f"{name}_sab_mul")([low, s])
    # x2 transposed convolution of the high-level features.
    up = deconv_bn_act(high, low_channels, kernel_initializer=torch_init(), name=f"{name}_up")
    fused = layers.Multiply(name=f"{name}_fuse_mul")([up, low])
    # Channel attention on the product, applied and then multiplied by the product again.
    c = _global_pool(fused, f"{name}_cab_pool")
    c = _conv(c, out_channels, 1, use_bias=False, name=f"{name}_cab_conv")
    c = layers.Activation("sigmoid", name=f"{name}_cab_sigmoid")(c)
    y = layers.Multiply(name=f"{name}_cab_mul")([fused, c])
    y = layers.Multiply(name=f"{name}_cab_mul2")([y, fused])
    return layers.Add(name=f"{name}_out")([y, up])


@MODELS.register(
    "aglnet",
    stride=64,
    paper="AGLNet (Zhou et al., 2020)",
    reference="AGLNet",
    features={8: "aglnet_l16_shuffle"},
)
def aglnet(inputs, num_classes, *, dilations=STAGE3_DILATIONS, name="aglnet"):
    """AGLNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 64 (FAPM halves the stride-8
        features three times).
      num_classes: logit channels.
      dilations: dilations of the eight SS-nbt units of stage 3.
      name: layer-name prefix.
    """
    dilations = tuple(int(d) for d in dilations)
    if len(dilations) != 8:
        raise ValueError(f"aglnet: dilations needs 8 values (stage 3 units), got {dilations}")
    x = downsampling_unit(inputs, 32, name=f"{name}_l1")
    for i in range(2, 5):
        x = ss_nbt_unit(x, name=f"{name}_l{i}")
    stage1 = x
    x = downsampling_unit(x, 64, name=f"{name}_l5")
    for i in range(6, 8):
        x = ss_nbt_unit(x, name=f"{name}_l{i}")
    stage2 = x
    x = downsampling_unit(x, 128, name=f"{name}_l8")
    for i, d in enumerate(dilations):
        x = ss_nbt_unit(x, dilation=d, name=f"{name}_l{9 + i}")

    x = fapm(x, name=f"{name}_fapm")
    x = gaum(x, stage2, 64, name=f"{name}_gaum1")
    x = gaum(x, stage1, 32, name=f"{name}_gaum2")
    x = _conv(x, num_classes, 1, use_bias=False, name=f"{name}_classifier")
    return BilinearUpsample(2, name=f"{name}_upsample")(x)
