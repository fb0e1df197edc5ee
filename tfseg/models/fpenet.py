"""FPENet (Liu and Yin, BMVC 2019): Feature Pyramid Encoding Network for real-time segmentation.

Paper: M. Liu, H. Yin, "Feature Pyramid Encoding Network for Real-time Semantic Segmentation",
arXiv:1909.08599, 2019. Layout as in the PyTorch reference zoo (zh320), whose parameter count tfseg
matches:

- encoder (stride 8): a 3x3/2 convolution to 16 channels and one FPE block (16, expansion 1) at
  stride 2; an FPE block with stride 2 to 32 channels + ``p - 1`` FPE blocks at stride 4; an FPE
  block with stride 2 to 64 channels + ``q - 1`` FPE blocks at stride 8 (expansion ``k``);
- decoder: two mutual-embedding upsample (MEU) modules, stride 8 -> 4 (64 channels) and 4 -> 2
  (32 channels), a 1x1 convolution + BN to the classes, and a x2 bilinear upsampling.

FPE block (the paper's Figure 2): a 1x1 convolution expands to ``out * k`` channels (+ BN + ReLU);
the channels are split into four groups, each a 3x3 depthwise convolution with dilation 1, 2, 4, 8
(+ BN + ReLU; the block's stride is applied here); group ``j`` adds the output of group ``j - 1``
(hierarchical sum: the feature pyramid); the concatenated groups go through a 1x1 projection
(+ BN + ReLU), plus the input when the shape is kept.

MEU module (Figure 3): the low-level (fine) and high-level (coarse) inputs are each projected by a
1x1 convolution + BN + ReLU; the low-level map gives a spatial attention map (channel mean, 1x1
convolution + BN + ReLU) that weights the x2-upsampled high-level map, and the high-level map gives
a channel attention vector (global average pooling, 1x1 convolution + BN + ReLU) that weights the
low-level map; the module returns their sum.

How this file computes the same function (and where it differs):

- the expanding 1x1 convolution of an FPE block is four 1x1 convolutions, one per group (the same
  weights, split by output channel; the same parameters and MACs), so no channel slicing is needed;
- a strided depthwise convolution with dilation ``d > 1`` (which Keras does not offer) is computed
  exactly as a stride-2 subsampling (``AveragePooling2D(1, strides=2)``) followed by the depthwise
  convolution with dilation ``d / 2`` (every tap of a stride-2, even-dilation window lies on the
  even pixels); the dilation-1 branch pads by one and convolves with stride 2, so all four groups
  are centred on the same (even) pixels, as in PyTorch;
- upsampling is half-pixel bilinear (``BilinearUpsample``); the reference uses
  ``align_corners=True`` (no parameters or MACs involved);
- the reference ends with 1x1 convolution + BN + **ReLU** on the logits; here the logits are linear
  (1x1 convolution + BN): a ReLU would clamp every negative logit to zero. The count is unchanged.

Parameters with 19 classes: 361,804 (reference 361,804); 4.230 conv GMACs at 512x1024 (reference
4.23).

>>> model = tfseg.build_model("fpenet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, conv_bn_act
from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, act
from tfseg.layers.downsample import strided_depthwise
from tfseg.layers.misc import ChannelMean
from tfseg.registry import MODELS

DILATIONS = (1, 2, 4, 8)


def _conv_bn(x, filters, kernel, *, activation, name, **conv_kw):
    x = conv_bn_act(x, filters, kernel, activation=None, name=name, **conv_kw)
    return act(x, activation, name=f"{name}_act")


def _depthwise_bn(x, dilation, stride, *, activation, name):
    """3x3 depthwise convolution (stride 1 or 2, any dilation) + BN + activation; a stride-2 one
    is centred on the even pixels, as PyTorch's."""
    if stride == 2:
        x = strided_depthwise(
            x, dilation=dilation, alignment="torch", conv_name=f"{name}_dwconv", name=name
        )
    else:
        x = layers.DepthwiseConv2D(
            3, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}_dwconv"
        )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return act(x, activation, name=f"{name}_act")


