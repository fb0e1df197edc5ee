"""UNet decoder of RTSeg, sec. 4.1: stage-wise upsampling in feature space with additive fusion."""

from keras import layers

from tfseg.decoders._common import feature_upsample, label_upsample
from tfseg.layers.blocks import classifier
from tfseg.registry import DECODERS


@DECODERS.register("unet", paper="RTSeg (Siam et al., 2018), UNet with additive skips")
def unet(pyramid, num_classes, *, name="unet"):
    """From P5, one x2 transposed convolution (+BN+ReLU) per encoder stage, each producing the
    channel count of the skip it is added to (P4, P3, P2, P1); a 1x1 classifier at stride 2 and a
    x2 transposed convolution in label space to the input resolution."""
    x = pyramid["P5"]
    for level in ("P4", "P3", "P2", "P1"):
        skip = pyramid[level]
        x = feature_upsample(x, skip.shape[-1], name=f"{name}_up_{level.lower()}")
        x = layers.Add(name=f"{name}_fuse_{level.lower()}")([x, skip])
    x = classifier(x, num_classes, name=f"{name}_score")
    return label_upsample(x, num_classes, 2, name=f"{name}_up_out")
