"""LinkNet decoder in the layout of segmentation_models_pytorch (SMP 0.3.2 / 0.6.0, ``Linknet``).

Paper: A. Chaurasia, E. Culurciello, "LinkNet: Exploiting Encoder Representations for Efficient
Semantic Segmentation", VCIP 2017 (Chaurasia et al., 2017). Layout checked against SMP's
``decoders/linknet/decoder.py`` and ``model.py`` (v0.3.2; unchanged in 0.6.0). Registered as
``smp_linknet``: ``linknet`` is the reference zoo's complete network (``tfseg/models/linknet.py``),
whose decoder differs (3x3/2 transposed convolutions, a stride-4 decoder and a transposed-conv
head).

With ``c1..c5`` the channels of the encoder's P1..P5 (read from the tensors), five decoder blocks
``m -> n``: a 1x1 convolution to ``m / 4`` (no bias) + BN + ReLU, a 4x4/2 transposed convolution
(with a bias) to ``m / 4`` + BN + ReLU, a 1x1 convolution to ``n`` (no bias) + BN + ReLU:
``c5 -> c4`` (+ P4), ``c4 -> c3`` (+ P3), ``c3 -> c2`` (+ P2), ``c2 -> c1`` (+ P1) and
``c1 -> prefinal_channels`` (32), which reaches the input resolution with no skip; head: a 1x1
convolution to the classes (with a bias), no upsampling.

Departures from SMP (none changes a parameter or a MAC): BN epsilon 1e-3; ``he_normal``
initialisation. Keras' "same" padding of a 4x4/2 transposed convolution crops one pixel on each
side of the full output, as SMP's ``padding=1``.

Trainable parameters (19 classes) and conv GMACs at 1x3x512x1024 against SMP 0.3.2
(``docs/reference/smp_reference.csv``; tfseg's ``resnet50``/``resnet101`` with
``layout="torchvision"``, ``mobilenetv2`` with ``include_last_conv=True``):

=============  ==========  ==========  =======  ======
encoder        tfseg       SMP         GMACs    SMP
=============  ==========  ==========  =======  ======
resnet18       11,664,371  11,664,371  21.215   21.21
resnet50       31,178,371  31,178,371  58.460   58.46
resnet101      50,170,499  50,170,499  97.249   97.25
mobilenet_v2   4,320,453   4,320,453   4.752    4.75
=============  ==========  ==========  =======  ======

>>> model = tfseg.build_model("smp_linknet", 19, encoder="resnet18", input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers.blocks import bn_act
from tfseg.registry import DECODERS


def _conv(x, filters, kernel_size, *, use_batchnorm, transpose=False, name):
    """Convolution (or 4x4/2 transposed convolution) + BN (if ``use_batchnorm``) + ReLU.

    Bias as SMP: the 1x1 convolutions have one only without BN, the transposed ones always."""
    if transpose:
        x = layers.Conv2DTranspose(
            filters,
            kernel_size,
            strides=2,
            padding="same",
            kernel_initializer="he_normal",
            name=f"{name}_deconv",
        )(x)
    else:
        x = layers.Conv2D(
            filters,
            kernel_size,
            use_bias=not use_batchnorm,
            kernel_initializer="he_normal",
            name=f"{name}_conv",
        )(x)
    if use_batchnorm:
        return bn_act(x, "relu", name=name)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def decoder_block(x, filters, *, use_batchnorm=True, name):
    """SMP's LinkNet ``DecoderBlock``: 1x1 to a quarter of the channels, 4x4/2 transposed
    convolution, 1x1 to ``filters``."""
    hidden = max(1, x.shape[-1] // 4)
    x = _conv(x, hidden, 1, use_batchnorm=use_batchnorm, name=f"{name}_reduce")
    x = _conv(x, hidden, 4, use_batchnorm=use_batchnorm, transpose=True, name=f"{name}_up")
    return _conv(x, filters, 1, use_batchnorm=use_batchnorm, name=f"{name}_expand")


@DECODERS.register(
    "smp_linknet",
    encoder_output_stride=32,
    paper="LinkNet (Chaurasia et al., 2017), SMP layout",
    smp_reference="linknet",
)
def smp_linknet(
    pyramid, num_classes, *, prefinal_channels=32, use_batchnorm=True, name="smp_linknet"
):
    """SMP's LinkNet decoder over P1..P5 (see the module docstring); logits at the input
    resolution.

    Args:
      prefinal_channels: output width of the last decoder block (SMP's ``prefinal_channels``).
      use_batchnorm: BN after every convolution (SMP's ``decoder_use_batchnorm``); ``False``
        gives the 1x1 convolutions a bias instead.
    """
    x = pyramid["P5"]
    for level in (4, 3, 2, 1):
        skip = pyramid[f"P{level}"]
        x = decoder_block(
            x, skip.shape[-1], use_batchnorm=use_batchnorm, name=f"{name}_block{level + 1}"
        )
        x = layers.Add(name=f"{name}_link{level}")([x, skip])
    x = decoder_block(x, prefinal_channels, use_batchnorm=use_batchnorm, name=f"{name}_block1")
    return layers.Conv2D(num_classes, 1, kernel_initializer="he_normal", name=f"{name}_head")(x)
