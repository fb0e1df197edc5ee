"""SQNet (Treml et al., 2016): a SqueezeNet encoder with parallel dilated convolutions and a
refinement decoder, for driving scenes.

Paper: M. Treml, J. Arjona-Medina, T. Unterthiner, R. Durgesh, F. Friedmann, P. Schuberth,
A. Mayr, M. Heusel, M. Hofmarcher, M. Widrich, B. Nessler, S. Hochreiter, "Speeding up Semantic
Segmentation for Autonomous Driving", NIPS 2016 Workshop on Machine Learning for Intelligent
Transportation Systems. Layout as in the PyTorch reference zoo (``models/sqnet.py`` of
zh320/realtime-semantic-segmentation-pytorch), whose parameter count tfseg matches; every
convolution is followed by BatchNorm and ELU (the paper's activation):

- encoder (stride 16, SqueezeNet 1.1): a 3x3/2 convolution to 64 channels (stride 2, kept for the
  decoder), then three times a 3x3/2 max-pool and fire modules: 2 fire modules (squeeze 16,
  expand 64 + 64: 128 channels, stride 4), 2 (squeeze 32, expand 128 + 128: 256 channels,
  stride 8), 4 (squeeze 48, 48, 64, 64; expand 192 + 192, 192 + 192, 256 + 256, 256 + 256: 512
  channels, stride 16);
- a fire module: 1x1 squeeze convolution, then a 1x1 and a 3x3 expand convolution of the squeezed
  map, concatenated;
- parallel dilated convolution: four 3x3 convolutions of the encoder output to 128 channels,
  dilations 1, 2, 4, 8, summed;
- decoder: three times a 3x3/2 transposed convolution (with bias, + BN + ELU) followed by a bypass
  refinement module that joins the encoder map of the same stride: stride 8 (256-channel skip,
  to 128), stride 4 (128-channel skip, to 64), stride 2 (64-channel skip, to the classes); a
  refinement module is a 3x3 convolution of the skip (same width), concatenated with the upsampled
  map, and a 3x3 convolution of the concatenation;
- a last 3x3/2 transposed convolution (with bias) + BN from the classes to the classes, at the
  input resolution (the logits).

Departures from the reference:

- the logits are linear: the reference ends with the last transposed convolution + BN + ELU,
  which bounds every logit below by -1; tfseg keeps the transposed convolution and the BN and
  drops the ELU (no parameters change);
- the reference's transposed convolutions (3x3, stride 2, padding 1, output padding 1) are Keras
  "same" transposed convolutions here, and its 3x3/2 max-pools (padding 1) pool "same": both have
  the same shapes, parameters and MACs, but their windows sit one pixel from PyTorch's;
- BatchNorm epsilon 1e-3 (tfseg's) instead of 1e-5.

Parameters with 19 classes: 4,808,976 (reference 4,808,976); 36.79 conv GMACs at 512x1024
(reference 36.79).

>>> model = tfseg.build_model("sqnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import act, conv_bn_act, deconv_bn_act
from tfseg.registry import MODELS

# (squeeze, expand) channels of the fire modules after each of the three max-pools; a fire module
# outputs 2 x expand channels (1x1 and 3x3 expand convolutions).
FIRE_STAGES = (
    ((16, 64), (16, 64)),
    ((32, 128), (32, 128)),
    ((48, 192), (48, 192), (64, 256), (64, 256)),
)
PDC_DILATIONS = (1, 2, 4, 8)


def _conv_bn_act(x, filters, kernel_size, *, activation, name, **conv_kw):
    """Convolution (no bias) + BN (``{name}_conv``, ``{name}_bn``) + ``act`` (``{name}_act``)."""
    x = conv_bn_act(x, filters, kernel_size, activation=None, name=name, **conv_kw)
    return act(x, activation, name=f"{name}_act")


def fire_module(x, squeeze, expand, *, activation="elu", name):
    """SqueezeNet's fire module: 1x1 squeeze, then 1x1 and 3x3 expand convolutions, concatenated
    (``2 * expand`` channels); every convolution + BN + activation."""
    x = _conv_bn_act(x, squeeze, 1, activation=activation, name=f"{name}_squeeze")
    e1 = _conv_bn_act(x, expand, 1, activation=activation, name=f"{name}_expand1")
    e3 = _conv_bn_act(x, expand, 3, activation=activation, name=f"{name}_expand3")
    return layers.Concatenate(name=f"{name}_concat")([e1, e3])


def parallel_dilated_conv(x, filters, dilations=PDC_DILATIONS, *, activation="elu", name):
    """3x3 convolutions (+ BN + activation) of ``x`` at each dilation, summed."""
    branches = [
        _conv_bn_act(x, filters, 3, dilation_rate=d, activation=activation, name=f"{name}_d{d}")
        for d in dilations
    ]
    return layers.Add(name=f"{name}_sum")(branches)


def bypass_refinement(low, high, filters, *, activation="elu", name):
    """A 3x3 convolution of the skip ``low`` (same width), concatenated with ``high``, and a 3x3
    convolution of the concatenation to ``filters``; each + BN + activation."""
    low = _conv_bn_act(low, low.shape[-1], 3, activation=activation, name=f"{name}_low")
    x = layers.Concatenate(name=f"{name}_concat")([low, high])
    return _conv_bn_act(x, filters, 3, activation=activation, name=f"{name}_fuse")


@MODELS.register(
    "sqnet",
    stride=16,
    paper="SQNet (Treml et al., 2016)",
    reference="SQNet",
    features={8: "sqnet_refine1_fuse_act"},
)
def sqnet(inputs, num_classes, *, activation="elu", name="sqnet"):
    """SQNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 16.
      num_classes: logit channels.
      activation: the activation after every convolution but the last (the reference's
        ``act_type``; ``act``'s names, "prelu" has one slope per layer).
      name: layer-name prefix.
    """
    x = _conv_bn_act(inputs, 64, 3, strides=2, activation=activation, name=f"{name}_conv")
    skips = [x]
    for stage, fires in enumerate(FIRE_STAGES, start=1):
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool{stage}")(x)
        for i, (squeeze, expand) in enumerate(fires, start=1):
            x = fire_module(
                x, squeeze, expand, activation=activation, name=f"{name}_fire{stage}_{i}"
            )
        skips.append(x)
    x = parallel_dilated_conv(x, 128, activation=activation, name=f"{name}_pdc")

    # Decoder: x2 up, then refine with the encoder map of that stride (1/8, 1/4, 1/2).
    for i, filters in enumerate((128, 64, num_classes), start=1):
        x = deconv_bn_act(x, x.shape[-1], activation=activation, name=f"{name}_up{i}")
        x = bypass_refinement(
            skips[-1 - i], x, filters, activation=activation, name=f"{name}_refine{i}"
        )
    return deconv_bn_act(x, num_classes, activation=None, name=f"{name}_up4")