def fpe_block(x, filters, *, expansion, stride=1, dilations=DILATIONS, activation="relu", name):
    """Feature pyramid encoding block: expand, four dilated depthwise groups summed hierarchically,
    project (+ the input when ``stride == 1`` and the width is kept)."""
    groups = len(dilations)
    expanded = filters * expansion
    if expanded % groups:
        raise ValueError(
            f"{name}: {filters} x expansion {expansion} channels do not split into {groups} groups"
        )
    width = expanded // groups
    branches = []
    for i, dilation in enumerate(dilations):
        y = _conv_bn(x, width, 1, activation=activation, name=f"{name}_expand{i + 1}")
        y = _depthwise_bn(y, dilation, stride, activation=activation, name=f"{name}_dw{i + 1}")
        if branches:
            y = layers.Add(name=f"{name}_sum{i + 1}")([y, branches[-1]])
        branches.append(y)
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    y = _conv_bn(y, filters, 1, activation=activation, name=f"{name}_project")
    if stride == 1 and x.shape[-1] == filters:
        y = layers.Add(name=f"{name}_add")([y, x])
    return y


def meu_module(low, high, filters, *, activation="relu", name):
    """Mutual embedding upsample: ``low`` (stride s) and ``high`` (stride 2s) -> stride s."""
    low = _conv_bn(low, filters, 1, activation=activation, name=f"{name}_low")
    high = _conv_bn(high, filters, 1, activation=activation, name=f"{name}_high")
    spatial = ChannelMean(name=f"{name}_sa_mean")(low)
    spatial = _conv_bn(spatial, 1, 1, activation=activation, name=f"{name}_sa")
    channel = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_ca_pool")(high)
    channel = _conv_bn(channel, filters, 1, activation=activation, name=f"{name}_ca")
    low = layers.Multiply(name=f"{name}_low_weighted")([low, channel])
    high = BilinearUpsample(2, name=f"{name}_high_up")(high)
    high = layers.Multiply(name=f"{name}_high_weighted")([high, spatial])
    return layers.Add(name=f"{name}_add")([low, high])


@MODELS.register(
    "fpenet",
    stride=8,
    paper="FPENet (Liu et al., 2019)",
    reference="FPENet",
    features={8: "fpenet_stage3_9_add"},
)
def fpenet(inputs, num_classes, *, p=3, q=9, k=4, activation="relu", name="fpenet"):
    """FPENet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      p: FPE blocks at stride 4 (the first one downsamples).
      q: FPE blocks at stride 8 (the first one downsamples).
      k: expansion ratio of the FPE blocks at strides 4 and 8.
      activation: activation of every convolution (``"relu"``; ``"prelu"`` has one slope per layer).
      name: layer-name prefix.
    """
    for key, value in (("p", p), ("q", q), ("k", k)):
        if int(value) != value or value < 1:
            raise ValueError(f"fpenet: {key} must be a positive integer, got {value!r}")
    kw = {"activation": activation}
    x1 = _conv_bn(inputs, 16, 3, strides=2, name=f"{name}_stem", **kw)
    x1 = fpe_block(x1, 16, expansion=1, name=f"{name}_stage1_1", **kw)
    x2 = x1
    for i in range(p):
        stride = 2 if i == 0 else 1
        x2 = fpe_block(x2, 32, expansion=k, stride=stride, name=f"{name}_stage2_{i + 1}", **kw)
    x3 = x2
    for i in range(q):
        stride = 2 if i == 0 else 1
        x3 = fpe_block(x3, 64, expansion=k, stride=stride, name=f"{name}_stage3_{i + 1}", **kw)
    x = meu_module(x2, x3, 64, name=f"{name}_decoder2", **kw)
    x = meu_module(x1, x, 32, name=f"{name}_decoder1", **kw)
    x = _conv_bn(x, num_classes, 1, activation=None, name=f"{name}_classifier")
    return BilinearUpsample(2, name=f"{name}_upsample")(x)
