"""DABNet (Li, Zhao, Zhang and Cao, BMVC 2019): Depth-wise Asymmetric Bottleneck network.

The Depth-wise Asymmetric Bottleneck (DAB) module: a 3x3 convolution halves the channels (+ BN +
PReLU); two branches of factorised depthwise convolutions, 3x1 then 1x3 (each + BN + PReLU), the
second branch dilated; their sum; a 1x1 convolution back to the input width (+ BN + PReLU); plus the
input.

Network (stride 8):

- stage 1: three 3x3 convolutions to 32 channels (+ BN + PReLU), the first with stride 2,
  concatenated with the image at 1/2 (35 channels);
- stage 2: a downsampling block (a 3x3/2 convolution to 29 channels || a 3x3/2 max-pool of its
  input, concatenated: 64), three DAB modules of dilation 2, concatenated with the downsampling
  block's output and the image at 1/4 (131 channels);
- stage 3: a 3x3/2 convolution to 128 (+ BN + PReLU), six DAB modules of dilations 4, 4, 8, 8, 16,
  16, concatenated with the convolution's output and the image at 1/8 (259 channels);
- a 1x1 convolution (no bias) to the classes and x8 bilinear upsampling.

The image pyramid is repeated 3x3/2 average pooling, as in the authors' code and the reference.
The layout follows the PyTorch reference zoo (``models/dabnet.py`` of zh320/realtime-semantic-
segmentation-pytorch); PReLUs have one slope per layer, as ``nn.PReLU()`` there. Parameters with
19 classes: 750,269 and 10.22 GMACs at 512x1024, as the reference (750,269; 10.22). Where tfseg
differs from the reference (no parameters change): the final x8 upsampling is half-pixel bilinear
(``BilinearUpsample``), not ``align_corners=True``; pooling pads "same" (TensorFlow's: the average
leaves the padding out), where PyTorch pads one pixel on each side and counts it.

``factorized_depthwise`` (a 3x1 then a 1x3 depthwise convolution, each + BN + PReLU) is
``tfseg.layers.factorized.factorized_conv`` with ``depthwise=True``.

>>> model = tfseg.build_model("dabnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, SameAveragePooling2D
from tfseg.layers.blocks import conv_bn_prelu
from tfseg.layers.downsample import conv_pool_downsample
from tfseg.layers.factorized import factorized_conv
from tfseg.registry import MODELS

STAGE2_DILATIONS = (2, 2, 2)
STAGE3_DILATIONS = (4, 4, 8, 8, 16, 16)


def _conv_bn_prelu(x, filters, kernel_size=3, *, strides=1, name):
    return conv_bn_prelu(x, filters, kernel_size, strides=strides, name=name)


def factorized_depthwise(x, *, dilation=1, name):
    """A 3x1 then a 1x3 depthwise convolution (dilated along their long axis), each + BN + PReLU."""
    return factorized_conv(
        x, None, 3, dilation=dilation, depthwise=True, bn_between=True,
        activation_between="prelu", activation="prelu", name=name,
    )


def dab_module(x, *, dilation, name):
    """Depth-wise asymmetric bottleneck: 3x3 to half, plain || dilated depthwise pairs, 1x1, + x."""
    channels = x.shape[-1]
    if channels % 2:
        raise ValueError(f"{name}: a DAB module needs an even number of channels, got {channels}")
    y = _conv_bn_prelu(x, channels // 2, 3, name=f"{name}_reduce")
    left = factorized_depthwise(y, name=f"{name}_left")
    right = factorized_depthwise(y, dilation=dilation, name=f"{name}_right")
    y = layers.Add(name=f"{name}_sum")([left, right])
    y = _conv_bn_prelu(y, channels, 1, name=f"{name}_expand")
    return layers.Add(name=f"{name}_add")([x, y])


def downsampling_block(x, filters, *, name):
    """ENet's initial block: a 3x3/2 convolution to ``filters - in`` || a 3x3/2 max-pool, concat."""
    return conv_pool_downsample(x, filters, activation="prelu", name=name)


def dabnet_encoder(inputs, *, name="dabnet"):
    """Stages 1-3: the 259-channel stride-8 feature map (the classifier's input)."""
    pyramid = []
    image = inputs
    for level in ("half", "quarter", "eighth"):
        image = SameAveragePooling2D(3, strides=2, name=f"{name}_image_{level}")(
            image
        )
        pyramid.append(image)
    half, quarter, eighth = pyramid

    x = _conv_bn_prelu(inputs, 32, strides=2, name=f"{name}_stage1_conv1")
    x = _conv_bn_prelu(x, 32, name=f"{name}_stage1_conv2")
    x = _conv_bn_prelu(x, 32, name=f"{name}_stage1_conv3")
    x = layers.Concatenate(name=f"{name}_stage1_concat")([x, half])

    first = downsampling_block(x, 64, name=f"{name}_stage2_down")
    x = first
    for i, dilation in enumerate(STAGE2_DILATIONS):
        x = dab_module(x, dilation=dilation, name=f"{name}_stage2_dab{i + 1}")
    x = layers.Concatenate(name=f"{name}_stage2_concat")([x, first, quarter])

    first = _conv_bn_prelu(x, 128, strides=2, name=f"{name}_stage3_down")
    x = first
    for i, dilation in enumerate(STAGE3_DILATIONS):
        x = dab_module(x, dilation=dilation, name=f"{name}_stage3_dab{i + 1}")
    return layers.Concatenate(name=f"{name}_stage3_concat")([x, first, eighth])


@MODELS.register(
    "dabnet",
    stride=8,
    paper="DABNet (Li et al., 2019)",
    reference="DABNet",
    features={8: "dabnet_stage3_concat"},
)
def dabnet(inputs, num_classes, *, name="dabnet"):
    """DABNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      name: layer-name prefix.
    """
    features = dabnet_encoder(inputs, name=name)
    x = layers.Conv2D(num_classes, 1, use_bias=False, name=f"{name}_classifier")(features)
    return BilinearUpsample(8, name=f"{name}_upsample")(x)
