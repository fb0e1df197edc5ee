"""Improved Guided Upsampling Module (iGUM, SSN paper sec. 3.1) as a whole decoder, and the original
GUM (Mazzini, BMVC 2018) for comparison.

iGUM: two 1x1 branches on the low-resolution encoder output, class logits (C channels) and a
*Guidance Offsets Table* (2 channels, tanh into [-1, 1]). The table is upsampled bilinearly by the
factor ``f`` to the output resolution and shifts the regular sampling grid; the low-resolution
logits are sampled at the shifted positions (``GuidedUpsample``). Offsets are ``(dy, dx)`` in units
of ``offset_scale`` low-resolution (source) pixels, 1.0 by default: a boundary can move up to the
next low-resolution pixel, which is the range of the paper's Figure 3. The offset branch starts at
zero (zero kernel and bias), so an untrained iGUM is exactly bilinear upsampling.

GUM: the same sampler, but the offsets are predicted at full resolution by a guidance branch that
reads higher-resolution encoder features (here P1, stride 2) fused with the deep features.

The logits are sampled rather than softmax probabilities (the paper's wording): the model contract
is logits, and shifting the sampling points moves the argmax boundary in the same way. Semantic
outputs are sampled bilinearly at training *and* test time (the paper switches to nearest only for
instance ids, which the instance module does with ``tfseg.layers.sampler.sample(..., "nearest")``).
"""

from keras import layers

from tfseg.layers.blocks import conv_bn_act
from tfseg.layers.resize import BilinearUpsample
from tfseg.layers.sampler import GuidedUpsample
from tfseg.registry import DECODERS

GUIDANCE = ("igum", "gum", "bilinear")


def _offsets(x, *, kernel_size=1, name):
    """2-channel guidance offsets (dy, dx) in [-1, 1]; zero-initialised (starts as plain
    upsampling)."""
    x = layers.Conv2D(
        2,
        kernel_size,
        padding="same",
        kernel_initializer="zeros",
        bias_initializer="zeros",
        name=f"{name}_conv",
    )(x)
    return layers.Activation("tanh", name=f"{name}_tanh")(x)


def igum_head(
    features,
    num_classes,
    *,
    factor,
    name,
    guidance="igum",
    guide=None,
    guide_factor=None,
    guide_filters=16,
    offset_scale=1.0,
    mode="bilinear",
):
    """Logits upsampled by ``factor`` from ``features`` with a guided sampler.

    Args:
      features: (B, h, w, F) low-resolution features (any h, w).
      num_classes: number of logit channels.
      factor: static integer upsampling factor; the output is (B, factor*h, factor*w, num_classes).
      name: prefix of the layer names.
      guidance: ``"igum"`` (low-resolution offset table, bilinearly upsampled; the SSN decoder),
        ``"gum"`` (offsets predicted at full resolution by a guidance branch over ``guide``), or
        ``"bilinear"`` (no offsets: plain half-pixel bilinear upsampling of the logits, a baseline).
      guide: for ``"gum"`` only: higher-resolution features at ``1/guide_factor`` of the output
        resolution (e.g. encoder P1 with ``guide_factor=2``).
      guide_factor: integer, divides ``factor``; output resolution / ``guide`` resolution.
      guide_filters: width of the GUM guidance branch.
      offset_scale: one offset unit in low-resolution pixels (see ``GuidedUpsample``).
      mode: sampler mode, ``"bilinear"`` (default, train and test) or ``"nearest"``.

    >>> logits = igum_head(pyramid["P5"], 19, factor=8, name="igum")
    """
    if guidance not in GUIDANCE:
        raise ValueError(f"{name}: guidance must be one of {GUIDANCE}, got {guidance!r}")
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"{name}: factor must be a positive integer, got {factor}")
    logits = layers.Conv2D(num_classes, 1, padding="same", name=f"{name}_logits")(features)
    if guidance == "bilinear":
        return BilinearUpsample(factor, name=f"{name}_up")(logits)
    if guidance == "igum":
        offsets = _offsets(features, name=f"{name}_offsets")
        offsets = BilinearUpsample(factor, name=f"{name}_offsets_up")(offsets)
    else:
        if guide is None or guide_factor is None:
            raise ValueError(f"{name}: guidance='gum' needs guide= features and guide_factor=")
        guide_factor = int(guide_factor)
        if guide_factor < 1 or factor % guide_factor:
            raise ValueError(
                f"{name}: guide_factor {guide_factor} must be a positive divisor of factor {factor}"
            )
        g = conv_bn_act(guide, guide_filters, 3, name=f"{name}_guide_low")
        deep = conv_bn_act(features, guide_filters, 1, name=f"{name}_guide_deep")
        deep = BilinearUpsample(factor // guide_factor, name=f"{name}_guide_deep_up")(deep)
        g = layers.Concatenate(name=f"{name}_guide_concat")([g, deep])
        g = conv_bn_act(g, guide_filters, 3, name=f"{name}_guide_fuse")
        g = BilinearUpsample(guide_factor, name=f"{name}_guide_up")(g)
        offsets = _offsets(g, kernel_size=3, name=f"{name}_offsets")
    return GuidedUpsample(offset_scale, mode, name=f"{name}_sampler")([logits, offsets])


@DECODERS.register(
    "igum", encoder_output_stride=8, paper="SSN (Ghazvini et al., 2019), improved guided upsampling"
)
def igum(pyramid, num_classes, *, name="igum", offset_scale=1.0):
    """SSN's decoder-free head: iGUM on the encoder's stride-8 output (P5 of a dilated encoder),
    logits and a guidance-offset table at 1/8, sampled to full resolution."""
    return igum_head(pyramid["P5"], num_classes, factor=8, name=name, offset_scale=offset_scale)




@DECODERS.register("gum", encoder_output_stride=8, paper="GUN (Mazzini, 2018), guided upsampling")
def gum(pyramid, num_classes, *, name="gum", offset_scale=1.0, guide_filters=16):
    """Original GUM: logits at 1/8 (P5 of a dilated encoder); guidance offsets predicted at full
    resolution by a branch over P1 (stride 2) fused with the deep features."""
    return igum_head(
        pyramid["P5"],
        num_classes,
        factor=8,
        name=name,
        guidance="gum",
        guide=pyramid["P1"],
        guide_factor=2,
        guide_filters=guide_filters,
        offset_scale=offset_scale,
    )


