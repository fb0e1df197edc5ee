"""PAN decoder in the layout of segmentation_models_pytorch (SMP 0.3.2 / 0.6.0, ``smp.PAN``).

Paper: H. Li, P. Xiong, J. An, L. Wang, "Pyramid Attention Network for Semantic Segmentation",
BMVC 2018 (Li et al., 2018): a Feature Pyramid Attention (FPA) module on the deepest feature and
Global Attention Upsample (GAU) modules on the way up. Layout checked against SMP's
``decoders/pan/decoder.py`` and ``model.py`` (v0.3.2; unchanged in 0.6.0). The encoder runs at
output stride 16 (its last stage dilated 2), so P4 and P5 are both at stride 16. Every convolution
of the decoder has a bias and is followed by BatchNorm (SMP's ``ConvBnRelu``); ``D`` below is
``decoder_channels`` (32):

- FPA on P5: ``mid`` = 1x1 conv to ``D`` + BN + ReLU; a global branch (global average pooling,
  1x1 conv to ``D`` + BN + ReLU, broadcast back); a one-channel pyramid: 2x2 max pool + 7x7 conv
  (to 1 channel) -> ``x1``, 2x2 max pool + 5x5 conv -> ``x2``, 2x2 max pool + two 3x3 convs ->
  ``x3`` (each + BN + ReLU); ``x = up(x3) + conv5x5(x2)``, ``x = up(x) + conv7x7(x1)``,
  ``up(x) * mid + global``;
- GAU(low, high), for (P4, FPA), (P3, GAU4), (P2, GAU3): ``up(high) + conv3x3(low) * sigmoid(
  BN(conv1x1(gap(high))))`` (the 3x3 to ``D`` + BN + ReLU); ``up`` is a bilinear x2 between
  strides (none from FPA's stride 16 to P4's);
- head: a 3x3 convolution to the classes (with a bias) at stride 4 and a bilinear x4.

Departures from SMP (none changes a parameter or a MAC):

- bilinear upsamplings are half-pixel (``BilinearUpsample`` between the strides, ``ResizeLike``
  inside FPA, whose maps need not halve evenly), where SMP uses ``align_corners=True``: tfseg's
  convention, exportable with constant scales;
- FPA's 2x2 max pools pad "same" (round up): identical to SMP's (rounding down) when the stride-16
  map is a multiple of 8 (input sides multiples of 128, e.g. 512x1024), and defined on any input
  that is a multiple of 32 (SMP's pools reach an empty map below 128 pixels: the contract's 64x96);
- BN epsilon 1e-3, Keras' "same" padding, ``he_normal`` initialisation.

Trainable parameters (19 classes) and conv GMACs at 1x3x512x1024 against SMP 0.3.2
(``docs/reference/smp_reference.csv``; tfseg's ``resnet50``/``resnet101`` with
``layout="torchvision"``, ``mobilenetv2`` with ``include_last_conv=True``):

=============  ==========  ==========  =======  ======
encoder        tfseg       SMP         GMACs    SMP
=============  ==========  ==========  =======  ======
resnet18       11,372,858  11,372,858  33.117   33.12
resnet50       24,265,018  24,265,018  69.445   69.45
resnet101      43,257,146  43,257,146  108.234  108.23
mobilenet_v2   2,421,754   2,421,754   6.253    6.25
=============  ==========  ==========  =======  ======

>>> model = tfseg.build_model("pan", 19, encoder="resnet18", input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, ResizeLike
from tfseg.layers.blocks import bn_act
from tfseg.registry import DECODERS

OUTPUT_STRIDE = 16
UPSCALE_MODES = ("bilinear", "nearest")


def _stride(level):
    """Stride of pyramid level ``level`` (2..5) at the decoder's encoder output stride."""
    return min(2**level, OUTPUT_STRIDE)


def conv_bn_relu(x, filters, kernel_size, *, relu=True, name):
    """SMP's ``ConvBnRelu``: convolution with a bias + BN (+ ReLU)."""
    x = layers.Conv2D(
        filters, kernel_size, padding="same", kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)
    return bn_act(x, "relu" if relu else None, name=name)


def _global_pool(x, *, name):
    return layers.GlobalAveragePooling2D(keepdims=True, name=name)(x)


