"""Blocks shared by the SMP-layout decoders (``smp_unet``, ``unetplusplus``, ``manet``, ``pspnet``).

Checked against segmentation_models_pytorch (``decoders/unet/decoder.py``,
``decoders/unetplusplus/decoder.py``, ``base/modules.py``, ``base/heads.py``; 0.3.x): both U-Nets
use the same decoder block (nearest x2 upsampling, concatenation with the skips, two 3x3
convolution-BN-ReLU, optional scSE attention), the same optional centre block and the same 3x3
segmentation head.
"""

from keras import layers

from tfseg.layers.blocks import conv_bn_act

ATTENTIONS = (None, "scse")


def check_options(decoder, pyramid, decoder_channels, attention_type):
    """Validate the options the two U-Nets share; returns ``decoder_channels`` as ints."""
    channels = tuple(int(c) for c in decoder_channels)
    if len(channels) != 5 or any(c < 1 for c in channels):
        raise ValueError(
            f"{decoder}: decoder_channels must be 5 positive integers (one per decoder block, "
            f"deepest first), got {tuple(decoder_channels)}"
        )
    if attention_type not in ATTENTIONS:
        raise ValueError(
            f"{decoder}: attention_type must be one of {ATTENTIONS}, got {attention_type!r}"
        )
    missing = [f"P{k}" for k in range(1, 6) if f"P{k}" not in pyramid]
    if missing:
        raise ValueError(f"{decoder}: the encoder pyramid lacks {', '.join(missing)}")
    return channels


def conv_relu(x, filters, kernel_size=3, *, use_batchnorm=True, name):
    """SMP's ``Conv2dReLU``: convolution without bias + BN + ReLU, or with bias + ReLU when
    ``use_batchnorm`` is False. Layers ``{name}_conv``, ``{name}_bn``, ``{name}_relu``. Kaiming
    uniform initialisation (fan in), as SMP's ``initialize_decoder``; Keras "same" padding (SMP pads
    ``kernel_size // 2``: the same for odd kernels)."""
    if use_batchnorm:
        return conv_bn_act(x, filters, kernel_size, kernel_initializer="he_uniform", name=name)
    x = layers.Conv2D(
        filters, kernel_size, padding="same", kernel_initializer="he_uniform", name=f"{name}_conv"
    )(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def scse(x, *, reduction=16, name):
    """SMP's ``SCSEModule`` (Roy et al., 2018): ``x * cSE(x) + x * sSE(x)``; cSE is a global
    average, 1x1 convolution to ``C // reduction`` + ReLU, 1x1 convolution back to ``C`` + sigmoid,
    sSE a 1x1 convolution to one channel + sigmoid. Both gates broadcast by multiplication (no
    resize)."""
    channels = x.shape[-1]
    c = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_cse_pool")(x)
    c = layers.Conv2D(max(1, channels // reduction), 1, activation="relu", name=f"{name}_cse_1")(c)
    c = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_cse_2")(c)
    s = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_sse")(x)
    xc = layers.Multiply(name=f"{name}_cse_mul")([x, c])
    xs = layers.Multiply(name=f"{name}_sse_mul")([x, s])
    return layers.Add(name=f"{name}_add")([xc, xs])


def decoder_block(x, skips, filters, *, use_batchnorm=True, attention_type=None, name):
    """SMP's U-Net ``DecoderBlock``: nearest x2 upsampling of ``x``, concatenation ``[x, *skips]``
    (channel order as SMP's), attention on the concatenation (only where there are skips), two 3x3
    ``conv_relu`` to ``filters`` channels, attention on the output."""
    x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
    if skips:
        x = layers.Concatenate(name=f"{name}_concat")([x, *skips])
        if attention_type == "scse":
            x = scse(x, name=f"{name}_att1")
    x = conv_relu(x, filters, use_batchnorm=use_batchnorm, name=f"{name}_conv1")
    x = conv_relu(x, filters, use_batchnorm=use_batchnorm, name=f"{name}_conv2")
    if attention_type == "scse":
        x = scse(x, name=f"{name}_att2")
    return x


def center_block(x, *, use_batchnorm=True, name):
    """SMP's ``CenterBlock`` (on for VGG encoders there): two 3x3 ``conv_relu`` keeping the deepest
    feature's channel count."""
    filters = x.shape[-1]
    x = conv_relu(x, filters, use_batchnorm=use_batchnorm, name=f"{name}_conv1")
    return conv_relu(x, filters, use_batchnorm=use_batchnorm, name=f"{name}_conv2")


def segmentation_head(x, num_classes, *, name):
    """SMP's ``SegmentationHead`` with its U-Net settings: a 3x3 convolution with bias to the
    classes, no upsampling, no activation (linear logits); Xavier-uniform weights and zero bias, as
    SMP's ``initialize_head``."""
    return layers.Conv2D(
        num_classes, 3, padding="same", kernel_initializer="glorot_uniform", name=name
    )(x)
