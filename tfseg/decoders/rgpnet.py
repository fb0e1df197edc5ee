"""RGPNet decoder (Arani et al., "RGPNet: a real-time general purpose semantic segmentation",
sec. 3.1).

An asymmetric encoder-decoder with an *adaptor* between them. Per level ``s`` of the encoder pyramid
(P2..P5, strides 4..32):

- transfer ``T_s`` (eq. 2): 1x1 convolution + BN + ReLU from the encoder's channels to the level's
  decoder width;
- adaptor (eq. 1): ``x_a^s = D(T(x_e^{s-1})) + T(x_e^s) + U(x_d^{s+1})`` with ``D`` a 3x3 stride-2
  convolution (+BN) from the finer level and ``U`` a stride-2 transposed convolution (+BN) from the
  coarser decoder output, both producing the level's width (P5 has no ``U``, P2 no ``D``);
- decoder block ``F`` (eq. 3): a basic residual block whose two 3x3 convolutions are one shared
  layer (same weights, separate BatchNorms): ``relu(x + bn2(conv(relu(bn1(conv(x))))))``;
- a 1x1 classifier on the P2 decoder output (stride 4) and a x4 bilinear upsampling to the input
  size.

Widths: the paper reduces ResNet50/101's 256/512/1024/2048 channels by four, i.e. 64/128/256/512;
these widths are the default for every encoder. With ResNet18 (whose levels already have
64..512 channels) they reproduce Table 2's 17.8M parameters for 65 classes; ``reduction=4`` instead
divides the encoder's own channel counts (ResNet18: 16..128). ``downsample=False`` drops the ``D``
connections (the ablation of Tables 6 and 7).
"""

from keras import layers

from tfseg.layers import BilinearUpsample
from tfseg.layers.blocks import bn_act, classifier, conv_bn_act
from tfseg.registry import DECODERS

LEVELS = (2, 3, 4, 5)
DEFAULT_WIDTHS = (64, 128, 256, 512)


def _resolve_widths(pyramid, widths, reduction):
    if reduction is not None:
        if widths is not None:
            raise ValueError("rgpnet: give either widths= or reduction=, not both")
        reduction = int(reduction)
        if reduction < 1:
            raise ValueError(f"rgpnet: reduction must be a positive integer, got {reduction}")
        return tuple(max(1, pyramid[f"P{s}"].shape[-1] // reduction) for s in LEVELS)
    widths = DEFAULT_WIDTHS if widths is None else tuple(widths)
    if len(widths) != len(LEVELS) or any(int(w) != w or w < 1 for w in widths):
        raise ValueError(
            f"rgpnet: widths must be 4 positive integers (levels P2..P5), got {tuple(widths)}"
        )
    return tuple(int(w) for w in widths)


def _downsample(x, filters, *, name):
    """D: 3x3 stride-2 convolution (symmetric padding, as PyTorch) + BN, no activation."""
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return conv_bn_act(x, filters, 3, strides=2, padding="valid", activation=None, name=name)


def _upsample(x, filters, kernel_size, *, name):
    """U: stride-2 transposed convolution + BN, no activation."""
    x = layers.Conv2DTranspose(
        filters,
        kernel_size,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_deconv",
    )(x)
    return bn_act(x, None, name=name)


def shared_residual_block(x, *, name):
    """F (eq. 3): basic residual block whose two 3x3 convolutions share one weight tensor."""
    conv = layers.Conv2D(
        x.shape[-1],
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )
    y = conv(x)
    y = bn_act(y, "relu", name=f"{name}_1")
    y = conv(y)
    y = bn_act(y, None, name=f"{name}_2")
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


@DECODERS.register("rgpnet", paper="RGPNet (Arani et al., 2021), adaptor decoder")
def rgpnet(
    pyramid,
    num_classes,
    *,
    name="rgpnet",
    widths=None,
    reduction=None,
    downsample=True,
    upsample_kernel=3,
):
    """RGPNet decoder + adaptor over pyramid levels P2..P5 (see the module docstring).

    Args:
      widths: decoder channels at P2..P5 (default 64, 128, 256, 512).
      reduction: instead of ``widths``, divide each level's encoder channels by this factor.
      downsample: keep the adaptor's ``D`` (stride-2 convolution) connections; ``False`` is the
        paper's "without DS" ablation.
      upsample_kernel: kernel size of the ``U`` transposed convolutions (3 as in the paper's
        parameter count; 4 = 2 x stride avoids uneven overlap and enables the sub-pixel export).
    """
    widths = _resolve_widths(pyramid, widths, reduction)
    if int(upsample_kernel) < 2:
        raise ValueError(f"rgpnet: upsample_kernel must be >= 2, got {upsample_kernel}")
    width = dict(zip(LEVELS, widths))
    transfer = {
        s: conv_bn_act(pyramid[f"P{s}"], width[s], 1, name=f"{name}_t{s}") for s in LEVELS
    }
    decoded = None
    for s in reversed(LEVELS):
        terms = [transfer[s]]
        if downsample and s > LEVELS[0]:
            terms.insert(0, _downsample(transfer[s - 1], width[s], name=f"{name}_d{s}"))
        if decoded is not None:
            terms.append(_upsample(decoded, width[s], int(upsample_kernel), name=f"{name}_u{s}"))
        x = terms[0] if len(terms) == 1 else layers.Add(name=f"{name}_a{s}")(terms)
        decoded = shared_residual_block(x, name=f"{name}_f{s}")
    x = classifier(decoded, num_classes, name=f"{name}_score")
    return BilinearUpsample(4, name=f"{name}_up_out")(x)
