"""Dilation frontend of RTSeg, sec. 4.1: an output-stride-8 encoder and a x8 upsampling."""

from tfseg.decoders._common import label_upsample
from tfseg.layers.blocks import classifier
from tfseg.registry import DECODERS


@DECODERS.register(
    "dilation", encoder_output_stride=8, paper="RTSeg (Siam et al., 2018), Dilation-8 frontend"
)
def dilation(pyramid, num_classes, *, name="dilation"):
    """The encoder runs with output stride 8 (its last two downsamplings replaced by dilation 2 and
    4, see ``build_model``); a 1x1 classifier on P5 (stride 8) and a x8 transposed convolution."""
    x = classifier(pyramid["P5"], num_classes, name=f"{name}_score")
    return label_upsample(x, num_classes, 8, name=f"{name}_up")

