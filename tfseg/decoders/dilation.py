"""Dilation frontend of RTSeg, sec. 4.1: output stride 8, a 1x1 classifier and a x8 upsampling.

Two layouts, chosen with ``variant``:

- ``"paper"`` (default): the layout the RTSeg authors measured for Table 1. Their released
  ``models/dilation_mobilenet.py`` (MSiam/TFSegmentation) keeps MobileNet up to the stride-8
  feature (block 5, 256 channels) and replaces the two stride-2 depthwise-separable blocks that
  follow by *full* 3x3 atrous convolutions: 256->512 at rate 2, then five 512 separable blocks at
  stride 8, 512->1024 at rate 4, one 1024 separable block; then a 1x1 score layer and a x8
  transposed convolution (kernel 16). The separable blocks there are not dilated; only the two
  full convolutions are (as the paper's text says: the strided layers "are replaced with two
  dilated convolutions with dilation factor 2 and 4"). Those layers are new, not ImageNet ones.
  Here the decoder builds that context itself on P3, the encoder's stride-8 level, so it
  fits any encoder: it is registered with an ``encoder_setup`` that asks ``build_model`` for
  P1..P3 of the plain (stride-32) encoder, which leaves out the encoder's deeper layers (the
  ``--encoder_weights`` loader then loads the layers up to P3, as for SMP's PSPNet). The widths
  are 2x and 4x the channels of P3 (512 / 1024 on MobileNet, as released; 480 / 960 on
  ShuffleNet g=3 and 256 / 512 on ResNet18, each its own stage widths).
  MobileNet at 1024x512 (20 classes, as Table 1): 142.06 GFLOPs against the paper's 150; the
  authors' graph also runs MobileNet's unused stride-32 tail (7.63), and 142.06 + 7.63 = 149.7
  (``tests/models/test_models.py``).
- ``"light"``: the encoder itself runs at output stride 8 (its downsamplings to 16 and 32 become
  stride 1, the layers after them dilated 2 and 4: ``StrideSchedule``), a 1x1 classifier on P5
  and the x8 transposed convolution. This is what the released ``dilation_shufflenet.py`` does
  for ShuffleNet (its stages 3 and 4 rerun at stride 1 with dilated depthwise convolutions) and
  what ``dilation`` was before: 56.3 GFLOPs on MobileNet, 16.6 on ShuffleNet.

ShuffleNet: neither layout gives the paper's 71.6 GFLOPs. The released ShuffleNet code is the
light layout (16.6), while the released MobileNet code is the heavy one; the two files do not
follow one rule. The MobileNet rule (this ``"paper"`` variant) on ShuffleNet gives 122.24; the
text's rule with ShuffleNet units between the two full atrous convolutions would give about 100
(estimated, not built). tfseg applies the MobileNet rule to every encoder (one decoder, one
rule) and keeps the light layout as ``variant="light"``; ``docs/results.md`` lists the figures.
"""

from tfseg.decoders._common import label_upsample
from tfseg.layers.blocks import classifier, conv_bn_act, separable_bn_act
from tfseg.registry import DECODERS

VARIANTS = ("paper", "light")
# Separable blocks after the rate-2 and after the rate-4 convolution (MobileNet blocks 7-11, 13).
_BLOCKS = (5, 1)


def _check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"dilation: variant must be one of {VARIANTS}, got {variant!r}")
    return variant


def encoder_setup(variant="paper"):
    """What ``dilation(variant=...)`` asks of its encoder: ``(output_stride, depth)``; depth 3
    means P1..P3 only (``build_model`` reads this hook of the registration)."""
    if _check_variant(variant) == "light":
        return 8, None
    return 32, 3


@DECODERS.register(
    "dilation",
    encoder_output_stride=8,
    encoder_setup=encoder_setup,
    paper="RTSeg (Siam et al., 2018), Dilation-8 frontend",
)
def dilation(pyramid, num_classes, *, variant="paper", name="dilation"):
    """Dilation frontend: ``variant="paper"`` builds the authors' stride-8 atrous context on P3;
    ``"light"`` scores P5 of the dilated encoder. Both end with a 1x1 classifier and a x8
    transposed convolution (kernel 16, bilinear init). See the module docstring."""
    _check_variant(variant)
    if variant == "light":
        x = pyramid["P5"]
    else:
        x = pyramid["P3"]
        width = int(x.shape[-1])
        for i, (rate, blocks) in enumerate(zip((2, 4), _BLOCKS), start=1):
            width *= 2
            x = conv_bn_act(x, width, 3, dilation_rate=rate, name=f"{name}_atrous{i}")
            for j in range(1, blocks + 1):
                x = separable_bn_act(
                    x, width, pointwise_bias=False, name=f"{name}_context{i}_{j}"
                )
    x = classifier(x, num_classes, name=f"{name}_score")
    return label_upsample(x, num_classes, 8, name=f"{name}_up")
