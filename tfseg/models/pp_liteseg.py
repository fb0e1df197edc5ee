"""PP-LiteSeg (Peng et al., 2022): a light decoder (SPPM, FLD, UAFM) on an STDC encoder (STDC1).

Paper: J. Peng, Y. Liu, S. Tang, Y. Hao, L. Chu, G. Chen, Z. Wu, Z. Chen, Z. Yu, Y. Du, Q. Dang,
B. Lai, Q. Liu, X. Hu, D. Yu, Y. Ma, "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model",
arXiv:2204.02681. Layout as in the PyTorch reference zoo (zh320, ``models/pp_liteseg.py``), whose
parameter count tfseg matches:

- encoder: ``stdc1`` (``encoder="stdc2"`` for PP-LiteSeg-B; ``tfseg/encoders/stdc.py``), its P3,
  P4, P5 (strides 8, 16, 32);
- simple pyramid pooling module (SPPM) on P5: adaptive average pooling to 1x1, 2x2 and 4x4, each
  through a 1x1 convolution + BN + ReLU to a quarter of P5's channels, resized back to P5's size
  and summed, then a 3x3 convolution (no bias, no BN) to the decoder's first width;
- flexible lightweight decoder (FLD), decoder widths (32, 64, 128) on STDC1 and (64, 96, 128) on
  STDC2 (``decoder_channels``): a 3x3 convolution + BN + ReLU; a unified attention fusion module
  (UAFM) with P4; a 3x3 convolution + BN + ReLU to the second width; a UAFM with P3; a 3x3
  convolution + BN + ReLU to the third width;
- UAFM (spatial attention, the reference's default ``fusion_type``): the low-level feature through
  a 1x1 convolution (no bias, no BN) to the high-level one's width, the high-level one upsampled
  x2; ``alpha = sigmoid(conv1x1([mean_c(up), max_c(up), mean_c(low), max_c(low)]))`` (4 -> 1, no
  bias); ``alpha * up + (1 - alpha) * low``;
- a 3x3 convolution + BN to the classes at stride 8 and x8 bilinear upsampling.

Departures from the reference:

- the reference's last layer is a ConvBNAct (3x3 convolution + BN + ReLU) to the classes; tfseg
  drops the ReLU (linear logits, as every tfseg network) and keeps the BN (same parameters);
- upsampling is half-pixel bilinear (``BilinearUpsample`` by 2 and 8, ``ResizeLike`` for the
  SPPM's pooled maps), not ``align_corners=True``; the adaptive pooling is PyTorch's, exactly
  (``AdaptiveAvgPool2D``).

Parameters with 19 classes: PP-LiteSeg-stdc1 6,326,670 (reference 6,326,670), PP-LiteSeg-stdc2
10,556,942 (reference 10,556,942). Conv GMACs at 512x1024: 8.88 and 16.01 (reference 8.88,
16.01).

>>> model = tfseg.build_model("pp_liteseg", 19, input_shape=(512, 1024, 3))
>>> model_b = tfseg.build_model("pp_liteseg", 19, encoder="stdc2", input_shape=(512, 1024, 3))
"""

from keras import layers, ops

from tfseg.encoders import encoder_pyramid
from tfseg.layers import AdaptiveAvgPool2D, BilinearUpsample, ResizeLike, conv_bn_act
from tfseg.layers.blocks import keras_serializable
from tfseg.registry import MODELS

#: The reference's decoder widths by encoder (``decoder_channel_hub``); others get STDC1's.
DECODER_CHANNELS = {"stdc1": (32, 64, 128), "stdc2": (64, 96, 128)}
SPPM_BINS = (1, 2, 4)


@keras_serializable
class ChannelMeanMax(layers.Layer):
    """Mean and max over the channel axis: ``(B, H, W, C) -> (B, H, W, 2)``."""

    def call(self, x):
        return ops.concatenate(
            [ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)

    def get_config(self):
        return super().get_config()  # no options of its own


def _conv(x, filters, kernel_size, *, name):
    """A convolution without bias and without BN (the reference's ``conv1x1`` / ``conv3x3``)."""
    return layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)


def sppm(x, filters, *, bins=SPPM_BINS, name):
    """Simple pyramid pooling module: pooled branches (1x1 conv + BN + ReLU to ``C / 4``) resized
    back and summed, then a 3x3 convolution (no bias, no BN) to ``filters``."""
    hidden = x.shape[-1] // 4
    branches = []
    for b in bins:
        y = AdaptiveAvgPool2D(b, name=f"{name}_pool{b}")(x)
        y = conv_bn_act(y, hidden, 1, name=f"{name}_branch{b}")
        branches.append(ResizeLike(name=f"{name}_up{b}")([y, x]))
    y = layers.Add(name=f"{name}_sum")(branches)
    return _conv(y, filters, 3, name=f"{name}_out")


def uafm(high, low, *, name):
    """Unified attention fusion module with spatial attention: ``high`` upsampled x2, ``low``
    projected to ``high``'s width; ``alpha * up + (1 - alpha) * low``. Output ``{name}_out``."""
    low = _conv(low, high.shape[-1], 1, name=f"{name}_proj")
    up = BilinearUpsample(2, name=f"{name}_up")(high)
    stats = layers.Concatenate(name=f"{name}_stats")(
        [ChannelMeanMax(name=f"{name}_up_stats")(up), ChannelMeanMax(name=f"{name}_low_stats")(low)]
    )
    alpha = _conv(stats, 1, 1, name=f"{name}_attn")
    alpha = layers.Activation("sigmoid", name=f"{name}_attn_sigmoid")(alpha)
    diff = layers.Subtract(name=f"{name}_diff")([up, low])
    return layers.Add(name=f"{name}_out")([low, layers.Multiply(name=f"{name}_mul")([diff, alpha])])


@MODELS.register(
    "pp_liteseg",
    stride=32,
    paper="PP-LiteSeg (Peng et al., 2022)",
    reference="PP-LiteSeg-stdc1",
    default_encoder="stdc1",
    features={8: "pp_liteseg_stage8_relu"},
)
def pp_liteseg(
    inputs, num_classes, *, encoder, encoder_kwargs=None, decoder_channels=None, name="pp_liteseg"
):
    """PP-LiteSeg logits at the input resolution. ``decoder_channels``: the FLD's three widths
    (default: the reference's for the encoder, ``DECODER_CHANNELS``)."""
    c6, c7, c8 = decoder_channels or DECODER_CHANNELS.get(encoder, DECODER_CHANNELS["stdc1"])
    pyramid = encoder_pyramid(inputs, encoder, output_stride=32, encoder_kwargs=encoder_kwargs)
    x = sppm(pyramid["P5"], c6, name=f"{name}_sppm")
    x = conv_bn_act(x, c6, 3, name=f"{name}_stage6")
    x = uafm(x, pyramid["P4"], name=f"{name}_fusion1")
    x = conv_bn_act(x, c7, 3, name=f"{name}_stage7")
    x = uafm(x, pyramid["P3"], name=f"{name}_fusion2")
    x = conv_bn_act(x, c8, 3, name=f"{name}_stage8")
    x = conv_bn_act(x, num_classes, 3, activation=None, name=f"{name}_head")
    return BilinearUpsample(8, name=f"{name}_up")(x)
