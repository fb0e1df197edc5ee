"""U-Net (Ronneberger et al., 2015) in segmentation_models_pytorch's layout (SMP ``Unet``).

Paper: "U-Net: Convolutional Networks for Biomedical Image Segmentation" (MICCAI 2015): a
contracting path and an expanding path that, at each scale, upsamples and *concatenates* the
encoder's feature of that scale before two 3x3 convolutions.

SMP layout (checked against ``decoders/unet/decoder.py`` and ``model.py``, 0.3.x; 0.6.0 gives the
same parameters and MACs): encoder at output stride 32; from the deepest feature P5 (no centre
block for non-VGG encoders), five decoder blocks with 256/128/64/32/16 channels, each a nearest x2
upsampling, a concatenation with the encoder feature of the new scale (P4, P3, P2, P1; none for
the last block, which reaches the input resolution) and two 3x3 convolution-BN-ReLU; then a 3x3
convolution with bias to the classes at the input resolution (SMP's ``SegmentationHead``,
``kernel_size=3``, no upsampling, no activation).

Departures from SMP: none in parameters or MACs. Keras "same" padding (equal to SMP's padding 1 for
these stride-1 3x3 convolutions) and BN epsilon 1e-3 (PyTorch 1e-5), tfseg's conventions. SMP
switches the centre block on by itself for VGG encoders; a tfseg decoder does not know its
encoder's name, so ``center=True`` is an option here (off by default, also for ``vgg16``).
``decoder_use_batchnorm="inplace"`` (InPlaceABN) is not offered, nor SMP's ``encoder_depth`` 3 or 4
(``build_model`` builds and records all five pyramid levels; SMP's default is 5).

Against ``docs/reference/smp_reference.csv`` (trainable parameters for 19 classes; conv/matmul
GMACs at 1x3x512x1024; tfseg's ResNet-50/101 with ``layout="torchvision"``, MobileNetV2 with
``include_last_conv=True``):

================  ==============  ==============  =========  =========
encoder           params (tfseg)  params (SMP)    GMACs      SMP GMACs
================  ==============  ==============  =========  =========
resnet18          14,330,819      14,330,819      44.54      44.54
resnet50          32,523,715      32,523,715      86.42      86.42
resnet101         51,515,843      51,515,843      125.21     125.21
mobilenet_v2      6,631,555       6,631,555       28.12      28.12
================  ==============  ==============  =========  =========
"""

from tfseg.decoders._smp_blocks import (
    center_block,
    check_options,
    decoder_block,
    segmentation_head,
)
from tfseg.registry import DECODERS


@DECODERS.register(
    "smp_unet",
    encoder_output_stride=32,
    paper="U-Net (Ronneberger et al., 2015), SMP layout",
    smp_reference="unet",
)
def smp_unet(
    pyramid,
    num_classes,
    *,
    decoder_channels=(256, 128, 64, 32, 16),
    use_batchnorm=True,
    attention_type=None,
    center=False,
    name="smp_unet",
):
    """SMP's ``Unet`` decoder and head over ``pyramid`` (see the module docstring).

    Args:
      decoder_channels: output channels of the decoder blocks, deepest first (SMP's
        ``decoder_channels``), five.
      use_batchnorm: BN after each decoder convolution (SMP's ``decoder_use_batchnorm``); without
        it the convolutions have biases.
      attention_type: ``None`` or ``"scse"`` (SMP's ``decoder_attention_type``): spatial and
        channel squeeze-and-excitation on each block's concatenation and output.
      center: SMP's ``CenterBlock`` (two 3x3 convolution-BN-ReLU) on the deepest feature; SMP
        turns it on for VGG encoders.
    """
    channels = check_options("smp_unet", pyramid, decoder_channels, attention_type)
    x = pyramid["P5"]
    if center:
        x = center_block(x, use_batchnorm=use_batchnorm, name=f"{name}_center")
    for i, filters in enumerate(channels):
        level = 4 - i  # the skip at the block's output scale (P4..P1; none for the last block)
        skips = [pyramid[f"P{level}"]] if level >= 1 else []
        x = decoder_block(
            x,
            skips,
            filters,
            use_batchnorm=use_batchnorm,
            attention_type=attention_type,
            name=f"{name}_block{i + 1}",
        )
    return segmentation_head(x, num_classes, name=f"{name}_head")
