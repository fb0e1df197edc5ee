"""ESPNetv2 (Mehta et al., 2019): a light-weight, power-efficient, general-purpose CNN.

Paper: S. Mehta, M. Rastegari, L. Shapiro, H. Hajishirzi, "ESPNetv2: A Light-weight, Power
Efficient, and General Purpose Convolutional Neural Network", CVPR 2019 (arXiv:1811.11431). Its
unit, EESP, replaces ESPNet's pointwise convolutions by grouped ones and its dilated convolutions by
depthwise-separable dilated ones. Layout as in the PyTorch reference zoo (zh320), whose parameter
count tfseg matches; every PReLU has one slope per layer (PyTorch's ``nn.PReLU()``):

- the image is average-pooled (3x3/2, padding 1) to 1/4, 1/8 and 1/16;
- level 1 (stride 2): a 3x3/2 convolution to 32 channels (+ BN + PReLU);
- level 2 (stride 4): a strided EESP unit to 64 channels;
- level 3 (stride 8): a strided EESP unit to 128 channels and ``alpha3 = 3`` EESP units;
- level 4 (stride 16): a strided EESP unit to 256 channels and ``alpha4 = 7`` EESP units;
- decoder: level 4 upsampled x2, a 1x1 convolution to 128 (+ BN + ReLU, the reference's default
  activation there), concatenated with level 3 (256 channels); the pyramid pooling module (average
  pooling to 1, 2, 4 and 6 cells, 1x1 convolutions to 64, resized back and concatenated with the
  input; 1x1 convolution with bias + BN + PReLU to 256); the zoo's segmentation head (3x3
  convolution to 128 + BN + PReLU, 1x1 convolution to the classes) and x8 upsampling.

EESP unit on C channels (K = 4 branches of C/4 channels):

- reduce: grouped 1x1 convolution (4 groups, no bias) to C/4 channels;
- split-transform: K depthwise-separable 3x3 convolutions (depthwise with dilation 1, 2, 4, 8 and
  the unit's stride, + BN + PReLU; 1x1 with bias + BN + PReLU);
- merge: hierarchical sum (branch k adds branch k - 1), concatenation, grouped 1x1 convolution
  (4 groups, no bias) to C channels;
- stride 1: + the input. Stride 2: concatenated with the 3x3/2 average-pooled input (2C channels)
  and added to the image at the same stride through a 3x3 convolution (+ BN + ReLU) and a 1x1
  convolution to 2C.

Departures from the reference:

- each grouped 1x1 convolution runs as one convolution per group of channels (the same weights,
  parameters and MACs: ``tfseg.layers.PerGroupConv2D`` for the reduction; the expansion's groups
  are the branches themselves, so it is one convolution per branch before the concatenation):
  TensorFlow runs a grouped ``Conv2D`` through XLA on CPU, where its gradient is ~10x slower
  (measured: 0.25 s against 0.025 s on a 2x16x20x256 map);
- a 3x3 depthwise convolution with stride 2 and dilation 2, 4 or 8 (Keras does not combine stride
  and dilation) is computed exactly as an even-pixel subsampling followed by the convolution with
  half the dilation (``tfseg.layers.downsample.strided_depthwise``);
- the branches of a strided EESP unit, its average-pooled input and the image at its stride are
  summed or concatenated pixel by pixel, so they must sample the same pixels: every stride-2 layer
  here pads one pixel on each side and runs "valid", PyTorch's sampling (even pixels), instead of
  tfseg's usual "same" padding (odd pixels). The average pools count the padding as zeros, as
  PyTorch's ``AvgPool2d(3, 2, 1)`` does: both are the reference's exactly;
- the x2 and x8 bilinear upsamplings (``align_corners=True`` there) are half-pixel bilinear by fixed
  factors (``BilinearUpsample``), so H and W must be multiples of 16; the pyramid pooling module
  resizes back half-pixel too (``tfseg.layers.pyramid_pooling``, exact adaptive pooling bins);
- the reference's ESPNetv2 differs from the paper's segmentation network (the authors' code ends
  the EESP unit with BN + PReLU, uses 5 average-pooled image inputs per level and a different
  decoder); the reference's layout is the one kept, with its counts.

Parameters with 19 classes: 862,032 (reference 862,032); 4.815 conv GMACs at 512x1024
(reference 4.82).

>>> model = tfseg.build_model("espnetv2", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import (
    BilinearUpsample,
    PerGroupConv2D,
    conv_bn_act,
    pointwise_bn_act,
    pyramid_pooling,
    seg_head,
    separable_bn_act,
)
from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, act
from tfseg.layers.downsample import strided_depthwise
from tfseg.registry import MODELS

BRANCHES = 4  # K: branches (and groups of the grouped 1x1 convolutions) of an EESP unit


def avg_pool_down(x, *, name):
    """PyTorch's ``AvgPool2d(3, 2, padding=1)``: zero padding by one (counted in the mean) and a
    3x3/2 "valid" average pool; layers ``{name}_pad`` and ``{name}``. H and W must be even."""
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return layers.AveragePooling2D(3, strides=2, padding="valid", name=name)(x)


def _pointwise(x, filters, *, name):
    """1x1 convolution, no bias, no normalisation."""
    return layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal", name=name)(x)


def _branch(x, dilation, strides, *, activation, name):
    """The zoo's ``DSConvBNAct`` with the unit's stride and ``dilation``: 3x3 depthwise + BN + act,
    1x1 with bias + BN + act. A strided branch samples the even pixels (``strided_depthwise``)."""
    if strides == 1:
        return separable_bn_act(
            x, x.shape[-1], dilation_rate=dilation, activation=activation, name=name
        )
    y = strided_depthwise(x, dilation=dilation, alignment="torch", name=f"{name}_dw_conv")
    y = layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_dw_bn"
    )(y)
    y = act(y, activation, name=f"{name}_dw_act")
    return pointwise_bn_act(y, x.shape[-1], activation=activation, name=f"{name}_pw")


def eesp_unit(x, image=None, *, strides=1, activation="prelu", name):
    """EESP unit (see the module docstring): C channels in; C out at stride 1, 2C at stride 2 (then
    ``image`` is the input image average-pooled to the output's stride)."""
    channels = x.shape[-1]
    if channels % BRANCHES:
        raise ValueError(f"{name}: {channels} channels do not split into {BRANCHES} branches")
    if strides != 1 and image is None:
        raise ValueError(f"{name}: a strided EESP unit needs the image at its output stride")
    y = PerGroupConv2D(
        channels // BRANCHES, 1, groups=BRANCHES, use_bias=False, kernel_initializer="he_normal",
        name=f"{name}_reduce",
    )(x)
    merged, expanded = None, []
    for k in range(BRANCHES):
        b = _branch(y, 2**k, strides, activation=activation, name=f"{name}_branch{k + 1}")
        if merged is not None:
            b = layers.Add(name=f"{name}_sum{k + 1}")([merged, b])
        merged = b
        # The grouped 1x1 expansion: group k of the concatenated branches is branch k.
        expanded.append(_pointwise(b, channels // BRANCHES, name=f"{name}_expand{k + 1}"))
    y = layers.Concatenate(name=f"{name}_concat")(expanded)
    if strides == 1:
        return layers.Add(name=f"{name}_add")([y, x])
    shortcut = avg_pool_down(x, name=f"{name}_pool")
    y = layers.Concatenate(name=f"{name}_pool_concat")([y, shortcut])
    image = conv_bn_act(image, 3, 3, activation="relu", name=f"{name}_image")
    image = _pointwise(image, 2 * channels, name=f"{name}_image_proj")
    return layers.Add(name=f"{name}_add")([y, image])


@MODELS.register(
    "espnetv2",
    stride=16,
    paper="ESPNetv2 (Mehta et al., 2019)",
    reference="ESPNetv2",
    features={8: "espnetv2_ppm_fuse_act"},
    # The contract test builds one EESP unit of each kind per level (the same layers and ops):
    # tf2onnx's time grows with the graph (1,064 ONNX nodes at the full depth).
    contract_kwargs={"alpha3": 1, "alpha4": 1},
)
def espnetv2(inputs, num_classes, *, alpha3=3, alpha4=7, activation="prelu", name="espnetv2"):
    """ESPNetv2 logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 16.
      num_classes: logit channels.
      alpha3: EESP units after the strided one at stride 8 (the reference's ``alpha3``).
      alpha4: EESP units after the strided one at stride 16 (the reference's ``alpha4``).
      activation: activation of the EESP units, the first convolution, the pyramid pooling module
        and the head (``"prelu"``: one slope per layer, as the reference; or any Keras activation
        name such as ``"relu"``).
      name: layer-name prefix.
    """
    kw = {"activation": activation}
    image4 = avg_pool_down(avg_pool_down(inputs, name=f"{name}_image2"), name=f"{name}_image4")
    image8 = avg_pool_down(image4, name=f"{name}_image8")
    image16 = avg_pool_down(image8, name=f"{name}_image16")

    x = layers.ZeroPadding2D(1, name=f"{name}_l1_pad")(inputs)
    x = conv_bn_act(x, 32, 3, strides=2, padding="valid", activation=None, name=f"{name}_l1")
    x = act(x, activation, name=f"{name}_l1_act")
    x = eesp_unit(x, image4, strides=2, name=f"{name}_l2", **kw)
    x = eesp_unit(x, image8, strides=2, name=f"{name}_l3_1", **kw)
    for i in range(alpha3):
        x = eesp_unit(x, name=f"{name}_l3_{i + 2}", **kw)
    level3 = x
    x = eesp_unit(x, image16, strides=2, name=f"{name}_l4_1", **kw)
    for i in range(alpha4):
        x = eesp_unit(x, name=f"{name}_l4_{i + 2}", **kw)

    x = BilinearUpsample(2, name=f"{name}_l4_up")(x)
    x = conv_bn_act(x, 128, 1, activation="relu", name=f"{name}_l4_proj")
    x = layers.Concatenate(name=f"{name}_concat")([x, level3])
    x = pyramid_pooling(x, 256, activation=activation, use_bias=True, name=f"{name}_ppm")
    x = seg_head(x, num_classes, activation=activation, name=f"{name}_head")
    return BilinearUpsample(8, name=f"{name}_upsample")(x)
