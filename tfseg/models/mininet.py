"""MiniNet (Alonso, Riazuelo and Murillo, ICRA 2019): a small encoder-decoder for semantic
keyframe selection in V-SLAM.

Paper: I. Alonso, L. Riazuelo, A. C. Murillo, "Enhancing V-SLAM Keyframe Selection with an
Efficient ConvNet for Semantic Analysis", ICRA 2019. The layout follows the PyTorch reference zoo
(``models/mininet.py`` of zh320/realtime-semantic-segmentation-pytorch), whose parameter count
tfseg matches; every activation is a SELU, as there.

Blocks:

- downsampling: a depthwise-separable convolution with stride 2 (3x3 depthwise + BN + SELU, 1x1
  convolution with bias + BN + SELU: the zoo's ``DSConvBNAct``, ``separable_bn_act``);
- convolution module (``conv_module``): factorised, dilated depthwise convolutions without
  normalisation: ``a = SELU(dw3x1(SELU(dw1x3(x))))``, ``b = dw1x3(SELU(dw3x1(a)))``, then
  ``SELU(dropout(a + b) + x)`` (dropout 0.25);
- upsampling: a 3x3/2 transposed convolution (with bias) + BN + SELU (``deconv_bn_act``).

Network (stride 64):

- encoder: four downsampling blocks to 12, 24, 48, 96 channels (d1..d4, strides 2..16);
- branch 1 at 1/16: four convolution modules of dilations 1, 2, 4, 8;
- branch 2: a downsampling block to 192 (1/32, d5), a module, a downsampling block to 386 (1/64),
  two modules, a transposed convolution to 192 (1/32), a module, concatenated with d5 and
  upsampled by a transposed convolution to 96 (1/16);
- decoder: ``concat(branch 1, branch 2, d4)`` (288), transposed convolution to 96 (1/8), a module,
  a 1x1 convolution (no bias) to 48, concatenated with d3 (the stride-8 features); transposed
  convolutions to 24 (1/4, after concatenation with d2), 12 (1/2, with d1) and the classes (1/1).

The 386 channels (not 384) are the reference's.

Departures from the reference (no parameters or MACs change):

- the last transposed convolution (to the classes) keeps its BN but not its SELU: the logits are
  linear (tfseg's convention; a SELU would bound every logit below by -1.76);
- transposed convolutions and strided depthwise convolutions pad "same" (Keras), which can shift
  the sampling grid by one pixel against PyTorch's symmetric padding; BN epsilon 1e-3.

Parameters with 19 classes: 1,408,224 (reference 1,408,224); 1.77 conv GMACs at 512x1024
(reference 1.77).

>>> model = tfseg.build_model("mininet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import act, deconv_bn_act, separable_bn_act
from tfseg.registry import MODELS

ACTIVATION = "selu"
BRANCH1_DILATIONS = (1, 2, 4, 8)
DROPOUT = 0.25


def _depthwise(x, kernel_size, dilation, *, name):
    """Depthwise convolution without bias or normalisation (dilated along its long axis)."""
    return layers.DepthwiseConv2D(
        kernel_size, padding="same", dilation_rate=dilation, use_bias=False, name=name
    )(x)


def conv_module(x, dilation=1, *, activation=ACTIVATION, dropout=DROPOUT, name):
    """MiniNet's residual module of factorised dilated depthwise convolutions (no BN)."""
    a = _depthwise(x, (1, 3), dilation, name=f"{name}_a_dw1x3")
    a = act(a, activation, name=f"{name}_a_act1")
    a = _depthwise(a, (3, 1), dilation, name=f"{name}_a_dw3x1")
    a = act(a, activation, name=f"{name}_a_act2")
    b = _depthwise(a, (3, 1), dilation, name=f"{name}_b_dw3x1")
    b = act(b, activation, name=f"{name}_b_act")
    b = _depthwise(b, (1, 3), dilation, name=f"{name}_b_dw1x3")
    y = layers.Add(name=f"{name}_sum")([a, b])
    y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = layers.Add(name=f"{name}_add")([y, x])
    return act(y, activation, name=f"{name}_out")


def _down(x, filters, *, activation, name):
    return separable_bn_act(x, filters, 3, strides=2, activation=activation, name=name)


def _up(x, filters, *, activation, name):
    return deconv_bn_act(
        x, filters, activation=activation, activation_name=f"{name}_act", name=name
    )


@MODELS.register(
    "mininet",
    stride=64,
    paper="MiniNet (Alonso et al., 2019)",
    reference="MiniNet",
    features={8: "mininet_up4_concat"},
)
def mininet(inputs, num_classes, *, activation=ACTIVATION, dropout=DROPOUT, name="mininet"):
    """MiniNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 64.
      num_classes: logit channels.
      activation: every activation (``tfseg.layers.act``'s argument; the reference's SELU).
      dropout: dropout rate inside the convolution modules.
      name: layer-name prefix.
    """
    kw = {"activation": activation}
    d1 = _down(inputs, 12, name=f"{name}_down1", **kw)
    d2 = _down(d1, 24, name=f"{name}_down2", **kw)
    d3 = _down(d2, 48, name=f"{name}_down3", **kw)
    d4 = _down(d3, 96, name=f"{name}_down4", **kw)

    b1 = d4
    for i, dilation in enumerate(BRANCH1_DILATIONS):
        b1 = conv_module(b1, dilation, dropout=dropout, name=f"{name}_branch1_m{i + 1}", **kw)

    d5 = _down(d4, 192, name=f"{name}_branch2_down", **kw)
    b2 = conv_module(d5, dropout=dropout, name=f"{name}_branch2_m1", **kw)
    b2 = _down(b2, 386, name=f"{name}_branch2_down2", **kw)
    b2 = conv_module(b2, dropout=dropout, name=f"{name}_branch2_m2", **kw)
    b2 = conv_module(b2, dropout=dropout, name=f"{name}_branch2_m3", **kw)
    b2 = _up(b2, 192, name=f"{name}_branch2_up1", **kw)
    b2 = conv_module(b2, dropout=dropout, name=f"{name}_branch2_m4", **kw)
    b2 = layers.Concatenate(name=f"{name}_branch2_concat")([b2, d5])
    b2 = _up(b2, 96, name=f"{name}_branch2_up2", **kw)

    x = layers.Concatenate(name=f"{name}_concat")([b1, b2, d4])
    x = _up(x, 96, name=f"{name}_up4", **kw)
    x = conv_module(x, dropout=dropout, name=f"{name}_up4_m", **kw)
    x = layers.Conv2D(
        48, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_up4_proj"
    )(x)
    x = layers.Concatenate(name=f"{name}_up4_concat")([x, d3])
    x = _up(x, 24, name=f"{name}_up3", **kw)
    x = layers.Concatenate(name=f"{name}_up3_concat")([x, d2])
    x = _up(x, 12, name=f"{name}_up2", **kw)
    x = layers.Concatenate(name=f"{name}_up2_concat")([x, d1])
    return _up(x, num_classes, activation=None, name=f"{name}_up1")
