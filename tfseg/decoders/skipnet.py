"""SkipNet (FCN8s-style) decoder of RTSeg, sec. 4.1: fusion and upsampling in label space."""

from keras import layers

from tfseg.decoders._common import label_upsample
from tfseg.layers.blocks import classifier
from tfseg.registry import DECODERS

_LEVELS = ("P1", "P2", "P3", "P4")


@DECODERS.register("skipnet", paper="RTSeg (Siam et al., 2018), SkipNet / FCN8s")
def skipnet(pyramid, num_classes, *, finest="P3", fc_channels=0, name="skipnet"):
    """FCN8s-style decoding: 1x1 scores at P5, P4, P3; x2, x2 transposed convolutions with additive
    fusion; a final x8 transposed convolution to the input resolution. All upsampling happens on
    ``num_classes`` channels, which is why this decoder is the cheapest of the three.

    ``finest`` is the finest pyramid level fused. The default ``"P3"`` is RTSeg's SkipNet (FCN8s).
    ``"P2"`` adds one more x2 step with scores at stride 4 (FCN4s-style). The final upsampling is
    then x4, for a few MFLOPs more (on the quickstart: val mIoU 0.498 against 0.484 for P3).

    ``fc_channels`` > 0 adds FCN's fc6 / fc7 before the P5 score, as convolutions: 7x7 then 1x1,
    each with ``fc_channels`` outputs, a bias, ReLU and dropout 0.5 (Long et al., FCN, sec. 3.1;
    the RTSeg authors' ``models/encoders/VGG.py`` builds them on pool5 with VGG16's fc weights
    reshaped to 7x7x512x4096, or as 7x7 / 1x1 with 512 channels in its "reduced" VGG). The
    default 0 leaves them out (tfseg's SkipNet, 322.6 GFLOPs on VGG16 at 1024x512);
    ``fc_channels=4096`` is FCN8s-VGG16: 445.0 GFLOPs, against the 445.9 of RTSeg's Table 3
    (whose caption says 640x360, where this layout measures 195.6: the figure fits 1024x512).
    """
    if finest not in _LEVELS:
        raise ValueError(f"skipnet: finest must be one of {_LEVELS}, got {finest!r}")
    if int(fc_channels) < 0:
        raise ValueError(f"skipnet: fc_channels must be >= 0, got {fc_channels!r}")
    x = pyramid["P5"]
    for fc, kernel in (("fc6", 7), ("fc7", 1)) if fc_channels else ():
        x = layers.Conv2D(
            int(fc_channels), kernel, padding="same", activation="relu", name=f"{name}_{fc}"
        )(x)
        x = layers.Dropout(0.5, name=f"{name}_{fc}_dropout")(x)
    x = classifier(x, num_classes, name=f"{name}_score_p5")
    level = 5
    while f"P{level}" != finest:
        level -= 1
        x = label_upsample(x, num_classes, 2, name=f"{name}_up_p{level + 1}")
        score = classifier(pyramid[f"P{level}"], num_classes, name=f"{name}_score_p{level}")
        x = layers.Add(name=f"{name}_fuse_p{level}")([x, score])
    return label_upsample(x, num_classes, 2 ** level, name=f"{name}_up_p{level}")
