"""DeepLabV3+ decoder with segmentation_models_pytorch's layout.

Paper: "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation" (Chen
et al., 2018): DeepLabV3's ASPP on an output-stride-16 encoder, with depthwise-separable atrous
convolutions, and a light decoder that upsamples it x4 and refines it with the stride-4 encoder
feature (reduced to 48 channels by a 1x1 convolution, sec. 3.1 and Table 1).

SMP layout (``DeepLabV3Plus`` / ``DeepLabV3PlusDecoder`` in SMP 0.3.2; 0.6.0 has the same
parameters and MACs), checked against SMP's ``decoders/deeplabv3/{decoder,model}.py`` and
``base/heads.py``:

- the encoder at output stride 16 (tfseg's ``StrideSchedule``: P5 at stride 16, last stage
  dilated 2);
- ASPP on P5 (``tfseg.layers.aspp``) with depthwise-separable 3x3 branches at rates 12/24/36
  (SMP's default; the paper uses 6/12/18 at output stride 16), 256 channels, image pooling, 1x1
  projection + BN + ReLU, dropout 0.5; then a separable 3x3 convolution 256 + BN + ReLU;
- bilinear x4 to stride 4; P2 through a 1x1 convolution to 48 channels + BN + ReLU; concatenation
  (ASPP first) and a separable 3x3 convolution to 256 + BN + ReLU;
- the segmentation head: a 1x1 convolution to the classes (with bias) and a x4 bilinear upsampling
  to the input size.

A separable convolution is SMP's: bias-free depthwise + bias-free pointwise, then one BN + ReLU
(``tfseg.layers.aspp.separable_conv_bn_act``).

Departures from SMP (tfseg's conventions, docs/zoo.md "Common to all networks"; none changes a
parameter or a MAC):

- both x4 upsamplings are half-pixel bilinear (``BilinearUpsample``, ``align_corners=False``)
  instead of SMP's ``UpsamplingBilinear2d`` (``align_corners=True``, no constant-scale form for
  TensorRT 8.2);
- Keras "same" padding and BatchNorm epsilon 1e-3 (PyTorch 1e-5);
- SMP's ``encoder_output_stride=8`` variant and ``upsampling`` are not options: the encoder
  stride is fixed by the registration (16) and tfseg's decoders return logits at the input size.

Trainable parameters (19 classes) and conv/matmul GMACs at 1x3x512x1024, tfseg against SMP 0.3.2
(``docs/reference/smp_reference.csv``; ``tests/decoders/test_smp_decoders.py``):

=============  ======================  =================
encoder        params (SMP)            GMACs (SMP)
=============  ======================  =================
resnet18       12,333,923 (12,333,923) 36.647 (36.65)
resnet50       26,682,211 (26,682,211) 73.273 (73.27)
resnet101      45,674,339 (45,674,339) 112.062 (112.06)
mobilenetv2     4,383,139 (4,383,139)  12.002 (12.00)
=============  ======================  =================

resnet50 / resnet101 with ``layout="torchvision"`` and mobilenetv2 with ``include_last_conv=True``
(SMP's encoders); the counts are equal, and the MACs equal to the reference's two decimals. With
tfseg's default (keras-applications) resnet101: 45,727,011 params, 110.451 GMACs.
"""

from keras import layers

from tfseg.layers import BilinearUpsample
from tfseg.layers.aspp import aspp, separable_conv_bn_act
from tfseg.layers.blocks import conv_bn_act
from tfseg.registry import DECODERS


@DECODERS.register(
    "deeplabv3plus",
    encoder_output_stride=16,
    paper="DeepLabV3+ (Chen et al., 2018), SMP layout",
    smp_reference="deeplabv3p",
    contract_kwargs={"decoder_channels": 64},
)
def deeplabv3plus(
    pyramid,
    num_classes,
    *,
    decoder_channels=256,
    atrous_rates=(12, 24, 36),
    aspp_separable=True,
    aspp_dropout=0.5,
    highres_channels=48,
    name="deeplabv3plus",
):
    """DeepLabV3+ over P5 (stride 16) and P2 (stride 4); see the module docstring.

    Args:
      decoder_channels: channels of the ASPP, its separable convolution and the fusion convolution
        (SMP's ``decoder_channels``, 256).
      atrous_rates: the ASPP's atrous rates (SMP's ``decoder_atrous_rates``, 12/24/36).
      aspp_separable: depthwise-separable atrous branches (SMP 0.6.0's ``decoder_aspp_separable``,
        True).
      aspp_dropout: dropout after the ASPP projection (SMP 0.6.0's ``decoder_aspp_dropout``, 0.5).
      highres_channels: channels the stride-4 feature is reduced to (48, fixed in SMP).
    """
    x = aspp(
        pyramid["P5"],
        decoder_channels,
        rates=tuple(atrous_rates),
        separable=aspp_separable,
        dropout=aspp_dropout,
        name=f"{name}_aspp",
    )
    x = separable_conv_bn_act(x, decoder_channels, 3, name=f"{name}_aspp_sep")
    x = BilinearUpsample(4, name=f"{name}_up")(x)
    skip = conv_bn_act(pyramid["P2"], highres_channels, 1, name=f"{name}_highres")
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = separable_conv_bn_act(x, decoder_channels, 3, name=f"{name}_fuse")
    x = layers.Conv2D(num_classes, 1, name=f"{name}_head")(x)
    return BilinearUpsample(4, name=f"{name}_head_up")(x)
