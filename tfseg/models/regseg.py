"""RegSeg (Gao, 2021): dilated D-blocks and a light three-level decoder.

Paper: R. Gao, "Rethinking Dilated Convolution for Real-time Semantic Segmentation",
arXiv:2111.09957, 2021 (CVPR Workshops 2023). The layout follows the PyTorch reference zoo
(``models/regseg.py`` of zh320/realtime-semantic-segmentation-pytorch), whose parameter count tfseg
matches; every activation is a ReLU.

D-block (``d_block``; SE-ResNeXt-like, group width 16):

- stride 1: a 1x1 convolution (+ BN + ReLU); its channels split in two halves, each through a 3x3
  grouped convolution (groups = half / 16) with its own dilation (``r1``, ``r2``) (+ BN + ReLU),
  concatenated; squeeze-and-excitation (global average, dense to a quarter of the channels + ReLU,
  dense back + sigmoid, scaling the channels); a 1x1 convolution (+ BN); plus the input; ReLU;
- stride 2: the same, with one 3x3/2 grouped convolution (groups = channels / 16) on all channels
  instead of the two dilated halves, and a shortcut of 2x2/2 average pooling + 1x1 convolution
  (+ BN).

Network (stride 32):

- a 3x3/2 convolution to 32 (+ BN + ReLU);
- 1/4: a D-block to 48 (stride 2);
- 1/8: a D-block to 128 (stride 2), two D-blocks (dilations 1, 1);
- a D-block to 256 (stride 2, 1/16), twelve D-blocks of dilations (1, 1), (1, 2), (1, 2), (1, 3),
  (2, 3), (2, 7), (2, 3), (2, 6), (2, 5), (2, 9), (2, 11), (4, 7), and a D-block to 320 with
  stride 2 (1/32). In the paper (and the author's code) that last block keeps stride 1, so the
  deepest features stay at 1/16; the reference gives it stride 2 (its pair of dilations (5, 14)
  is then unused), and tfseg follows the reference, whose parameters and MACs it matches;
- decoder: the 1/32 features through a 1x1 convolution to 128 (+ BN + ReLU), x4 bilinear, added
  to the 1/8 features through a 1x1 convolution to 128 (+ BN + ReLU); a 3x3 convolution to 64
  (+ BN + ReLU: the stride-8 features), x2 bilinear, concatenated with the 1/4 features through a
  1x1 convolution to 8 (+ BN + ReLU); a 3x3 convolution to 64 (+ BN + ReLU) and a 1x1 convolution
  (no bias) to the classes; x4 bilinear.

Departures from the reference (no parameters or MACs change):

- bilinear upsamplings are half-pixel (``BilinearUpsample``, fixed factors 4, 2 and 4), not
  ``align_corners=True`` to the skip's size; strided convolutions pad "same" (Keras), which can
  shift the grid by one pixel against PyTorch's symmetric padding; BN epsilon 1e-3;
- the squeeze-and-excitation dense layers act on a (B, 1, 1, C) map (global average pooling with
  ``keepdims``), which is the reference's ``nn.Linear`` on the pooled vector;
- the grouped convolutions are ``PerGroupConv2D`` layers: Keras' grouped ``Conv2D`` weights and
  function, computed as one convolution per group in Keras and LiteRT, because Keras recompiles
  every grouped convolution with XLA at each eager call on TensorFlow (~10 s per eager forward
  pass of RegSeg at 64x96 on the 2-core machine under load). The ONNX / TensorRT export rewrites
  them to one grouped ``Conv`` each (``grouped_conv="native"`` in ``tfseg.export_lib``).

With He-normal initialisation the untrained logits stay small (standard deviation ~1.3 on N(0, 1)
images at 64x128), so no zero-initialised residual BN is needed for export parity.

Parameters with 19 classes: 3,367,132 (reference 3,367,132); 9.17 conv GMACs at 512x1024
(reference 9.17).

>>> model = tfseg.build_model("regseg", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, ChannelSplit, PerGroupConv2D, bn_act, conv_bn_act
from tfseg.registry import MODELS

# (r1, r2) of the twelve stride-1 blocks of the 1/16 stage and of the last block (the reference's).
DILATIONS = (
    (1, 1), (1, 2), (1, 2), (1, 3), (2, 3), (2, 7), (2, 3),
    (2, 6), (2, 5), (2, 9), (2, 11), (4, 7), (5, 14),
)  # fmt: skip
GROUP_WIDTH = 16
SE_RATIO = 0.25


def grouped_conv_bn_relu(x, filters, *, groups, strides=1, dilation_rate=1, name):
    """3x3 grouped convolution (``PerGroupConv2D``, no bias) + BN + ReLU."""
    x = PerGroupConv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        dilation_rate=dilation_rate,
        groups=groups,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    return bn_act(x, "relu", name=name)


def squeeze_excitation(x, ratio=SE_RATIO, *, name):
    """Channel attention: global average, dense to ``ratio`` x C + ReLU, dense + sigmoid, x *."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = layers.Dense(int(channels * ratio), activation="relu", name=f"{name}_squeeze")(s)
    s = layers.Dense(channels, activation="sigmoid", name=f"{name}_excite")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def d_block(x, filters, *, strides=1, dilations=(1, 1), group_width=GROUP_WIDTH, name):
    """RegSeg's D-block (see the module docstring); ``dilations`` = (r1, r2) for stride 1."""
    channels = x.shape[-1]
    y = conv_bn_act(x, filters, 1, name=f"{name}_conv1")
    if strides == 1:
        if channels != filters:
            raise ValueError(
                f"{name}: a stride-1 D-block keeps its width ({channels} -> {filters})"
            )
        half = filters // 2
        if half % group_width:
            raise ValueError(f"{name}: {half} channels are not a multiple of {group_width}")
        left, right = ChannelSplit(2, name=f"{name}_split")(y)
        groups = half // group_width
        left = grouped_conv_bn_relu(
            left, half, groups=groups, dilation_rate=dilations[0], name=f"{name}_left"
        )
        right = grouped_conv_bn_relu(
            right, half, groups=groups, dilation_rate=dilations[1], name=f"{name}_right"
        )
        y = layers.Concatenate(name=f"{name}_concat")([left, right])
        shortcut = x
    elif strides == 2:
        if filters % group_width:
            raise ValueError(f"{name}: {filters} channels are not a multiple of {group_width}")
        y = grouped_conv_bn_relu(
            y, filters, groups=filters // group_width, strides=2, name=f"{name}_left"
        )
        shortcut = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(x)
        shortcut = conv_bn_act(shortcut, filters, 1, activation=None, name=f"{name}_skip")
    else:
        raise ValueError(f"{name}: stride must be 1 or 2, got {strides}")
    y = squeeze_excitation(y, name=f"{name}_se")
    y = conv_bn_act(y, filters, 1, activation=None, name=f"{name}_conv2")
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def decoder(d4, d8, d32, num_classes, *, name):
    """RegSeg's decoder: 1/32 and 1/8 summed at 1/8, joined with 1/4; logits at 1/4."""
    x = conv_bn_act(d32, 128, 1, name=f"{name}_d32")
    x = BilinearUpsample(4, name=f"{name}_d32_up")(x)
    y = conv_bn_act(d8, 128, 1, name=f"{name}_d8_stage1")
    y = layers.Add(name=f"{name}_d8_add")([y, x])
    y = conv_bn_act(y, 64, 3, name=f"{name}_d8_stage2")
    y = BilinearUpsample(2, name=f"{name}_d8_up")(y)
    z = conv_bn_act(d4, 8, 1, name=f"{name}_d4_stage1")
    z = layers.Concatenate(name=f"{name}_d4_concat")([z, y])
    z = conv_bn_act(z, 64, 3, name=f"{name}_d4_stage2")
    return layers.Conv2D(
        num_classes, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_classifier"
    )(z)


