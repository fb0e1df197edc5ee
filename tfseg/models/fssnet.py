"""FSSNet (Zhang et al., 2018): fast semantic segmentation for scene perception.

Paper: X. Zhang, Z. Chen, Q. M. J. Wu, L. Cai, D. Lu, X. Li, "Fast Semantic Segmentation for Scene
Perception", IEEE Transactions on Industrial Informatics, 2018 (online; vol. 15, 2019). An
asymmetric, ENet-like encoder-decoder of residual bottlenecks, trained from scratch. Layout as in
the PyTorch reference zoo (zh320), whose parameter count tfseg matches; every activation is a PReLU
with one slope per layer (PyTorch's ``nn.PReLU()``):

- initial block (stride 2): a 3x3/2 convolution to 13 channels (+ BN + PReLU) concatenated with a
  3x3/2 max-pool of the image (16 channels);
- downsampling block to 64 channels (stride 4), 4 factorised blocks; downsampling block to 128
  channels (stride 8), 6 dilated blocks (dilations 2, 5, 9, 2, 5, 9): the paper's continuous
  factorised and continuous dilated stages;
- decoder: upsampling block to 64 channels (stride 4) + 2 dilated blocks (dilation 1), upsampling
  block to 16 channels (stride 2) + 2 dilated blocks, and a 3x3/2 transposed convolution to the
  classes (+ BN + PReLU, as the reference).

Blocks (residual branches squeeze to a quarter of the channels; "+" is followed by a PReLU):

- downsampling: ``[2x2/2 conv, 3x3 conv, 1x1 conv]`` + ``[3x3/2 max-pool, 1x1 conv]``;
- factorised: ``[1x1, 1x3, 3x1, 1x1]`` + input;
- dilated: ``[1x1, 3x3 dilated, 1x1]`` + input;
- upsampling: ``[1x1, 3x3/2 transposed conv, 1x1]`` + x2-upsampled ``1x1 conv(input + the
  encoder output of the same stride)`` (the skip connection from the matching downsampling block).

Departures from the reference (no parameters or MACs are involved):

- its x2 bilinear upsampling in the upsampling block uses ``align_corners=True``; here it is
  half-pixel bilinear (``BilinearUpsample``, exportable with dynamic sizes);
- initialisation: the BN closing the branch of each factorised and dilated block starts with a zero
  scale (zero-init residual, Goyal et al. 2017), so each block starts as the identity. With tfseg's
  He-normal convolutions (PyTorch's default initialisation has a sixth of their variance) the 14
  residual additions otherwise grow the untrained network's inference-mode logits to a standard
  deviation of ~1000 (measured on N(0, 1) images), where float32 rounding alone breaks the 1e-4
  export-parity check; with it the logits have a standard deviation of ~7.

Parameters with 19 classes: 199,690 (reference 199,690); 2.925 conv GMACs at 512x1024 (reference
2.93).

>>> model = tfseg.build_model("fssnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, conv_bn_act
from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, act, deconv_bn_act
from tfseg.layers.downsample import conv_pool_downsample
from tfseg.registry import MODELS

ENCODER_DILATIONS = (2, 5, 9, 2, 5, 9)


def _conv_bn(x, filters, kernel, *, activation, name, **conv_kw):
    x = conv_bn_act(x, filters, kernel, activation=None, name=name, **conv_kw)
    return act(x, activation, name=f"{name}_act")


def _conv_bn_last(x, filters, kernel, *, name):
    """1x1 convolution + BN closing a residual branch; the BN's scale starts at zero, so the block
    starts as the identity (see the module docstring)."""
    x = layers.Conv2D(
        filters, kernel, use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)
    return layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, gamma_initializer="zeros", name=f"{name}_bn"
    )(x)


def _deconv_bn(x, filters, *, activation, name):
    """3x3/2 transposed convolution (with bias, as PyTorch's default) + BN + activation."""
    return deconv_bn_act(
        x, filters, activation=activation, activation_name=f"{name}_act", name=name
    )


def _residual_out(branch, shortcut, activation, name):
    x = layers.Add(name=f"{name}_add")([branch, shortcut])
    return act(x, activation, name=f"{name}_out")


def initial_block(x, filters=16, *, activation="prelu", name):
    """3x3/2 convolution to ``filters - 3`` channels (+ BN + act) || 3x3/2 max-pool of the image."""
    return conv_pool_downsample(
        x, filters, activation=activation, activation_name=f"{name}_conv_act", name=name
    )


def downsampling_block(x, filters, *, activation="prelu", name):
    """Squeezed 2x2/2 -> 3x3 -> 1x1 branch + (3x3/2 max-pool -> 1x1) shortcut, added, act."""
    hidden = filters // 4
    y = _conv_bn(x, hidden, 2, strides=2, activation=activation, name=f"{name}_down")
    y = _conv_bn(y, hidden, 3, activation=activation, name=f"{name}_conv")
    y = _conv_bn(y, filters, 1, activation=None, name=f"{name}_expand")
    shortcut = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    shortcut = _conv_bn(shortcut, filters, 1, activation=None, name=f"{name}_shortcut")
    return _residual_out(y, shortcut, activation, name)


def factorized_block(x, *, activation="prelu", name):
    """Residual ``1x1 -> 1x3 -> 3x1 -> 1x1`` bottleneck at a quarter of the channels."""
    channels = x.shape[-1]
    hidden = channels // 4
    y = _conv_bn(x, hidden, 1, activation=activation, name=f"{name}_reduce")
    y = _conv_bn(y, hidden, (1, 3), activation=None, name=f"{name}_conv1x3")
    y = _conv_bn(y, hidden, (3, 1), activation=activation, name=f"{name}_conv3x1")
    y = _conv_bn_last(y, channels, 1, name=f"{name}_expand")
    return _residual_out(y, x, activation, name)


def dilated_block(x, dilation=1, *, activation="prelu", name):
    """Residual ``1x1 -> 3x3 (dilated) -> 1x1`` bottleneck at a quarter of the channels."""
    channels = x.shape[-1]
    hidden = channels // 4
    y = _conv_bn(x, hidden, 1, activation=activation, name=f"{name}_reduce")
    y = _conv_bn(y, hidden, 3, dilation_rate=dilation, activation=activation, name=f"{name}_conv")
    y = _conv_bn_last(y, channels, 1, name=f"{name}_expand")
    return _residual_out(y, x, activation, name)


def upsampling_block(x, skip, filters, *, activation="prelu", name):
    """x2 upsampling: squeezed transposed-convolution branch + upsampled ``1x1(x + skip)``."""
    hidden = x.shape[-1] // 4
    y = _conv_bn(x, hidden, 1, activation=activation, name=f"{name}_reduce")
    y = _deconv_bn(y, hidden, activation=activation, name=f"{name}_up")
    y = _conv_bn(y, filters, 1, activation=None, name=f"{name}_expand")
    shortcut = layers.Add(name=f"{name}_skip")([x, skip])
    shortcut = _conv_bn(shortcut, filters, 1, activation=None, name=f"{name}_shortcut")
    shortcut = BilinearUpsample(2, name=f"{name}_shortcut_up")(shortcut)
    return _residual_out(y, shortcut, activation, name)


@MODELS.register(
    "fssnet",
    stride=8,
    paper="FSSNet (Zhang et al., 2018)",
    reference="FSSNet",
    features={8: "fssnet_dilated6_out"},
)
def fssnet(inputs, num_classes, *, activation="prelu", name="fssnet"):
    """FSSNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      activation: activation after every block and inner convolution (``"prelu"``: one slope per
        layer, as the reference; or any Keras activation name such as ``"relu"``).
      name: layer-name prefix.
    """
    kw = {"activation": activation}
    x = initial_block(inputs, 16, name=f"{name}_initial", **kw)
    d1 = downsampling_block(x, 64, name=f"{name}_down1", **kw)
    x = d1
    for i in range(4):
        x = factorized_block(x, name=f"{name}_factorized{i + 1}", **kw)
    d2 = downsampling_block(x, 128, name=f"{name}_down2", **kw)
    x = d2
    for i, dilation in enumerate(ENCODER_DILATIONS):
        x = dilated_block(x, dilation, name=f"{name}_dilated{i + 1}", **kw)
    x = upsampling_block(x, d2, 64, name=f"{name}_up2", **kw)
    for i in range(2):
        x = dilated_block(x, name=f"{name}_bottleneck2_{i + 1}", **kw)
    x = upsampling_block(x, d1, 16, name=f"{name}_up1", **kw)
    for i in range(2):
        x = dilated_block(x, name=f"{name}_bottleneck1_{i + 1}", **kw)
    return _deconv_bn(x, num_classes, name=f"{name}_fullconv", **kw)
