"""ENet (Paszke et al., 2016): a real-time network of residual bottlenecks with max-unpooling.

Layout (stride 8 encoder, light decoder), as in the PyTorch reference zoo whose parameter count
tfseg matches (365,100 there, 366,152 here with 19 classes):

- initial block: 3x3/2 convolution (13 channels) || 2x2 max-pool of the image -> concat ->
  BN + PReLU;
- stage 1: downsampling bottleneck to 64 channels + 4 regular bottlenecks (dropout 0.01);
- stages 2 and 3 (128 channels, dropout 0.1): regular, dilated 2, asymmetric 5, dilated 4, regular,
  dilated 8, asymmetric 5, dilated 16; stage 2 starts with a downsampling bottleneck;
- decoder: upsampling bottleneck to 64 + 2 regular, upsampling bottleneck to 16 + 1 regular, and a
  2x2/2 transposed convolution to the classes (the paper's "fullconv").

A bottleneck: 1x1 (or 3x3/2 when downsampling) projection to ``in/4`` channels, the main
convolution (3x3, dilated 3x3, 5x1 + 1x5, or a 3x3/2 transposed convolution when upsampling), a 1x1
expansion, spatial dropout, added to the shortcut, PReLU.
The downsampling shortcut is a 2x2 max-pool
followed by a 1x1 convolution + BN to the new width (the paper zero-pads the channels instead); the
upsampling shortcut is a 1x1 convolution + BN followed by max-unpooling with the switches of the
matching max-pool. PReLUs have one slope per layer (as in the reference zoo).

Max-unpooling: ``tfseg.layers.unpool`` (``PoolSwitches`` and ``MaxUnpool2D``, shared with SegNet),
exact and exportable with dynamic sizes.

``decoder="igum"`` replaces the decoder by the SSN iGUM head on the 128-channel stride-8 output of
stage 3 (``tfseg.decoders.igum.igum_head``).

>>> model = tfseg.build_model("enet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.decoders.igum import igum_head
from tfseg.layers.blocks import prelu
from tfseg.layers.downsample import conv_pool_downsample
from tfseg.layers.unpool import MaxUnpool2D, PoolSwitches  # noqa: F401  (re-exported)
from tfseg.models.erfnet import check_decoder
from tfseg.registry import MODELS

# (kind, dilation) of the 8 bottlenecks of stages 2 and 3.
_STAGE23 = (
    ("regular", 1),
    ("dilated", 2),
    ("asymmetric", 1),
    ("dilated", 4),
    ("regular", 1),
    ("dilated", 8),
    ("asymmetric", 1),
    ("dilated", 16),
)


def _prelu(x, name):
    # One slope per layer, starting at 0.25 as in PyTorch (Keras starts at 0, a plain ReLU).
    return prelu(x, name=name)


def _conv_bn(x, filters, kernel, *, strides=1, dilation=1, activation="prelu", name):
    x = layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        dilation_rate=dilation,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return _prelu(x, f"{name}_prelu") if activation == "prelu" else x


def bottleneck(x, filters, kind="regular", *, dilation=1, dropout=0.1, switches=None, name):
    """One ENet bottleneck. ``kind``: regular, dilated, asymmetric, downsampling, upsampling.

    Returns the output, and for ``downsampling`` also the max-pool switches (for the decoder);
    ``upsampling`` needs the ``switches`` of the matching downsampling bottleneck.
    """
    hidden = x.shape[-1] // 4
    if kind == "downsampling":
        r = _conv_bn(x, hidden, 3, strides=2, name=f"{name}_proj")
        r = _conv_bn(r, hidden, 3, name=f"{name}_main")
    elif kind == "upsampling":
        if switches is None:
            raise ValueError(f"{name}: an upsampling bottleneck needs the switches of its max-pool")
        r = _conv_bn(x, hidden, 1, name=f"{name}_proj")
        r = layers.Conv2DTranspose(
            hidden, 3, strides=2, padding="same", use_bias=False, name=f"{name}_main_deconv"
        )(r)
        r = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_main_bn")(r)
        r = _prelu(r, f"{name}_main_prelu")
    elif kind in ("regular", "dilated"):
        r = _conv_bn(x, hidden, 1, name=f"{name}_proj")
        r = _conv_bn(r, hidden, 3, dilation=dilation, name=f"{name}_main")
    elif kind == "asymmetric":
        r = _conv_bn(x, hidden, 1, name=f"{name}_proj")
        r = _conv_bn(r, hidden, (5, 1), name=f"{name}_main5x1")
        r = _conv_bn(r, hidden, (1, 5), name=f"{name}_main1x5")
    else:
        raise ValueError(
            f"{name}: unknown bottleneck kind {kind!r}; choose one of: "
            "regular, dilated, asymmetric, downsampling, upsampling"
        )
    r = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_expand")(r)
    if dropout:
        r = layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(r)

    new_switches = None
    if kind == "downsampling":
        new_switches = PoolSwitches(name=f"{name}_switches")(x)
        shortcut = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
        shortcut = _conv_bn(shortcut, filters, 1, activation=None, name=f"{name}_shortcut")
    elif kind == "upsampling":
        shortcut = _conv_bn(x, filters, 1, activation=None, name=f"{name}_shortcut")
        shortcut = MaxUnpool2D(name=f"{name}_unpool")([shortcut, switches])
    elif x.shape[-1] != filters:
        raise ValueError(
            f"{name}: a {kind} bottleneck keeps the width ({x.shape[-1]} != {filters})"
        )
    else:
        shortcut = x
    out = layers.Add(name=f"{name}_add")([shortcut, r])
    out = _prelu(out, f"{name}_out")
    return (out, new_switches) if kind == "downsampling" else out


def initial_block(x, *, name):
    """3x3/2 convolution to 13 channels || 2x2 max-pool of the image, concat, BN + PReLU."""
    return conv_pool_downsample(
        x, 13 + x.shape[-1], activation="prelu", pool_size=2, normalize="concat", name=name
    )


def enet_encoder(x, *, name="enet"):
    """Initial block and stages 1-3:
    ``(features at stride 8 with 128 channels, [switches1, 2])``."""
    x = initial_block(x, name=f"{name}_initial")
    x, switches1 = bottleneck(x, 64, "downsampling", dropout=0.01, name=f"{name}_b1_0")
    for i in range(4):
        x = bottleneck(x, 64, dropout=0.01, name=f"{name}_b1_{i + 1}")
    x, switches2 = bottleneck(x, 128, "downsampling", name=f"{name}_b2_0")
    for stage in (2, 3):
        for i, (kind, dilation) in enumerate(_STAGE23):
            x = bottleneck(x, 128, kind, dilation=dilation, name=f"{name}_b{stage}_{i + 1}")
    return x, [switches1, switches2]


def enet_decoder(x, switches, num_classes, *, name="enet"):
    """Stages 4 and 5 (unpooling with the encoder's switches) and the final transposed
    convolution."""
    switches1, switches2 = switches
    x = bottleneck(x, 64, "upsampling", switches=switches2, name=f"{name}_b4_0")
    for i in range(2):
        x = bottleneck(x, 64, name=f"{name}_b4_{i + 1}")
    x = bottleneck(x, 16, "upsampling", switches=switches1, name=f"{name}_b5_0")
    x = bottleneck(x, 16, name=f"{name}_b5_1")
    return layers.Conv2DTranspose(
        num_classes, 2, strides=2, padding="valid", name=f"{name}_fullconv"
    )(x)


@MODELS.register(
    "enet",
    stride=8,
    paper="ENet (Paszke et al., 2016)",
    features={8: "enet_b3_8_out"},
    reference="ENet",
)
def enet(inputs, num_classes, *, decoder="original", name="enet", **igum_kwargs):
    """ENet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      decoder: ``"original"`` (unpooling bottlenecks + fullconv) or ``"igum"`` (SSN iGUM head on
        the stride-8 encoder output).
      name: layer-name prefix.
      **igum_kwargs: passed to ``igum_head``; only with ``decoder="igum"``.
    """
    check_decoder("enet", decoder, igum_kwargs)
    features, switches = enet_encoder(inputs, name=name)
    if decoder == "igum":
        return igum_head(features, num_classes, factor=8, name=f"{name}_igum", **igum_kwargs)
    return enet_decoder(features, switches, num_classes, name=name)