@MODELS.register(
    "regseg",
    stride=32,
    paper="RegSeg (Gao, 2021)",
    reference="RegSeg",
    features={8: "regseg_decoder_d8_stage2_relu"},
)
def regseg(inputs, num_classes, *, dilations=DILATIONS, name="regseg"):
    """RegSeg logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      dilations: 13 (r1, r2) pairs: the twelve stride-1 blocks at 1/16, then the last block's
        (unused: it has stride 2, as in the reference).
      name: layer-name prefix.
    """
    if len(dilations) != len(DILATIONS):
        raise ValueError(f"{name}: {len(DILATIONS)} dilation pairs needed, got {len(dilations)}")
    x = conv_bn_act(inputs, 32, 3, strides=2, name=f"{name}_stem")
    d4 = d_block(x, 48, strides=2, name=f"{name}_d4")
    x = d_block(d4, 128, strides=2, name=f"{name}_d8_1")
    for i in range(2):
        x = d_block(x, 128, name=f"{name}_d8_{i + 2}")
    d8 = x
    x = d_block(d8, 256, strides=2, name=f"{name}_d16_1")
    for i, pair in enumerate(dilations[:-1]):
        x = d_block(x, 256, dilations=pair, name=f"{name}_d16_{i + 2}")
    x = d_block(x, 320, strides=2, dilations=dilations[-1], name=f"{name}_d32")
    x = decoder(d4, d8, x, num_classes, name=f"{name}_decoder")
    return BilinearUpsample(4, name=f"{name}_upsample")(x)
