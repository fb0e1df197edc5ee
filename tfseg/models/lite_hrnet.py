"""Lite-HRNet (Yu et al., CVPR 2021): a lightweight high-resolution network, here Lite-HRNet-18
for semantic segmentation.

Paper: C. Yu, B. Xiao, C. Gao, L. Yuan, L. Zhang, N. Sang, J. Wang, "Lite-HRNet: A Lightweight
High-Resolution Network", CVPR 2021 (arXiv:2104.06403). HRNet's parallel branches (one per stride,
exchanging information after every module) built from ShuffleNet-style units whose 1x1
convolutions are replaced by conditional channel weighting.

Layout (``base_channels`` C = 40, branches of C, 2C, 4C, 8C channels at strides 4, 8, 16, 32):

- stem: a 3x3/2 convolution to 32 channels (+ BN + ReLU) and a stride-2 shuffle block to C
  channels (the channels split in halves: a 1x1/2 convolution || 1x1 -> 3x3/2 depthwise -> 1x1,
  each + BN + ReLU; concatenated and channel-shuffled): stride 4; a depthwise-separable 3x3/2
  convolution (depthwise + BN + ReLU, 1x1 with bias + BN + ReLU) opens the stride-8 branch;
- stages 2, 3, 4 of 2, 4, 2 modules (``arch="litehrnet18"``; ``"litehrnet30"``: 3, 8, 3) over 2,
  3, 4 branches. A module:

  - cross-resolution weighting: the second half of every branch's channels, average-pooled to the
    lowest branch's size, concatenated; 1x1 convolution to 1/8 (+ BN + ReLU), 1x1 convolution back
    (+ BN + sigmoid); each branch's share of the weights upsampled (nearest) to its size;
  - per branch, two conditional channel weighting (CCW) blocks: the channels split in halves; the
    second half times the module's cross-resolution weights, 3x3 depthwise (+ BN + ReLU), times its
    spatial weights (global average pooling, 1x1 to 1/8 + BN + ReLU, 1x1 back + BN + sigmoid);
    concatenated with the first half and channel-shuffled;
  - fusion: every output branch sums every input branch: itself; a deeper branch through a 1x1
    convolution (+ BN + ReLU) and bilinear upsampling; a shallower one through depthwise-separable
    3x3/2 convolutions, one per halving. The last module of stages 2 and 3 adds the next branch;
- head: the four branches upsampled to stride 4 (bilinear), concatenated (15C = 600 channels), a
  depthwise-separable 3x3 convolution to 128 (+ BN + ReLU), a 1x1 convolution (no bias) to the
  classes and x4 bilinear upsampling.

The layout follows the PyTorch reference zoo (``models/lite_hrnet.py`` of
zh320/realtime-semantic-segmentation-pytorch). Parameters with 19 classes: 1,088,700, as the
reference (1,088,700; the paper reports 1.1M for Lite-HRNet-18); 4.64 GMACs at 512x1024, as the
reference (4.64).

Departures from the reference (no parameters or MACs change):

- the cross-resolution weights' adaptive average pooling to the lowest branch's size and their
  nearest resizing back are fixed 2**k average pooling and nearest ``UpSampling2D``: exact (and
  exportable with constant scales) because inputs must be multiples of 32, where the reference
  takes any size;
- the second 1x1 convolution of the cross-resolution weighting is one convolution (and BN) per
  branch instead of one convolution whose output is split by branch: the same parameters, MACs and
  function, with no uneven channel split in the graph;
- bilinear upsampling (fusion, head, logits) is by fixed factors with half-pixel centres
  (``tfseg.layers.BilinearUpsample``) where the reference uses ``align_corners=True``.

>>> model = tfseg.build_model("lite_hrnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import (
    BilinearUpsample,
    ChannelShuffle,
    ChannelSplit,
    conv_bn_act,
    depthwise_bn_act,
    separable_bn_act,
)
from tfseg.registry import MODELS

ARCHS = {"litehrnet18": (2, 4, 2), "litehrnet30": (3, 8, 3)}
REDUCTION = 8


def _conv1x1(x, filters, *, strides=1, activation="relu", name):
    return conv_bn_act(x, filters, 1, strides=strides, activation=activation, name=name)


def shuffle_block(x, filters, *, name):
    """ShuffleNet v2 downsampling unit: ``1x1/2 || (1x1 -> 3x3/2 depthwise -> 1x1)``, shuffled."""
    left, right = ChannelSplit(2, name=f"{name}_split")(x)
    left = _conv1x1(left, filters // 2, strides=2, name=f"{name}_left")
    right = _conv1x1(right, filters - filters // 2, name=f"{name}_reduce")
    right = depthwise_bn_act(right, 3, strides=2, name=name)
    right = _conv1x1(right, filters - filters // 2, name=f"{name}_expand")
    x = layers.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_shuffle")(x)


def cross_resolution_weights(feats, *, name):
    """One sigmoid weight map per branch, for the second half of its channels, computed from all
    branches at the lowest branch's resolution and upsampled (nearest) to the branch's."""
    factors = [2 ** (len(feats) - 1 - j) for j in range(len(feats))]
    halves = []
    for j, (feat, factor) in enumerate(zip(feats, factors)):
        half = ChannelSplit(2, name=f"{name}_split{j}")(feat)[1]
        if factor > 1:
            half = layers.AveragePooling2D(factor, name=f"{name}_pool{j}")(half)
        halves.append(half)
    x = layers.Concatenate(name=f"{name}_concat")(halves)
    x = _conv1x1(x, x.shape[-1] // REDUCTION, name=f"{name}_reduce")
    weights = []
    for j, (half, factor) in enumerate(zip(halves, factors)):
        w = _conv1x1(x, half.shape[-1], activation="sigmoid", name=f"{name}_expand{j}")
        if factor > 1:
            w = layers.UpSampling2D(factor, interpolation="nearest", name=f"{name}_up{j}")(w)
        weights.append(w)
    return weights


def spatial_weights(x, *, name):
    """Channel-wise sigmoid weights from global pooling (an SE block with reduction 8)."""
    channels = x.shape[-1]
    y = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    y = _conv1x1(y, channels // REDUCTION, name=f"{name}_reduce")
    return _conv1x1(y, channels, activation="sigmoid", name=f"{name}_expand")


def ccw_block(x, weights, *, name):
    """Conditional channel weighting: the second half of the channels weighted by ``weights``,
    3x3 depthwise, weighted by its spatial weights; concatenated with the first half, shuffled."""
    left, right = ChannelSplit(2, name=f"{name}_split")(x)
    right = layers.Multiply(name=f"{name}_crw_mul")([right, weights])
    right = depthwise_bn_act(right, 3, name=name)
    sw = spatial_weights(right, name=f"{name}_sw")
    right = layers.Multiply(name=f"{name}_sw_mul")([right, sw])
    x = layers.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_shuffle")(x)


def fusion(feats, channels, *, out_names, name):
    """Every output branch ``k`` (``channels[k]`` wide) sums all input branches, resampled to it."""
    outs = []
    for k, (width, out_name) in enumerate(zip(channels, out_names)):
        terms = []
        for j, feat in enumerate(feats):
            p = f"{name}_{j}to{k}"
            if j == k:
                terms.append(feat)
            elif j > k:
                y = _conv1x1(feat, width, name=p)
                terms.append(BilinearUpsample(2 ** (j - k), name=f"{p}_up")(y))
            else:
                y = feat
                for step in range(k - j):
                    last = step == k - j - 1
                    y = separable_bn_act(
                        y, width if last else feat.shape[-1], strides=2, name=f"{p}_down{step + 1}"
                    )
                terms.append(y)
        outs.append(layers.Add(name=out_name)(terms))
    return outs


def stage(feats, *, base_channels, modules, repeat, extra_branch, name):
    """``modules`` Lite-HRNet modules over ``len(feats)`` branches; with ``extra_branch`` the last
    fusion adds the next (half-resolution) branch."""
    for i in range(modules):
        prefix = f"{name}_m{i + 1}"
        weights = cross_resolution_weights(feats, name=f"{prefix}_crw")
        feats = list(feats)
        for j, w in enumerate(weights):
            for r in range(repeat):
                feats[j] = ccw_block(feats[j], w, name=f"{prefix}_b{j + 1}_ccw{r + 1}")
        last = i == modules - 1
        n_out = len(feats) + (1 if last and extra_branch else 0)
        out_names = [
            f"{name}_out{k + 1}" if last else f"{prefix}_fuse_out{k + 1}" for k in range(n_out)
        ]
        channels = [base_channels * 2**k for k in range(n_out)]
        feats = fusion(feats, channels, out_names=out_names, name=f"{prefix}_fuse")
    return feats


def lite_hrnet_backbone(
    inputs, *, base_channels=40, arch="litehrnet18", modules=None, repeat=2, name="lite_hrnet"
):
    """The four branches (strides 4, 8, 16, 32; ``base_channels * 2**k`` channels)."""
    if arch not in ARCHS:
        raise ValueError(f"{name}: arch must be one of {sorted(ARCHS)}, got {arch!r}")
    modules = ARCHS[arch] if modules is None else tuple(int(m) for m in modules)
    if len(modules) != 3 or min(modules) < 1:
        raise ValueError(f"{name}: modules needs three positive counts, got {modules}")
    if base_channels % 2 or repeat < 1:
        raise ValueError(f"{name}: base_channels must be even and repeat >= 1, got "
                         f"{base_channels}, {repeat}")
    x = conv_bn_act(inputs, 32, 3, strides=2, name=f"{name}_stem_conv")
    x = shuffle_block(x, base_channels, name=f"{name}_stem_shuffle")
    x2 = separable_bn_act(x, base_channels * 2, strides=2, name=f"{name}_stage1_down")
    feats = [x, x2]
    for s, count in enumerate(modules, start=2):
        feats = stage(
            feats, base_channels=base_channels, modules=count, repeat=repeat,
            extra_branch=s != 4, name=f"{name}_stage{s}",
        )
    return feats


@MODELS.register(
    "lite_hrnet",
    stride=32,
    paper="Lite-HRNet (Yu et al., 2021)",
    reference="Lite-HRNet",
    features={8: "lite_hrnet_stage4_out2"},
    # The contract test builds one module per stage and one CCW block per branch: every layer
    # type and op of the full network (1,331 layers, whose contract took ~4 CPU minutes) in 429.
    contract_kwargs={"modules": (1, 1, 1), "repeat": 1},
)
def lite_hrnet(
    inputs,
    num_classes,
    *,
    base_channels=40,
    arch="litehrnet18",
    modules=None,
    repeat=2,
    head_channels=128,
    name="lite_hrnet",
):
    """Lite-HRNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      base_channels: channels of the stride-4 branch (doubled per branch).
      arch: ``"litehrnet18"`` (2, 4, 2 modules in stages 2-4) or ``"litehrnet30"`` (3, 8, 3).
      modules: the three module counts instead of ``arch``'s.
      repeat: CCW blocks per branch in each module.
      head_channels: width of the head's separable convolution.
      name: layer-name prefix.
    """
    feats = lite_hrnet_backbone(
        inputs, base_channels=base_channels, arch=arch, modules=modules, repeat=repeat, name=name
    )
    ups = [feats[0]] + [
        BilinearUpsample(2**i, name=f"{name}_head_up{i}")(f) for i, f in enumerate(feats) if i
    ]
    x = layers.Concatenate(name=f"{name}_head_concat")(ups)
    x = separable_bn_act(x, head_channels, name=f"{name}_head")
    x = layers.Conv2D(
        num_classes, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_classifier"
    )(x)
    return BilinearUpsample(4, name=f"{name}_upsample")(x)