def _max_pool(x, *, name):
    return layers.MaxPooling2D(2, strides=2, padding="same", name=name)(x)


def feature_pyramid_attention(x, filters, *, name):
    """FPA on ``x`` (see the module docstring): ``filters`` channels at ``x``'s size."""
    glob = conv_bn_relu(_global_pool(x, name=f"{name}_gap"), filters, 1, name=f"{name}_global")
    glob = ResizeLike(name=f"{name}_global_up")([glob, x])
    mid = conv_bn_relu(x, filters, 1, name=f"{name}_mid")
    x1 = conv_bn_relu(_max_pool(x, name=f"{name}_down1_pool"), 1, 7, name=f"{name}_down1")
    x2 = conv_bn_relu(_max_pool(x1, name=f"{name}_down2_pool"), 1, 5, name=f"{name}_down2")
    x3 = _max_pool(x2, name=f"{name}_down3_pool")
    x3 = conv_bn_relu(x3, 1, 3, name=f"{name}_down3a")
    x3 = conv_bn_relu(x3, 1, 3, name=f"{name}_down3b")
    y = ResizeLike(name=f"{name}_up3")([x3, x2])
    y = layers.Add(name=f"{name}_add2")([conv_bn_relu(x2, 1, 5, name=f"{name}_conv2"), y])
    y = ResizeLike(name=f"{name}_up2")([y, x1])
    y = layers.Add(name=f"{name}_add1")([y, conv_bn_relu(x1, 1, 7, name=f"{name}_conv1")])
    y = ResizeLike(name=f"{name}_up1")([y, x])
    y = layers.Multiply(name=f"{name}_attend")([y, mid])
    return layers.Add(name=f"{name}_out")([y, glob])


def global_attention_upsample(low, high, factor, *, upscale_mode="bilinear", name):
    """GAU: ``up(high) + conv3x3(low) * sigmoid(BN(conv1x1(gap(high))))``; ``factor`` is the
    stride ratio of ``high`` to ``low`` (1 or 2)."""
    filters = high.shape[-1]
    weights = conv_bn_relu(
        _global_pool(high, name=f"{name}_gap"), filters, 1, relu=False, name=f"{name}_gate"
    )
    weights = layers.Activation("sigmoid", name=f"{name}_sigmoid")(weights)
    x = conv_bn_relu(low, filters, 3, name=f"{name}_low")
    x = layers.Multiply(name=f"{name}_attend")([x, weights])
    if factor > 1:
        if upscale_mode == "bilinear":
            high = BilinearUpsample(factor, name=f"{name}_up")(high)
        else:
            high = layers.UpSampling2D(factor, name=f"{name}_up")(high)
    return layers.Add(name=f"{name}_out")([high, x])


@DECODERS.register(
    "pan",
    encoder_output_stride=OUTPUT_STRIDE,
    paper="PAN (Li et al., 2018), SMP layout",
    smp_reference="pan",
)
def pan(pyramid, num_classes, *, decoder_channels=32, upscale_mode="bilinear", name="pan"):
    """SMP's PAN over P2..P5 at output stride 16 (see the module docstring); logits at the input
    resolution.

    Args:
      decoder_channels: width of FPA and the GAUs (SMP's ``decoder_channels``).
      upscale_mode: ``"bilinear"`` (half-pixel) or ``"nearest"`` x2 in the GAUs (SMP's
        ``upscale_mode``; FPA always resizes bilinearly, as SMP's).
    """
    if upscale_mode not in UPSCALE_MODES:
        raise ValueError(
            f"{name}: upscale_mode must be one of {UPSCALE_MODES}, got {upscale_mode!r}"
        )
    x = feature_pyramid_attention(pyramid["P5"], decoder_channels, name=f"{name}_fpa")
    for level in (4, 3, 2):
        x = global_attention_upsample(
            pyramid[f"P{level}"],
            x,
            _stride(level + 1) // _stride(level),
            upscale_mode=upscale_mode,
            name=f"{name}_gau{level}",
        )
    x = layers.Conv2D(
        num_classes, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_head"
    )(x)
    return BilinearUpsample(_stride(2), name=f"{name}_head_up")(x)
