"""ERFNet (Romera et al., IEEE T-ITS 2018): Efficient Residual Factorized ConvNet.

Encoder: three downsampler blocks (a 3x3/2 convolution with ``filters - in`` outputs concatenated
with a 2x2 max-pool of the input, then BN + ReLU) around non-bottleneck-1D blocks: 5 at 64 channels
(stride 4, dropout 0.03) and 8 at 128 channels (stride 8, dilations 2, 4, 8, 16 twice, dropout 0.3).
A non-bottleneck-1D block is a residual block of four factorised convolutions
3x1 -> ReLU -> 1x3 -> BN -> ReLU -> 3x1 (dilated) -> ReLU -> 1x3 (dilated) -> BN -> dropout,
+ input, ReLU.

Original decoder: 3x3/2 transposed convolution to 64 (+ BN + ReLU), 2 blocks, transposed convolution
to 16, 2 blocks, and a 2x2/2 transposed convolution to the classes (the authors' code).
``decoder="igum"`` drops that decoder: an iGUM head (``tfseg.decoders.igum.igum_head``) reads the
128-channel stride-8 encoder output and samples the 1/8 logits to full resolution (SSN, Table 1).

Parameters with 19 classes: 2,064,191 (the PyTorch reference zoo counts 2,065,458: the same layout;
it ends with a 3x3 transposed convolution + BN + ReLU on the logits, where this file keeps the
authors' 2x2 transposed convolution).

>>> model = tfseg.build_model("erfnet", 19, input_shape=(512, 1024, 3))
>>> model = tfseg.build_model("erfnet", 19, decoder="igum")
"""

from keras import layers

from tfseg.decoders.igum import igum_head
from tfseg.registry import MODELS

DECODER_CHOICES = ("original", "igum")

# (dilation, dropout) of the 8 non-bottleneck-1D blocks at stride 8.
_STAGE3 = tuple((d, 0.3) for d in (2, 4, 8, 16, 2, 4, 8, 16))


def check_decoder(model, decoder, extra):
    """Validate ``decoder`` and the keyword arguments only the iGUM head takes."""
    if decoder not in DECODER_CHOICES:
        raise ValueError(
            f"{model}: unknown decoder {decoder!r}; choose one of: {', '.join(DECODER_CHOICES)}"
        )
    if decoder == "original" and extra:
        raise TypeError(
            f"{model}: unexpected keyword argument(s) {', '.join(sorted(extra))} "
            "(only decoder='igum' takes igum_head options)"
        )


def _bn(x, name):
    return layers.BatchNormalization(epsilon=1e-3, name=name)(x)


def downsampler_block(x, filters, *, name):
    """3x3/2 convolution (``filters - in`` channels) || 2x2 max-pool, concatenated, BN + ReLU."""
    in_channels = x.shape[-1]
    if filters <= in_channels:
        raise ValueError(
            f"{name}: filters ({filters}) must exceed the input channels ({in_channels})"
        )
    conv = layers.Conv2D(
        filters - in_channels,
        3,
        strides=2,
        padding="same",
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    pool = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = layers.Concatenate(name=f"{name}_concat")([conv, pool])
    x = _bn(x, f"{name}_bn")
    return layers.ReLU(name=f"{name}_relu")(x)


def non_bottleneck_1d(x, *, dilation=1, dropout=0.0, name):
    """ERFNet's residual block of four factorised (3x1, 1x3) convolutions; the last two dilated."""
    channels = x.shape[-1]

    def conv(y, kernel, rate, suffix):
        return layers.Conv2D(
            channels,
            kernel,
            padding="same",
            dilation_rate=rate,
            kernel_initializer="he_normal",
            name=f"{name}_{suffix}",
        )(y)

    y = conv(x, (3, 1), 1, "conv3x1_1")
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = conv(y, (1, 3), 1, "conv1x3_1")
    y = _bn(y, f"{name}_bn1")
    y = layers.ReLU(name=f"{name}_relu2")(y)
    y = conv(y, (3, 1), (dilation, 1), "conv3x1_2")
    y = layers.ReLU(name=f"{name}_relu3")(y)
    y = conv(y, (1, 3), (1, dilation), "conv1x3_2")
    y = _bn(y, f"{name}_bn2")
    if dropout:
        y = layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(y)
    x = layers.Add(name=f"{name}_add")([x, y])
    return layers.ReLU(name=f"{name}_out")(x)


def upsampler_block(x, filters, *, name):
    """3x3/2 transposed convolution (with bias) + BN + ReLU."""
    x = layers.Conv2DTranspose(
        filters, 3, strides=2, padding="same", kernel_initializer="he_normal", name=f"{name}_deconv"
    )(x)
    x = _bn(x, f"{name}_bn")
    return layers.ReLU(name=f"{name}_relu")(x)


def erfnet_encoder(x, *, name="erfnet"):
    """The ERFNet encoder: 128 channels at stride 8."""
    x = downsampler_block(x, 16, name=f"{name}_down1")
    x = downsampler_block(x, 64, name=f"{name}_down2")
    for i in range(5):
        x = non_bottleneck_1d(x, dropout=0.03, name=f"{name}_enc64_{i + 1}")
    x = downsampler_block(x, 128, name=f"{name}_down3")
    for i, (dilation, dropout) in enumerate(_STAGE3):
        x = non_bottleneck_1d(x, dilation=dilation, dropout=dropout, name=f"{name}_enc128_{i + 1}")
    return x


def erfnet_decoder(x, num_classes, *, name="erfnet"):
    """ERFNet's decoder: x2 to 64 channels, 2 blocks, x2 to 16, 2 blocks, x2 to the classes."""
    x = upsampler_block(x, 64, name=f"{name}_up1")
    for i in range(2):
        x = non_bottleneck_1d(x, name=f"{name}_dec64_{i + 1}")
    x = upsampler_block(x, 16, name=f"{name}_up2")
    for i in range(2):
        x = non_bottleneck_1d(x, name=f"{name}_dec16_{i + 1}")
    return layers.Conv2DTranspose(
        num_classes, 2, strides=2, padding="valid", name=f"{name}_output"
    )(x)


@MODELS.register(
    "erfnet",
    stride=8,
    paper="ERFNet (Romera et al., 2017)",
    features={8: "erfnet_enc128_8_out"},
    reference="ERFNet",
)
def erfnet(inputs, num_classes, *, decoder="original", name="erfnet", **igum_kwargs):
    """ERFNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      decoder: ``"original"`` (ERFNet's transposed-convolution decoder) or ``"igum"`` (the SSN iGUM
        head on the stride-8 encoder output).
      name: layer-name prefix.
      **igum_kwargs: passed to ``igum_head`` (e.g. ``guidance="bilinear"``, ``offset_scale=...``);
        only with ``decoder="igum"``.
    """
    check_decoder("erfnet", decoder, igum_kwargs)
    features = erfnet_encoder(inputs, name=name)
    if decoder == "igum":
        return igum_head(features, num_classes, factor=8, name=f"{name}_igum", **igum_kwargs)
    return erfnet_decoder(features, num_classes, name=name)

