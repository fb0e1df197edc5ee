"""ContextNet (Poudel, Bonde, Liwicki and Zach, BMVC 2018): context and detail in real time.

Two branches over two resolutions of the same image, fused by addition:

- the full-resolution (detail) branch, on the image: a 3x3/2 convolution to 32 channels (+ BN +
  ReLU) and three depthwise-separable convolutions (3x3 depthwise + BN, 1x1 + BN + ReLU) to 64, 128
  and 128 channels;
- the low-resolution (context) branch, on the image at 1/4: a 3x3/2 convolution to 32 channels,
  MobileNetV2 bottlenecks (expansion t, channels c, repeats n, stride s: (1, 32, 1, 1),
  (6, 32, 1, 1), (6, 48, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 128, 2, 1)) and a 3x3 convolution
  to 128 (+ BN + ReLU): stride 32 of the input;
- feature fusion: the detail features through a 1x1 convolution; the context features upsampled
  bilinearly to the detail branch's size, a 3x3 depthwise convolution of dilation 4 (+ BN), a 1x1
  convolution (+ BN) and a 1x1 convolution; the sum, ReLU;
- a 1x1 classifier and bilinear upsampling to the input size.

Reference and paper: the layout and the depths follow the PyTorch reference zoo (``models/
contextnet.py`` of zh320/realtime-semantic-segmentation-pytorch), which keeps the detail branch's
depthwise convolutions at stride 1, so the detail branch and the fusion run at 1/2 of the input
(``detail_stride=2``, the default: 1,004,051 parameters with 19 classes and 11.55 GMACs at
512x1024; reference 1,008,870 and 11.55). The paper's table strides the first two depthwise
convolutions by 2, so the detail branch and the fusion run at 1/8 (``detail_stride=8``: the same
parameters, 1.61 GMACs).

Where tfseg differs from the reference:

- the image at 1/4 is a 4x4 average pooling (an exact area downscale); the reference resizes
  bilinearly with ``align_corners=True``, which has no fixed-scale exportable form;
- upsampling is half-pixel bilinear by a fixed factor (``BilinearUpsample``), not
  ``align_corners=True``;
- 1x1 convolutions followed by BatchNorm have no bias (the reference's depthwise-separable and
  bottleneck expansions keep one, which BN cancels: 4,800 parameters);
- the classifier is a 1x1 convolution with bias; the reference ends with 1x1 convolution + BN +
  ReLU on the logits (19 parameters more). Together: 4,819 parameters fewer (-0.48 %).

>>> model = tfseg.build_model("contextnet", 19, input_shape=(512, 1024, 3))
>>> model = tfseg.build_model("contextnet", 19, detail_stride=8)  # the paper's strides
"""

from keras import layers

from tfseg.layers import BilinearUpsample, conv_bn_act, depthwise_bn_act
from tfseg.layers.blocks import classifier
from tfseg.registry import MODELS

# (expansion t, channels c, repeats n, stride s) of the context branch's bottlenecks.
_BOTTLENECKS = (
    (1, 32, 1, 1),
    (6, 32, 1, 1),
    (6, 48, 3, 2),
    (6, 64, 3, 2),
    (6, 96, 2, 1),
    (6, 128, 2, 1),
)
DETAIL_STRIDES = {2: (1, 1, 1), 8: (2, 2, 1)}  # detail_stride -> strides of the 3 depthwise convs


def inverted_residual(x, filters, *, expansion, strides=1, name):
    """MobileNetV2 bottleneck: 1x1 expansion, 3x3 depthwise (both + BN + ReLU), linear 1x1
    projection (+ BN); the input is added when the shape is kept (the expansion is kept at t=1)."""
    in_channels = x.shape[-1]
    y = conv_bn_act(x, round(in_channels * expansion), 1, name=f"{name}_expand")
    y = depthwise_bn_act(y, 3, strides=strides, name=name)
    y = conv_bn_act(y, filters, 1, activation=None, name=f"{name}_project")
    if strides == 1 and in_channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def detail_branch(inputs, *, detail_stride=2, name="contextnet_detail"):
    """The full-resolution branch: 128 channels at ``detail_stride``."""
    x = conv_bn_act(inputs, 32, 3, strides=2, name=f"{name}_conv")
    for i, (filters, strides) in enumerate(zip((64, 128, 128), DETAIL_STRIDES[detail_stride])):
        x = depthwise_bn_act(x, 3, strides=strides, activation=None, name=f"{name}_ds{i + 1}")
        x = conv_bn_act(x, filters, 1, name=f"{name}_ds{i + 1}_pw")
    return x


def context_branch(inputs, *, name="contextnet_context"):
    """The low-resolution branch on the image at 1/4: 128 channels at stride 32."""
    x = layers.AveragePooling2D(4, name=f"{name}_image_quarter")(inputs)
    x = conv_bn_act(x, 32, 3, strides=2, name=f"{name}_conv")
    index = 0
    for expansion, filters, repeats, strides in _BOTTLENECKS:
        for i in range(repeats):
            index += 1
            x = inverted_residual(
                x,
                filters,
                expansion=expansion,
                strides=strides if i == 0 else 1,
                name=f"{name}_b{index}",
            )
    return conv_bn_act(x, 128, 3, name=f"{name}_conv_last")


def feature_fusion(detail, context, factor, *, name="contextnet_fusion"):
    """Detail (1x1) + context (x``factor``, dilated depthwise-separable, 1x1), ReLU."""
    detail = layers.Conv2D(128, 1, use_bias=False, name=f"{name}_detail_conv")(detail)
    context = BilinearUpsample(factor, name=f"{name}_context_upsample")(context)
    context = depthwise_bn_act(
        context, 3, dilation_rate=4, activation=None, name=f"{name}_context"
    )
    context = conv_bn_act(context, 128, 1, activation=None, name=f"{name}_context_pw")
    context = layers.Conv2D(128, 1, use_bias=False, name=f"{name}_context_conv")(context)
    x = layers.Add(name=f"{name}_add")([detail, context])
    return layers.ReLU(name=f"{name}_relu")(x)


@MODELS.register(
    "contextnet",
    stride=32,
    paper="ContextNet (Poudel et al., 2018)",
    reference="ContextNet",
    features={8: "contextnet_context_b2_add"},
)
def contextnet(inputs, num_classes, *, detail_stride=2, name="contextnet"):
    """ContextNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      detail_stride: output stride of the full-resolution branch, where the fusion runs: 2 (the
        reference zoo's depthwise strides, the default) or 8 (the paper's).
      name: layer-name prefix.
    """
    if detail_stride not in DETAIL_STRIDES:
        raise ValueError(
            f"contextnet: detail_stride must be one of {sorted(DETAIL_STRIDES)}, "
            f"got {detail_stride!r}"
        )
    detail = detail_branch(inputs, detail_stride=detail_stride, name=f"{name}_detail")
    context = context_branch(inputs, name=f"{name}_context")
    x = feature_fusion(detail, context, 32 // detail_stride, name=f"{name}_fusion")
    x = classifier(x, num_classes, name=f"{name}_classifier")
    return BilinearUpsample(detail_stride, name=f"{name}_upsample")(x)
