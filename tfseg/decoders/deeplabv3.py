"""DeepLabV3 decoder with segmentation_models_pytorch's layout.

Paper: "Rethinking Atrous Convolution for Semantic Image Segmentation" (Chen et al., 2017): an
encoder whose last two stages trade their downsampling for atrous convolution (output stride 8,
dilations 2 and 4), and Atrous Spatial Pyramid Pooling with image-level features on its deepest
map.

SMP layout (``DeepLabV3`` / ``DeepLabV3Decoder`` in SMP 0.3.2; 0.6.0 has the same parameters and
MACs), checked against SMP's ``decoders/deeplabv3/{decoder,model}.py`` and ``base/heads.py``:

- the encoder at output stride 8 (tfseg's ``StrideSchedule``: P4 and P5 at stride 8);
- ASPP on P5 (``tfseg.layers.aspp``): 1x1, three plain 3x3 atrous convolutions at rates 12/24/36
  and an image-pooling branch, 256 channels each with BN + ReLU, concatenated, 1x1 projection to
  256 + BN + ReLU, dropout 0.5;
- a 3x3 convolution 256 -> 256 without bias + BN + ReLU;
- the segmentation head: a 1x1 convolution to the classes (with bias) and a x8 bilinear upsampling
  to the input size.

Departures from SMP (tfseg's conventions, docs/zoo.md "Common to all networks"; none changes a
parameter or a MAC):

- the head's x8 upsampling is half-pixel bilinear (``BilinearUpsample``, ``align_corners=False``)
  instead of SMP's ``UpsamplingBilinear2d`` (``align_corners=True``, no constant-scale form for
  TensorRT 8.2);
- Keras "same" padding and BatchNorm epsilon 1e-3 (PyTorch 1e-5);
- SMP's ``upsampling`` and ``encoder_output_stride`` are not options: tfseg's decoders return the
  logits at the input size, and the encoder stride is fixed by the registration.

Trainable parameters (19 classes) and conv/matmul GMACs at 1x3x512x1024, tfseg against SMP 0.3.2
(``docs/reference/smp_reference.csv``; ``tests/decoders/test_smp_decoders.py``):

=============  ======================  ===================
encoder        params (SMP)            GMACs (SMP)
=============  ======================  ===================
resnet18       15,903,571 (15,903,571) 133.880 (133.88)
resnet50       39,638,355 (39,638,355) 327.154 (327.15)
resnet101      58,630,483 (58,630,483) 482.310 (482.31)
mobilenetv2    12,652,563 (12,652,563) 101.415 (101.41)
=============  ======================  ===================

resnet50 / resnet101 with ``layout="torchvision"`` and mobilenetv2 with ``include_last_conv=True``
(SMP's encoders); the counts are equal, and the MACs equal to the reference's two decimals.
"""

from keras import layers

from tfseg.layers import BilinearUpsample
from tfseg.layers.aspp import aspp
from tfseg.layers.blocks import conv_bn_act
from tfseg.registry import DECODERS


@DECODERS.register(
    "deeplabv3",
    encoder_output_stride=8,
    paper="DeepLabV3 (Chen et al., 2017), SMP layout",
    smp_reference="deeplabv3",
    contract_kwargs={"decoder_channels": 64},
)
def deeplabv3(
    pyramid,
    num_classes,
    *,
    decoder_channels=256,
    atrous_rates=(12, 24, 36),
    aspp_separable=False,
    aspp_dropout=0.5,
    name="deeplabv3",
):
    """DeepLabV3 over P5 at output stride 8 (see the module docstring).

    Args:
      decoder_channels: channels of the ASPP branches, its projection and the 3x3 convolution
        (SMP's ``decoder_channels``, 256).
      atrous_rates: the ASPP's atrous rates (SMP 0.6.0's ``decoder_atrous_rates``, 12/24/36).
      aspp_separable: depthwise-separable atrous branches (SMP 0.6.0's
        ``decoder_aspp_separable``, False).
      aspp_dropout: dropout after the ASPP projection (SMP 0.6.0's ``decoder_aspp_dropout``, 0.5).
    """
    x = aspp(
        pyramid["P5"],
        decoder_channels,
        rates=tuple(atrous_rates),
        separable=aspp_separable,
        dropout=aspp_dropout,
        name=f"{name}_aspp",
    )
    x = conv_bn_act(x, decoder_channels, 3, name=f"{name}_conv")
    x = layers.Conv2D(num_classes, 1, name=f"{name}_head")(x)
    return BilinearUpsample(8, name=f"{name}_head_up")(x)
