"""PSPNet decoder with segmentation_models_pytorch's layout (``smp.PSPNet``).

Paper: H. Zhao, J. Shi, X. Qi, X. Wang, J. Jia, "Pyramid Scene Parsing Network", CVPR 2017
(arXiv:1612.01105): a pyramid pooling module (average pooling to 1x1, 2x2, 3x3 and 6x6 bins, a 1x1
convolution to ``C / 4`` channels per bin, upsampled back and concatenated with the feature map)
on the encoder's last feature map, then a convolution to the classes.

SMP layout (checked against ``segmentation_models_pytorch/decoders/pspnet/{decoder,model}.py``,
``base/modules.py`` and ``base/heads.py``, SMP 0.3.2; 0.6.0 has the same parameters):

- ``encoder_depth=3``: only the encoder's stem and its first two stages run, and the decoder reads
  their output, P3 (stride 8, not dilated: ResNet-18 128 channels, MobileNetV2 32). The decoder is
  registered with ``encoder_depth=3``, so ``build_model`` hands it P1..P3 only and the Keras model
  holds the encoder layers up to P3 (SMP's module also holds the unused deeper stages, which its
  forward never runs);
- per bin ``s`` of 1/2/3/6: adaptive average pooling to ``s x s`` (``AdaptiveAvgPool2D``, PyTorch's
  bins exactly), SMP's ``Conv2dReLU`` 1x1 to ``C // 4`` channels (BN without conv bias, except for
  bin 1, where SMP leaves BN out and the convolution has a bias), resized back to P3's size; the
  four maps and P3 concatenated (``2C`` channels, SMP's order: the bins, then P3);
- ``Conv2dReLU`` 1x1 to ``out_channels`` (512) with BN, ``Dropout2d(0.2)``
  (``SpatialDropout2D``);
- head: 3x3 convolution (with bias) to the classes and a x8 bilinear upsampling to the input size.

Departures from SMP (none changes a parameter or a MAC):

- bilinear resizing is half-pixel (``align_corners=False``, tfseg's convention everywhere) where SMP
  uses ``align_corners=True`` (the bins' ``F.interpolate`` and the head's ``UpsamplingBilinear2d``):
  the bins go back through ``ResizeLike`` (bin 1: a broadcast with constant shapes), the x8 through
  ``BilinearUpsample(8)``; both export with constant shapes;
- BatchNorm epsilon 1e-3 (SMP's PyTorch default 1e-5), Keras "same" padding;
- SMP's ``encoder_depth`` (3..5) and ``upsampling`` are not options: other depths need another
  upsampling factor, and tfseg decoders always return logits at the input size.

Trainable parameters for 19 classes and conv/matmul GMACs at 1x3x512x1024, against SMP 0.3.2 less
the parameters of the encoder stages its forward never runs (``docs/reference/smp_reference.csv``):

- ResNet-18: 919,347 params (SMP 11,412,787 - 10,493,440 = 919,347), 12.15 GMACs (SMP 12.15);
- ResNet-50: 2,320,851 (SMP 24,383,955 - 22,063,104 = 2,320,851), 23.97 (23.97);
- ResNet-101: 2,320,851 (SMP 43,376,083 - 41,055,232 = 2,320,851), 23.97 (23.97);
- MobileNetV2: 177,931 (SMP 2,346,315 - 2,168,384 = 177,931), 2.17 (2.17; SMP 0.6.0 counts 3.18
  because its MobileNetV2 also runs ``features[7:14]`` and drops the result).
"""

from keras import layers

from tfseg.decoders._smp_blocks import conv_relu
from tfseg.layers import AdaptiveAvgPool2D, BilinearUpsample, ResizeLike
from tfseg.registry import DECODERS

ENCODER_DEPTH = 3


def psp_module(x, *, bins=(1, 2, 3, 6), use_batchnorm=True, name):
    """SMP's ``PSPModule``: per bin, adaptive pooling + ``Conv2dReLU`` 1x1 to ``C // len(bins)``
    (no BN for bin 1) resized back to ``x``'s size; the maps then ``x``, concatenated."""
    hidden = x.shape[-1] // len(bins)
    branches = []
    for s in bins:
        y = AdaptiveAvgPool2D(s, name=f"{name}_pool{s}")(x)
        y = conv_relu(y, hidden, 1, use_batchnorm=use_batchnorm and s != 1, name=f"{name}_bin{s}")
        branches.append(ResizeLike(name=f"{name}_up{s}")([y, x]))
    return layers.Concatenate(name=f"{name}_concat")([*branches, x])


@DECODERS.register(
    "pspnet",
    encoder_depth=ENCODER_DEPTH,
    paper="PSPNet (Zhao et al., 2017), SMP layout",
    smp_reference="pspnet",
)
def pspnet(
    pyramid,
    num_classes,
    *,
    out_channels=512,
    bins=(1, 2, 3, 6),
    use_batchnorm=True,
    dropout=0.2,
    name="pspnet",
):
    """SMP's PSPNet on P3 (stride 8; see the module docstring).

    Args:
      out_channels: channels of the 1x1 convolution after the pyramid pooling (SMP's
        ``psp_out_channels``, 512).
      bins: pooled grid sizes of the pyramid pooling module (SMP: 1, 2, 3, 6).
      use_batchnorm: BatchNorm in the ``Conv2dReLU`` blocks (SMP's ``psp_use_batchnorm``).
      dropout: ``SpatialDropout2D`` rate before the head (SMP's ``psp_dropout``, 0.2).
    """
    x = pyramid[f"P{ENCODER_DEPTH}"]
    x = psp_module(
        x, bins=tuple(int(b) for b in bins), use_batchnorm=use_batchnorm, name=f"{name}_psp"
    )
    x = conv_relu(x, int(out_channels), 1, use_batchnorm=use_batchnorm, name=f"{name}_fuse")
    if dropout:
        x = layers.SpatialDropout2D(float(dropout), name=f"{name}_dropout")(x)
    x = layers.Conv2D(num_classes, 3, padding="same", name=f"{name}_head")(x)
    return BilinearUpsample(2**ENCODER_DEPTH, name=f"{name}_up_out")(x)
