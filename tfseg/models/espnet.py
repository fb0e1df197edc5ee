"""ESPNet (Mehta et al., ECCV 2018): Efficient Spatial Pyramid of dilated convolutions.

ESP module (K = 5): *reduce* with 1x1 convolutions (stride 2 when downsampling) to ``d = out // K``
channels (and ``out - 4d`` for the first branch when ``out`` is not a multiple of K),
*split-transform*
with five 3x3 convolutions (+ BN + PReLU) of dilation 1, 2, 4, 8, 16, *merge* with hierarchical
feature fusion (each branch adds the previous sum; the first branch joins the sums only when the
widths agree), concatenate, and add the input when the shape is kept.

Network (the full "ESPNet", not ESPNet-A/B/C):

- level 1: 3x3/2 convolution to 16 (+ BN + PReLU), concatenated with the image at 1/2 (19 channels);
- level 2: downsampling ESP to 64, alpha2 = 2 ESP modules, concatenated with the level's first
  output and the image at 1/4 (131 channels);
- level 3: downsampling ESP to 128, alpha3 = 8 ESP modules, concatenated with the first output (256
  channels, stride 8);
- original decoder: 1x1 to the classes, then twice: x2 transposed convolution (+ BN + PReLU),
  concatenated with a 1x1 projection of the level-2 (then level-1) features, ESP module; and a last
  x2 transposed convolution to the logits.

The image pyramid uses 2x2 average pooling (the bilinear half-size image is the same thing; Mehta's
code uses 3x3/2 average pooling). The layout follows the PyTorch reference zoo, whose count tfseg
matches: 377,137 there, 377,101 here with 19 classes (this file leaves the last transposed
convolution linear, where the zoo adds BN + ReLU on the logits; PReLUs have one slope per layer).

``decoder="igum"`` replaces the decoder (the 1x1 classifier included) by the SSN iGUM head on the
256-channel stride-8 level-3 output (``tfseg.decoders.igum.igum_head``).

>>> model = tfseg.build_model("espnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.decoders.igum import igum_head
from tfseg.layers.blocks import deconv_bn_act
from tfseg.models.enet import _conv_bn  # conv + BN (eps 1e-3) + PReLU (one slope, 0.25)
from tfseg.models.erfnet import check_decoder
from tfseg.registry import MODELS

K = 5


def _deconv_bn(x, filters, *, name):
    return deconv_bn_act(
        x, filters, activation="prelu", kernel_initializer="glorot_uniform", name=name
    )


def esp_module(x, filters, *, strides=1, name):
    """Reduce -> split -> transform (dilations 1..16) -> hierarchical fusion -> concat (-> + x)."""
    if filters < K:
        raise ValueError(f"{name}: an ESP module needs at least {K} filters, got {filters}")
    n = filters // K
    n1 = filters - (K - 1) * n

    def reduce(width, suffix):
        return layers.Conv2D(
            width, 1, strides=strides, use_bias=False, name=f"{name}_reduce{suffix}"
        )(x)

    if n1 == n:
        reduced = reduce(n, "")
        sources = [reduced] * K
    else:
        first = reduce(n1, "_first")
        rest = reduce(n, "")
        sources = [first] + [rest] * (K - 1)
    branches = []
    for k, src in enumerate(sources):
        width = n1 if k == 0 else n
        branches.append(_conv_bn(src, width, 3, dilation=2**k, name=f"{name}_d{2**k}"))
    fused = [branches[0]]
    start = 1 if n1 == n else 2
    if start == 2:
        fused.append(branches[1])
    for k in range(start, K):
        fused.append(layers.Add(name=f"{name}_hff{k}")([fused[-1], branches[k]]))
    y = layers.Concatenate(name=f"{name}_concat")(fused)
    if strides == 1 and x.shape[-1] == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def espnet_encoder(inputs, *, alpha2=2, alpha3=8, name="espnet"):
    """Levels 1-3: ``(level-3 output: 256 ch at stride 8, level-1 (19 ch), level-2 (131 ch))``."""
    half = layers.AveragePooling2D(2, name=f"{name}_image_half")(inputs)
    quarter = layers.AveragePooling2D(2, name=f"{name}_image_quarter")(half)

    x = _conv_bn(inputs, 16, 3, strides=2, name=f"{name}_l1")
    level1 = layers.Concatenate(name=f"{name}_l1_concat")([x, half])

    first = esp_module(level1, 64, strides=2, name=f"{name}_l2_0")
    x = first
    for i in range(alpha2):
        x = esp_module(x, 64, name=f"{name}_l2_{i + 1}")
    level2 = layers.Concatenate(name=f"{name}_l2_concat")([x, first, quarter])

    first = esp_module(level2, 128, strides=2, name=f"{name}_l3_0")
    x = first
    for i in range(alpha3):
        x = esp_module(x, 128, name=f"{name}_l3_{i + 1}")
    level3 = layers.Concatenate(name=f"{name}_l3_concat")([x, first])
    return level3, level1, level2


def espnet_decoder(level3, level1, level2, num_classes, *, name="espnet"):
    """ESPNet's decoder: classes at 1/8, fused with levels 2 and 1 on the way up."""
    x = _conv_bn(level3, num_classes, 1, name=f"{name}_classifier")
    x = _deconv_bn(x, num_classes, name=f"{name}_up3")
    skip = _conv_bn(level2, num_classes, 1, name=f"{name}_skip2")
    x = layers.Concatenate(name=f"{name}_cat2")([x, skip])
    x = esp_module(x, num_classes, name=f"{name}_fuse2")
    x = _deconv_bn(x, num_classes, name=f"{name}_up2")
    skip = _conv_bn(level1, num_classes, 1, name=f"{name}_skip1")
    x = layers.Concatenate(name=f"{name}_cat1")([x, skip])
    x = esp_module(x, num_classes, name=f"{name}_fuse1")
    return layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same", name=f"{name}_up1")(x)


@MODELS.register(
    "espnet",
    stride=8,
    paper="ESPNet (Mehta et al., 2018)",
    features={8: "espnet_l3_concat"},
    reference="ESPNet",
    contract_kwargs={"alpha2": 1, "alpha3": 2},  # the contract test: fewer ESP modules, same layers
)
def espnet(
    inputs, num_classes, *, decoder="original", alpha2=2, alpha3=8, name="espnet", **igum_kwargs
):
    """ESPNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels (at least 5: the decoder's ESP modules split them in 5 branches).
      decoder: ``"original"`` (ESPNet's decoder) or ``"igum"`` (SSN iGUM head on level 3).
      alpha2, alpha3: ESP modules in levels 2 and 3 (paper: 2 and 8).
      name: layer-name prefix.
      **igum_kwargs: passed to ``igum_head``; only with ``decoder="igum"``.
    """
    check_decoder("espnet", decoder, igum_kwargs)
    if decoder == "original" and num_classes < K:
        raise ValueError(
            f"espnet: the original decoder needs num_classes >= {K}, got {num_classes} "
            "(use decoder='igum')"
        )
    level3, level1, level2 = espnet_encoder(
        inputs, alpha2=int(alpha2), alpha3=int(alpha3), name=name
    )
    if decoder == "igum":
        return igum_head(level3, num_classes, factor=8, name=f"{name}_igum", **igum_kwargs)
    return espnet_decoder(level3, level1, level2, num_classes, name=name)

