"""SkipNet (FCN8s-style) decoder of RTSeg, sec. 4.1: fusion and upsampling in label space."""

from keras import layers

from tfseg.registry import DECODERS
from tfseg.layers.blocks import classifier
from tfseg.decoders._common import label_upsample


@DECODERS.register("skipnet")
def skipnet(pyramid, num_classes, *, name="skipnet"):
    """FCN8s-style decoding: 1x1 scores at P5, P4, P3; x2, x2 transposed convolutions with additive
    fusion; a final x8 transposed convolution to the input resolution. All upsampling happens on
    ``num_classes`` channels, which is why this decoder is the cheapest of the three."""
    score5 = classifier(pyramid["P5"], num_classes, name=f"{name}_score_p5")
    score4 = classifier(pyramid["P4"], num_classes, name=f"{name}_score_p4")
    score3 = classifier(pyramid["P3"], num_classes, name=f"{name}_score_p3")
    x = label_upsample(score5, num_classes, 2, name=f"{name}_up_p5")
    x = layers.Add(name=f"{name}_fuse_p4")([x, score4])
    x = label_upsample(x, num_classes, 2, name=f"{name}_up_p4")
    x = layers.Add(name=f"{name}_fuse_p3")([x, score3])
    return label_upsample(x, num_classes, 8, name=f"{name}_up_p3")
