"""Spatial Sampling Network (Mazzini & Schettini, SSN), semantic-segmentation part.

Encoder (ERFNet's layout, sec. 5 of the paper, with Lightweight Non-Bottleneck-1D modules, see
``tfseg.layers.nonbt``)::

    downsampler 3 -> 16             stride 2
    downsampler 16 -> 64            stride 4
    5 x LNB(64),  dilation 1,       dropout 0.03
    downsampler 64 -> 128           stride 8
    8 x LNB(128), dilations 2, 4, 8, 16, 2, 4, 8, 16, dropout 0.3

Decoder: none. The iGUM head (``tfseg.decoders.igum.igum_head``) predicts 1/8 logits and a 1/8
guidance-offset table from the 128-channel encoder output and samples the logits to full
resolution. Every convolution of the encoder is bias-free (BN folds into it at export); PReLU
everywhere.

Parameters with 19 classes: 1,273,316 (trainable); 14.56 GMACs = 29.11 GFLOPs at 512x1024
(``tfseg.flops.model_macs``; the paper reports neither; ERFNet: 2.06 M / 26.8 GMACs in
``reference/zoo_reference.csv``).

>>> model = tfseg.build_model("ssn", 19, input_shape=(512, 1024, 3))
"""

from tfseg.decoders.igum import igum_head
from tfseg.layers.nonbt import downsampler_block, lnb_module
from tfseg.registry import MODELS

# (dilation, dropout) of the LNB modules: first five 0.03, the rest 0.3 (paper sec. 6).
STAGE2 = tuple((1, 0.03) for _ in range(5))
STAGE3 = tuple((d, 0.3) for d in (2, 4, 8, 16, 2, 4, 8, 16))


def ssn_encoder(inputs, *, widths=(16, 64, 128), activation="prelu", name="ssn"):
    """SSN encoder: features at stride 8 with ``widths[2]`` channels. ``{name}_lnb{i}`` names the
    i-th LNB module (1-based, 13 in all)."""
    if len(widths) != 3:
        raise ValueError(f"ssn: widths must hold 3 channel counts, got {widths!r}")
    x = downsampler_block(inputs, int(widths[0]), activation=activation, name=f"{name}_down1")
    x = downsampler_block(x, int(widths[1]), activation=activation, name=f"{name}_down2")
    index = 0
    for dilation, dropout in STAGE2:
        index += 1
        x = lnb_module(
            x, dilation=dilation, dropout=dropout, activation=activation, name=f"{name}_lnb{index}"
        )
    x = downsampler_block(x, int(widths[2]), activation=activation, name=f"{name}_down3")
    for dilation, dropout in STAGE3:
        index += 1
        x = lnb_module(
            x, dilation=dilation, dropout=dropout, activation=activation, name=f"{name}_lnb{index}"
        )
    return x


@MODELS.register(
    "ssn", stride=8, paper="SSN (Ghazvini et al., 2019)", features={8: "ssn_lnb13_out"}
)
def ssn(
    inputs, num_classes, *, widths=(16, 64, 128), activation="prelu", name="ssn", **igum_kwargs
):
    """SSN for semantic segmentation: LNB encoder (stride 8) + iGUM as the whole decoder.

    Args:
      inputs: image tensor (B, H, W, 3), H and W multiples of 8.
      num_classes: logit channels.
      widths: channels after the three downsamplers (paper: 16, 64, 128).
      activation: ``"prelu"`` (paper) or a Keras activation name.
      **igum_kwargs: passed to ``igum_head`` (``offset_scale``, ``guidance="bilinear"`` for the
        plain-upsampling ablation, ``mode``).
    """
    features = ssn_encoder(inputs, widths=widths, activation=activation, name=name)
    return igum_head(features, num_classes, factor=8, name=f"{name}_igum", **igum_kwargs)

