"""BiSeNet V2 (Yu, Gao, Wang, Yu, Shen and Sang, IJCV 2021): Bilateral Network with Guided
Aggregation for real-time semantic segmentation.

Paper: C. Yu, C. Gao, J. Wang, G. Yu, C. Shen, N. Sang, "BiSeNet V2: Bilateral Network with Guided
Aggregation for Real-time Semantic Segmentation", IJCV 129, 2021 (arXiv:2004.02147). Two branches
trained from scratch: a wide, shallow detail branch at 1/8 and a narrow, deep semantic branch down
to 1/32, merged by a guided aggregation layer. Layout as in the PyTorch reference zoo (zh320,
``models/bisenetv2.py``), whose parameter count tfseg matches; every activation is a ReLU:

- detail branch (stride 8): eight 3x3 convolutions (+ BN + ReLU) to 64, 64, 64, 64, 128, 128, 128,
  128 channels, the first, third and sixth with stride 2;
- semantic branch: the stem (a 3x3/2 convolution to 16; then a 1x1 to 8 and a 3x3/2 back to 16 ||
  a 3x3/2 max-pool, concatenated, a 3x3 convolution to 16: stride 4), gather-and-expansion (GE)
  layers 16->32 (stride 8), 32->64 (stride 16), 64->128 (stride 32; 2, 2, 4 layers, the first of
  each stage with stride 2), and the context embedding block (global average pool + BN, a 1x1
  convolution + BN + ReLU added to the features, a 3x3 convolution without BN);
- GE layer: a 3x3 convolution (+ BN + ReLU), a 3x3 depthwise convolution expanding the channels
  six times (+ BN), for stride 2 a second 3x3 depthwise convolution (+ BN), a 1x1 projection (with
  bias, + BN); added to the input, or for stride 2 to a 3x3/2 depthwise (+ BN) then 1x1 (with bias,
  + BN) shortcut; ReLU;
- bilateral guided aggregation (BGA) at stride 8: detail features through a 3x3 depthwise (+ BN +
  ReLU) and 1x1 convolution, times the sigmoid of the x4-upsampled semantic features after a 3x3
  convolution (+ BN + ReLU); plus, at 1/32, the detail features through a 3x3/2 depthwise (+ BN +
  ReLU) and a 3x3/2 average pool, times the sigmoid of the semantic features after a 3x3 depthwise
  (+ BN + ReLU) and 1x1 convolution, upsampled x4; then a 3x3 convolution (+ BN + ReLU);
- the zoo's SegHead (3x3 convolution to 128 + BN + ReLU, a 1x1 convolution to the classes) and x8
  bilinear upsampling.

Auxiliary heads (``heads=("aux",)``; the paper's booster training): a SegHead on the output of the
stem (stride 4) and of semantic stages 3, 4 and 5 before the context embedding (strides 8, 16,
32), at their own stride, in that order.

Departures from the reference (no parameters or MACs change): every fixed-factor upsampling is
half-pixel bilinear (``BilinearUpsample``), not ``align_corners=True``; strided convolutions and
pools pad "same" (Keras'), and the BGA's average pool leaves the padding out of the mean (PyTorch
counts it).

Parameters with 19 classes: 2,272,688 (reference 2,272,688), 2,559,920 with the auxiliary heads
(reference 2,559,920); 17.52 conv GMACs at 512x1024 (reference 17.52).

>>> model = tfseg.build_model("bisenetv2", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import (
    BilinearUpsample,
    SameAveragePooling2D,
    conv_bn_act,
    depthwise_bn_act,
    pointwise_bn_act,
    seg_head,
)
from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM
from tfseg.registry import MODELS

DETAIL_LAYERS = ((64, 2), (64, 1), (64, 2), (64, 1), (128, 1), (128, 2), (128, 1), (128, 1))
# Semantic stages 3, 4, 5: (output channels, GE layers); the first layer of each has stride 2.
SEMANTIC_STAGES = ((32, 2), (64, 2), (128, 4))
STEM_CHANNELS = 16
BGA_CHANNELS = 128


def _bn(x, name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def _depthwise_bn(x, *, multiplier=1, strides=1, name):
    """3x3 depthwise convolution (``multiplier`` outputs per channel, no bias) + BN, linear: the
    reference's ``DWConvBNAct(act_type='none')``."""
    x = layers.DepthwiseConv2D(
        3, strides=strides, padding="same", depth_multiplier=multiplier, use_bias=False,
        name=f"{name}_dwconv",
    )(x)  # fmt: skip
    return _bn(x, f"{name}_bn")


def _conv(x, filters, kernel_size, *, name):
    """Plain convolution without bias (the reference's ``conv1x1`` / ``conv3x3``)."""
    return layers.Conv2D(
        filters, kernel_size, padding="same", use_bias=False, kernel_initializer="he_normal",
        name=name,
    )(x)  # fmt: skip


def detail_branch(inputs, *, name):
    """Eight 3x3 convolutions (+ BN + ReLU) to 128 channels at stride 8."""
    x = inputs
    for i, (filters, strides) in enumerate(DETAIL_LAYERS):
        x = conv_bn_act(x, filters, 3, strides=strides, name=f"{name}_conv{i + 1}")
    return x


