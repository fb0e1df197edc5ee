"""Fast-SCNN (Poudel, Liwicki and Cipolla, 2019): fast segmentation convolutional neural network.

Paper: R. P. K. Poudel, S. Liwicki, R. Cipolla, "Fast-SCNN: Fast Semantic Segmentation Network",
arXiv:1902.04502, BMVC 2019. ContextNet's two branches share their first layers: a "learning to
downsample" stem computes stride-8 features once, a global feature extractor continues from them to
stride 32, and the two are fused at stride 8. Layout as in the PyTorch reference zoo (zh320), whose
parameter count tfseg matches (ReLU everywhere by default):

- learning to downsample (stride 8): a 3x3/2 convolution to 32 channels (+ BN + ReLU) and two
  depthwise-separable convolutions with stride 2 to 48 and 64 channels (3x3/2 depthwise + BN + ReLU,
  1x1 with bias + BN + ReLU, the zoo's ``DSConvBNAct``);
- global feature extractor (stride 32): MobileNetV2 bottlenecks of expansion 6 (channels c, repeats
  n, stride s: (64, 3, 2), (96, 2, 2), (128, 3, 1)), then the pyramid pooling module (average
  pooling to 1, 2, 4 and 6 cells, 1x1 convolutions to 32 channels, resized back and concatenated
  with the input; 1x1 convolution with bias + BN + ReLU to 128);
- feature fusion (stride 8): the stride-8 features through a 1x1 convolution to 128; the global
  features upsampled x4, a 3x3 depthwise convolution (+ BN + ReLU) and a 1x1 convolution; the sum,
  BN, ReLU;
- classifier: two depthwise-separable convolutions (128 channels) and a 1x1 convolution with bias
  (+ BN) to the classes, upsampled x8 to the input size.

Bottleneck: 1x1 expansion with bias (+ BN + ReLU), 3x3 depthwise with the stride (+ BN + ReLU),
1x1 projection without bias (+ BN, linear); the input is added when the stride is 1 and the width
is kept.

Departures from the reference (no parameters or MACs are involved):

- the x4 and x8 bilinear upsamplings (``align_corners=True`` there) are half-pixel bilinear by fixed
  factors (``BilinearUpsample``), so H and W must be multiples of 32; the pyramid pooling module
  resizes back half-pixel too (``tfseg.layers.pyramid_pooling``, exact adaptive pooling bins);
- the reference ends with 1x1 convolution + BN + **ReLU** on the logits; here the logits are linear
  (1x1 convolution + BN): a ReLU would clamp every negative logit to zero. The count is unchanged;
- the paper's fusion uses a dilated (x4) depthwise convolution without activation; the reference's
  (dilation 1, + BN + ReLU) is kept.

Parameters with 19 classes: 1,023,769 (reference 1,023,769); 1.618 conv GMACs at 512x1024
(reference 1.62).

>>> model = tfseg.build_model("fastscnn", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import (
    BilinearUpsample,
    conv_bn_act,
    pointwise_bn_act,
    pyramid_pooling,
    separable_bn_act,
)
from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, act
from tfseg.registry import MODELS

# (channels c, repeats n, stride s) of the global feature extractor's bottlenecks (expansion 6).
BOTTLENECKS = ((64, 3, 2), (96, 2, 2), (128, 3, 1))


def _bn(x, *, name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def _depthwise_bn_act(x, *, strides=1, activation, name):
    """3x3 depthwise convolution (no bias) + BN + activation (``act``'s conventions), the zoo's
    ``DWConvBNAct``: layers ``{name}_dwconv``, ``{name}_bn``, ``{name}_act``."""
    x = layers.DepthwiseConv2D(
        3, strides=strides, padding="same", use_bias=False, name=f"{name}_dwconv"
    )(x)
    return act(_bn(x, name=f"{name}_bn"), activation, name=f"{name}_act")


def inverted_residual(x, filters, *, expansion=6, strides=1, activation="relu", name):
    """MobileNetV2 bottleneck as the reference's: 1x1 expansion with bias (+ BN + act), 3x3
    depthwise (+ BN + act), linear 1x1 projection (+ BN); the input is added when the shape is
    kept."""
    in_channels = x.shape[-1]
    y = pointwise_bn_act(
        x, int(round(in_channels * expansion)), activation=activation, name=f"{name}_expand"
    )
    y = _depthwise_bn_act(y, strides=strides, activation=activation, name=f"{name}_dw")
    y = conv_bn_act(y, filters, 1, activation=None, name=f"{name}_project")
    if strides == 1 and in_channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def learning_to_downsample(x, *, activation="relu", name):
    """3x3/2 convolution to 32, depthwise-separable /2 to 48 and /2 to 64: stride 8."""
    x = conv_bn_act(x, 32, 3, strides=2, activation=None, name=f"{name}_conv")
    x = act(x, activation, name=f"{name}_conv_act")
    x = separable_bn_act(x, 48, strides=2, activation=activation, name=f"{name}_ds1")
    return separable_bn_act(x, 64, strides=2, activation=activation, name=f"{name}_ds2")


def global_feature_extractor(x, *, activation="relu", name):
    """Bottlenecks to stride 32 and 128 channels, then the pyramid pooling module."""
    index = 0
    for filters, repeats, strides in BOTTLENECKS:
        for i in range(repeats):
            index += 1
            x = inverted_residual(
                x,
                filters,
                strides=strides if i == 0 else 1,
                activation=activation,
                name=f"{name}_b{index}",
            )
    return pyramid_pooling(x, 128, activation=activation, use_bias=True, name=f"{name}_ppm")


def feature_fusion(high, low, *, filters=128, activation="relu", name):
    """``high`` (stride 8) through a 1x1 convolution + ``low`` (stride 32) upsampled x4, 3x3
    depthwise (+ BN + act) and 1x1; the sum, BN, activation."""
    high = layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_high_conv"
    )(high)
    low = BilinearUpsample(4, name=f"{name}_low_up")(low)
    low = _depthwise_bn_act(low, activation=activation, name=f"{name}_low_dw")
    low = layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_low_conv"
    )(low)
    x = layers.Add(name=f"{name}_add")([high, low])
    return act(_bn(x, name=f"{name}_bn"), activation, name=f"{name}_act")


def classifier(x, num_classes, *, activation="relu", name):
    """Two depthwise-separable convolutions, then 1x1 convolution (with bias) + BN: linear
    logits."""
    channels = x.shape[-1]
    for i in range(2):
        x = separable_bn_act(x, channels, activation=activation, name=f"{name}_ds{i + 1}")
    return pointwise_bn_act(x, num_classes, activation=None, name=f"{name}_logits")


@MODELS.register(
    "fastscnn",
    stride=32,
    paper="Fast-SCNN (Poudel et al., 2019)",
    reference="FastSCNN",
    features={8: "fastscnn_fusion_act"},
)
def fastscnn(inputs, num_classes, *, activation="relu", name="fastscnn"):
    """Fast-SCNN logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      activation: activation of every block (``"relu"``, as the reference; ``"prelu"`` has one
        slope per layer; or any Keras activation name).
      name: layer-name prefix.
    """
    kw = {"activation": activation}
    high = learning_to_downsample(inputs, name=f"{name}_ltd", **kw)
    low = global_feature_extractor(high, name=f"{name}_gfe", **kw)
    x = feature_fusion(high, low, name=f"{name}_fusion", **kw)
    x = classifier(x, num_classes, name=f"{name}_classifier", **kw)
    return BilinearUpsample(8, name=f"{name}_upsample")(x)
