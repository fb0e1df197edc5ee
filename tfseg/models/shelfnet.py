"""ShelfNet (Zhuang et al., 2019): a shelf of encoder-decoder columns over an ImageNet encoder.

Paper: J. Zhuang, J. Yang, L. Gu, N. Dvornek, "ShelfNet for Fast Semantic Segmentation", ICCV
Workshops 2019 (arXiv:1811.11254). Instead of one encoder-decoder, ShelfNet stacks several
encoder-decoder branch pairs ("columns") joined at every spatial level by skip connections, so the
features reach the classifier along many deep and shallow paths. Layout as in the PyTorch reference
zoo (zh320, ``models/shelfnet.py``), whose parameter count tfseg matches:

- column 1: the encoder's stride-4, 8, 16 and 32 features (P2..P5; ResNet18's layer1..layer4), each
  reduced by a 1x1 convolution (+ BN + ReLU) to 32, 64, 128 and 256 channels (``channels``);
- column 2, a decoder: from the coarsest level down, an S-block, then a 3x3/2 transposed convolution
  (with bias, + BN + ReLU) to the next level's width, added to that level's column-1 features at
  the input of its S-block;
- column 3, an encoder: from the finest level up, an S-block on the sum of the column-2 features
  and the level below downsampled by a 3x3/2 convolution (+ BN + ReLU); the last downsampling gives
  the new stride-32 features;
- column 4, a decoder as column 2; its stride-4 output goes through a 1x1 convolution (no bias) to
  the classes and x4 bilinear upsampling.

S-block (the paper's residual block): ``relu(x + bn(conv3x3(relu(bn(conv3x3(x))))))``, where ``x``
is the sum of the level's lateral input and the column's vertical input.

The channel counts of the encoder are read from its pyramid, so ShelfNet builds on any registered
encoder (``encoder=``; the paper uses ResNet18/34/50/101).

Departures from the paper, as the reference (which tfseg follows): the two 3x3 convolutions of an
S-block have their own weights (the paper shares one weight between them, with a dropout in
between, to save parameters); all four pyramid levels are used. Departures from the reference:

- the final x4 upsampling is half-pixel bilinear (``BilinearUpsample``), not
  ``align_corners=True``; strided and transposed convolutions pad Keras' "same" way (the common
  conventions of docs/zoo.md; no parameters or MACs change);
- initialisation: the BN closing each S-block's residual branch starts with a zero scale (zero-init
  residual, Goyal et al. 2017), as FSSNet does, so each block starts as the identity: with Keras'
  He-normal convolutions the twelve chained blocks otherwise grow the untrained network's
  inference-mode logits to a standard deviation of ~1200 (measured on N(0, 1) images at 128x256;
  ~110 with it), where float32 rounding threatens the export-parity check. Only the starting
  weights differ.

Parameters with 19 classes: 16,040,864 (reference 16,040,864); 27.24 conv GMACs at 512x1024
(reference 27.24).

>>> model = tfseg.build_model("shelfnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.encoders import encoder_pyramid
from tfseg.layers import BilinearUpsample, conv_bn_act
from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, deconv_bn_act
from tfseg.registry import MODELS

CHANNELS = (32, 64, 128, 256)
LEVELS = ("a", "b", "c", "d")  # strides 4, 8, 16, 32 (the reference's x_a .. x_d)


def s_block(lateral, vertical=None, *, name):
    """ShelfNet's residual block on ``lateral + vertical``: 3x3 conv + BN + ReLU, 3x3 conv + BN
    (zero-initialised scale), plus the block's input, ReLU."""
    x = lateral if vertical is None else layers.Add(name=f"{name}_in")([lateral, vertical])
    channels = x.shape[-1]
    y = conv_bn_act(x, channels, 3, name=f"{name}_conv1")
    y = layers.Conv2D(
        channels,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv2_conv",
    )(y)
    y = layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, gamma_initializer="zeros", name=f"{name}_conv2_bn"
    )(y)
    y = layers.Add(name=f"{name}_add")([y, x])
    return layers.ReLU(name=f"{name}_out")(y)


def decoder_column(feats, *, name):
    """S-blocks from the coarsest level down, each upsampled by a 3x3/2 transposed convolution
    (+ BN + ReLU) into the next finer block. ``feats``: ``[a, b, c, d]``; returns the new
    ``[a, b, c]``."""
    out = [None] * 3
    x = s_block(feats[3], name=f"{name}_{LEVELS[3]}")
    for i in (2, 1, 0):
        up = deconv_bn_act(x, feats[i].shape[-1], name=f"{name}_up_{LEVELS[i + 1]}")
        x = out[i] = s_block(feats[i], up, name=f"{name}_{LEVELS[i]}")
    return out


def encoder_column(feats, channels, *, name):
    """S-blocks from the finest level up, each downsampled by a 3x3/2 convolution (+ BN + ReLU)
    into the next coarser block. ``feats``: ``[a, b, c]``; returns ``[a, b, c, d]``."""
    out = []
    down = None
    for i in range(3):
        x = s_block(feats[i], down, name=f"{name}_{LEVELS[i]}")
        out.append(x)
        down = conv_bn_act(x, channels[i + 1], 3, strides=2, name=f"{name}_down_{LEVELS[i]}")
    return out + [down]


@MODELS.register(
    "shelfnet",
    stride=32,
    paper="ShelfNet (Zhuang et al., 2019)",
    reference="ShelfNet",
    default_encoder="resnet18",
    any_encoder=True,
    features={8: "shelfnet_col4_b_out"},
)
def shelfnet(
    inputs, num_classes, *, encoder, encoder_kwargs=None, channels=CHANNELS, name="shelfnet"
):
    """ShelfNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      encoder: the encoder (``resnet18`` by default through the registry) whose P2..P5 feed the
        shelf.
      encoder_kwargs: keyword arguments for the encoder builder.
      channels: the shelf's widths at strides 4, 8, 16 and 32 (the reference's ``hid_channels``).
      name: layer-name prefix.
    """
    if len(channels) != 4:
        raise ValueError(f"channels must give 4 widths (strides 4..32), got {channels}")
    pyramid = encoder_pyramid(inputs, encoder, encoder_kwargs=encoder_kwargs)
    widths = [int(w) for w in channels]
    feats = [
        conv_bn_act(pyramid[f"P{i + 2}"], w, 1, name=f"{name}_col1_{LEVELS[i]}")
        for i, w in enumerate(widths)
    ]
    feats = decoder_column(feats, name=f"{name}_col2")
    feats = encoder_column(feats, widths, name=f"{name}_col3")
    finest = decoder_column(feats, name=f"{name}_col4")[0]
    x = layers.Conv2D(
        num_classes, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_classifier"
    )(finest)
    return BilinearUpsample(4, name=f"{name}_up")(x)
