"""MiniNet-v2 (Alonso, Riazuelo and Murillo, IEEE T-RO 2020): MiniNet with multi-dilation
depthwise-separable modules and a refinement path from the image.

Paper: I. Alonso, L. Riazuelo, A. C. Murillo, "MiniNet: An Efficient Semantic Segmentation ConvNet
for Real-Time Robotic Applications", IEEE Transactions on Robotics 36(4), 2020. The layout follows
the PyTorch reference zoo (``models/mininetv2.py`` of zh320/realtime-semantic-segmentation-pytorch),
whose parameter count tfseg matches; every activation is a ReLU.

Blocks:

- downsampling unit: ENet's initial block, ``concat(3x3/2 convolution to out - in channels + BN +
  ReLU, 3x3/2 max-pool of the input)`` (``conv_pool_downsample``);
- multi-dilation separable module (``multi_dilation_module``): a 3x3 depthwise convolution (+ BN +
  ReLU), plus, when the dilation is above 1, a parallel dilated 3x3 depthwise convolution (+ BN +
  ReLU) added to it; then a 1x1 convolution with bias (+ BN + ReLU). No residual connection;
- upsampling: a 3x3/2 transposed convolution (with bias) + BN + ReLU (``deconv_bn_act``).

Network (stride 8):

- two downsampling units to 16 and 64 channels (1/4), ten modules (dilation 1), a downsampling
  unit to 128 (1/8) and sixteen modules of dilations 1, 2, 1, 4, 1, 8, 1, 16, 1, 1, 1, 2, 1, 4, 1, 8
  (the stride-8 features);
- refinement: two more downsampling units on the image (16, 64 channels, 1/4), added to the
  transposed convolution of the features to 64 channels (1/4); four modules (dilation 1);
- a transposed convolution to the classes (1/2) and x2 bilinear upsampling.

Departures from the reference (no parameters or MACs change):

- the last transposed convolution (to the classes) keeps its BN but not its ReLU, which clamps
  every negative logit to zero there: the logits are linear (tfseg's convention);
- the final x2 upsampling is half-pixel bilinear (``BilinearUpsample``), not
  ``align_corners=True``; strided convolutions, pools and transposed convolutions pad "same"
  (Keras), which can shift the grid by one pixel against PyTorch's symmetric padding; BN epsilon
  1e-3.

Parameters with 19 classes: 507,243 (reference 507,243); 6.32 conv GMACs at 512x1024 (reference
6.32).

>>> model = tfseg.build_model("mininetv2", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import (
    BilinearUpsample,
    conv_pool_downsample,
    deconv_bn_act,
    depthwise_bn_act,
    pointwise_bn_act,
)
from tfseg.registry import MODELS

FEATURE_DILATIONS = (1, 2, 1, 4, 1, 8, 1, 16, 1, 1, 1, 2, 1, 4, 1, 8)
STAGE1_MODULES = 10
DECODER_MODULES = 4


def multi_dilation_module(x, filters, dilation=1, *, activation="relu", name):
    """3x3 depthwise (+ a parallel dilated 3x3 depthwise when ``dilation > 1``, summed), then a
    1x1 convolution with bias; each convolution + BN + activation."""
    y = depthwise_bn_act(x, 3, activation=activation, name=name)
    if dilation > 1:
        dilated = depthwise_bn_act(
            x, 3, dilation_rate=dilation, activation=activation, name=f"{name}_dilated"
        )
        y = layers.Add(name=f"{name}_sum")([y, dilated])
    return pointwise_bn_act(y, filters, activation=activation, name=f"{name}_pw")


def downsampling_unit(x, filters, *, activation="relu", name):
    """ENet's initial block: 3x3/2 convolution to ``filters - C_in`` (+ BN + act) || max-pool."""
    return conv_pool_downsample(x, filters, activation=activation, pool_size=3, name=name)


@MODELS.register(
    "mininetv2",
    stride=8,
    paper="MiniNet-v2 (Alonso et al., 2020)",
    reference="MiniNetv2",
    features={8: "mininetv2_feat16_pw_act"},
)
def mininetv2(inputs, num_classes, *, dilations=FEATURE_DILATIONS, name="mininetv2"):
    """MiniNet-v2 logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      dilations: the dilations of the sixteen stride-8 modules.
      name: layer-name prefix.
    """
    if len(dilations) != len(FEATURE_DILATIONS):
        raise ValueError(f"{name}: {len(FEATURE_DILATIONS)} dilations needed, got {dilations}")
    ref = downsampling_unit(inputs, 16, name=f"{name}_ref_down1")
    ref = downsampling_unit(ref, 64, name=f"{name}_ref_down2")

    x = downsampling_unit(inputs, 16, name=f"{name}_down1")
    x = downsampling_unit(x, 64, name=f"{name}_down2")
    for i in range(STAGE1_MODULES):
        x = multi_dilation_module(x, 64, name=f"{name}_m{i + 1}")
    x = downsampling_unit(x, 128, name=f"{name}_down3")
    for i, dilation in enumerate(dilations):
        x = multi_dilation_module(x, 128, dilation, name=f"{name}_feat{i + 1}")

    x = deconv_bn_act(x, 64, activation_name=f"{name}_up1_act", name=f"{name}_up1")
    x = layers.Add(name=f"{name}_refine")([x, ref])
    for i in range(DECODER_MODULES):
        x = multi_dilation_module(x, 64, name=f"{name}_dec{i + 1}")
    x = deconv_bn_act(x, num_classes, activation=None, name=f"{name}_output")
    return BilinearUpsample(2, name=f"{name}_upsample")(x)