def stem_block(x, filters, *, name):
    """3x3/2 convolution; [1x1 to half, 3x3/2] || 3x3/2 max-pool; concatenation; 3x3 (stride 4)."""
    x = conv_bn_act(x, filters, 3, strides=2, name=f"{name}_init")
    left = conv_bn_act(x, filters // 2, 1, name=f"{name}_left1")
    left = conv_bn_act(left, filters, 3, strides=2, name=f"{name}_left2")
    right = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    x = layers.Concatenate(name=f"{name}_concat")([left, right])
    return conv_bn_act(x, filters, 3, name=f"{name}_out")


def gather_expansion(x, filters, *, strides=1, expand_ratio=6, name):
    """GE layer: 3x3 conv, depthwise expansion (x``expand_ratio``), 1x1 projection, + shortcut."""
    channels = x.shape[-1]
    if strides == 1 and channels != filters:
        raise ValueError(f"{name}: a stride-1 GE layer keeps its width, {channels} -> {filters}")
    y = conv_bn_act(x, channels, 3, name=f"{name}_conv")
    y = _depthwise_bn(y, multiplier=expand_ratio, strides=strides, name=f"{name}_expand")
    shortcut = x
    if strides != 1:
        y = _depthwise_bn(y, name=f"{name}_dw")
        shortcut = _depthwise_bn(x, strides=strides, name=f"{name}_short_dw")
        shortcut = pointwise_bn_act(shortcut, filters, activation=None, name=f"{name}_short_pw")
    y = pointwise_bn_act(y, filters, activation=None, name=f"{name}_project")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_relu")(y)


def context_embedding(x, filters, *, name):
    """Global average pool + BN, 1x1 conv (+ BN + ReLU), added to ``x``, then a plain 3x3 conv."""
    channels = x.shape[-1]
    y = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    y = _bn(y, f"{name}_pool_bn")
    y = conv_bn_act(y, channels, 1, name=f"{name}_mid")
    x = layers.Add(name=f"{name}_add")([x, y])
    return _conv(x, filters, 3, name=f"{name}_last")


def semantic_branch(inputs, *, name):
    """The semantic features at stride 32 and the outputs of the stem and stages 3-5 (the
    auxiliary heads' inputs, strides 4 to 32)."""
    x = stem_block(inputs, STEM_CHANNELS, name=f"{name}_stem")
    stages = [x]
    for s, (filters, repeats) in enumerate(SEMANTIC_STAGES):
        for i in range(repeats):
            x = gather_expansion(
                x, filters, strides=2 if i == 0 else 1, name=f"{name}_stage{s + 3}_ge{i + 1}"
            )
        stages.append(x)
    return context_embedding(x, BGA_CHANNELS, name=f"{name}_ce"), stages


def guided_aggregation(detail, semantic, filters, *, name):
    """BGA layer: each branch gated by the sigmoid of the other's features at 1/8 and 1/32."""
    channels = detail.shape[-1]
    d_high = depthwise_bn_act(detail, 3, name=f"{name}_detail_high")
    d_high = _conv(d_high, channels, 1, name=f"{name}_detail_high_pw")
    d_low = depthwise_bn_act(detail, 3, strides=2, name=f"{name}_detail_low")
    d_low = SameAveragePooling2D(3, strides=2, name=f"{name}_detail_low_pool")(
        d_low
    )
    s_high = conv_bn_act(semantic, channels, 3, name=f"{name}_semantic_high")
    s_high = BilinearUpsample(4, name=f"{name}_semantic_high_up")(s_high)
    s_high = layers.Activation("sigmoid", name=f"{name}_semantic_high_sigmoid")(s_high)
    s_low = depthwise_bn_act(semantic, 3, name=f"{name}_semantic_low")
    s_low = _conv(s_low, channels, 1, name=f"{name}_semantic_low_pw")
    s_low = layers.Activation("sigmoid", name=f"{name}_semantic_low_sigmoid")(s_low)
    high = layers.Multiply(name=f"{name}_high")([d_high, s_high])
    low = layers.Multiply(name=f"{name}_low")([d_low, s_low])
    low = BilinearUpsample(4, name=f"{name}_low_up")(low)
    x = layers.Add(name=f"{name}_sum")([high, low])
    return conv_bn_act(x, filters, 3, name=f"{name}_out")


@MODELS.register(
    "bisenetv2",
    stride=32,
    paper="BiSeNet V2 (Yu et al., 2021)",
    reference="BiSeNetv2",
    features={8: "bisenetv2_bga_out_relu"},
    heads=("aux",),
    reference_aux_params=2_559_920,
)
def bisenetv2(inputs, num_classes, *, name="bisenetv2"):
    """BiSeNet V2: ``{"logits": logits at the input resolution, "aux": [four auxiliary logits at
    strides 4, 8, 16, 32]}`` (``build_model`` keeps the auxiliary ones for ``heads=("aux",)``).

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      name: layer-name prefix.
    """
    detail = detail_branch(inputs, name=f"{name}_detail")
    semantic, stages = semantic_branch(inputs, name=f"{name}_semantic")
    x = guided_aggregation(detail, semantic, BGA_CHANNELS, name=f"{name}_bga")
    x = seg_head(x, num_classes, name=f"{name}_head")
    logits = BilinearUpsample(8, name=f"{name}_upsample")(x)
    aux = [seg_head(t, num_classes, name=f"{name}_aux{i + 2}") for i, t in enumerate(stages)]
    return {"logits": logits, "aux": aux}
