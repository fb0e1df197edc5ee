"""CGNet (Wu, Tang, Zhang, Cao and Zhang, 2018; IEEE T-IP 2021): Context Guided Network.

The Context Guided (CG) block learns a joint feature of a pixel and its surroundings and refines it
with the global context:

- a 1x1 convolution to ``out / 2`` channels;
- f_loc: a 3x3 depthwise convolution (the local feature) || f_sur: a dilated 3x3 depthwise
  convolution (the surrounding context); both stride 2 in a downsampling block;
- f_joi: the two concatenated (``out`` channels), BN + PReLU;
- f_glo: global average pooling, two fully connected layers (``out -> out / 8 -> out``), a sigmoid
  that reweights the channels of the joint feature;
- global residual learning (GRL): the block's input is added after f_glo when the shape is kept.

Network (three stages, stride 8):

- stage 1: three 3x3 convolutions (+ BN + PReLU) to 32 channels, the first with stride 2; the
  output is concatenated with the first one's (64 channels at 1/2);
- stage 2: a downsampling CG block to 64 (dilation 2), concatenated with the image at 1/4 (input
  injection), ``M - 1`` CG blocks (dilation 2), concatenated with the downsampling block's output;
- stage 3: a downsampling CG block to 128 (dilation 4), concatenated with the image at 1/8,
  ``N - 1`` CG blocks (dilation 4), concatenated with the downsampling block's output (256 channels
  at stride 8);
- a 1x1 convolution (no bias) to the classes and x8 bilinear upsampling.

The layout follows the PyTorch reference zoo (``models/cgnet.py`` of zh320/realtime-semantic-
segmentation-pytorch), whose default depth is M=3, N=15; the paper's best Cityscapes model is
``M=3, N=21`` (``tfseg.build_model("cgnet", 19, M=3, N=21)``). Like the reference, the block's 1x1
convolution is linear (the authors' code adds BN + PReLU to it and widens the downsampling block)
and stage 1 is not concatenated with the half-size image. PReLUs have one slope per layer, as
``nn.PReLU()`` in the reference.

Where tfseg differs from the reference (no parameters change):

- the image pyramid for input injection is repeated 3x3/2 average pooling (the authors' code); the
  reference resizes the image bilinearly with ``align_corners=True``, which has no fixed-scale
  exportable form;
- the final x8 upsampling is half-pixel bilinear (``BilinearUpsample``), not ``align_corners=True``;
- a strided, dilated depthwise convolution (f_sur of the downsampling blocks) is written as its
  exact equivalent: the odd pixels of the input (a crop and a 1x1/2 pooling) followed by a stride-1
  depthwise convolution with half the dilation (Keras does not take stride and dilation together).
  The samples are the ones of a stride-2 "same" convolution, so f_loc and f_sur stay aligned.

Parameters with 19 classes: 243,805 and 4.38 GMACs at 512x1024, as the reference (243,805; 4.38);
``M=3, N=21``: 326,851 and 4.84 GMACs (the paper reports 0.5 M for its wider block).

>>> model = tfseg.build_model("cgnet", 19, input_shape=(512, 1024, 3))
>>> model = tfseg.build_model("cgnet", 19, M=3, N=21)  # the paper's CGNet_M3N21
"""

from keras import layers

from tfseg.layers import BilinearUpsample, SameAveragePooling2D
from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, conv_bn_prelu, prelu
from tfseg.layers.downsample import strided_depthwise
from tfseg.registry import MODELS


def _depthwise(x, *, strides=1, dilation=1, name):
    return layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding="same",
        dilation_rate=dilation,
        use_bias=False,
        name=name,
    )(x)


def _strided_dilated_depthwise(x, dilation, *, name):
    """A 3x3 depthwise convolution with stride 2 and an even ``dilation``, "same" padding.

    Output pixel i samples input pixels ``2i + 1 + dilation * k`` (k = -1, 0, 1), all odd: the same
    as a 3x3 convolution of dilation ``dilation / 2`` over the odd pixels.
    """
    if dilation % 2:
        raise ValueError(f"{name}: a strided f_sur needs an even dilation, got {dilation}")
    return strided_depthwise(
        x, dilation=dilation, alignment="tf", subsample_name=f"{name}_odd", name=name
    )


def cg_block(x, filters, *, strides=1, dilation=2, name):
    """The Context Guided block (f_loc, f_sur, f_joi, f_glo; global residual learning)."""
    half = filters // 2
    if filters % 8:
        raise ValueError(f"{name}: a CG block needs a multiple of 8 filters, got {filters}")
    residual = x
    x = layers.Conv2D(
        half, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_reduce"
    )(x)
    if strides == 1:
        loc = _depthwise(x, name=f"{name}_loc")
        sur = _depthwise(x, dilation=dilation, name=f"{name}_sur")
    else:
        loc = _depthwise(x, strides=2, name=f"{name}_loc")
        sur = _strided_dilated_depthwise(x, dilation, name=f"{name}_sur")
    x = layers.Concatenate(name=f"{name}_joi")([loc, sur])
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = prelu(x, name=f"{name}_prelu")
    g = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_glo_pool")(x)
    g = layers.Dense(filters // 8, name=f"{name}_glo_fc1")(g)
    g = layers.Dense(filters, activation="sigmoid", name=f"{name}_glo_fc2")(g)
    x = layers.Multiply(name=f"{name}_glo")([x, g])
    if strides == 1 and residual.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([residual, x])
    return x


def _conv_bn_prelu(x, filters, *, strides=1, name):
    return conv_bn_prelu(x, filters, 3, strides=strides, name=name)


def cgnet_encoder(inputs, *, M=3, N=15, name="cgnet"):
    """Stages 1-3: the 256-channel stride-8 feature map (the classifier's input)."""
    image = inputs
    pyramid = []
    for level in ("half", "quarter", "eighth"):
        image = SameAveragePooling2D(3, strides=2, name=f"{name}_image_{level}")(
            image
        )
        pyramid.append(image)
    _, quarter, eighth = pyramid

    first = _conv_bn_prelu(inputs, 32, strides=2, name=f"{name}_stage1_conv0")
    x = _conv_bn_prelu(first, 32, name=f"{name}_stage1_conv1")
    x = _conv_bn_prelu(x, 32, name=f"{name}_stage1_conv2")
    x = layers.Concatenate(name=f"{name}_stage1_concat")([x, first])

    down = cg_block(x, 64, strides=2, dilation=2, name=f"{name}_stage2_down")
    x = layers.Concatenate(name=f"{name}_stage2_inject")([down, quarter])
    for i in range(M - 1):
        x = cg_block(x, 64, dilation=2, name=f"{name}_stage2_{i + 1}")
    x = layers.Concatenate(name=f"{name}_stage2_concat")([x, down])

    down = cg_block(x, 128, strides=2, dilation=4, name=f"{name}_stage3_down")
    x = layers.Concatenate(name=f"{name}_stage3_inject")([down, eighth])
    for i in range(N - 1):
        x = cg_block(x, 128, dilation=4, name=f"{name}_stage3_{i + 1}")
    return layers.Concatenate(name=f"{name}_stage3_concat")([x, down])


@MODELS.register(
    "cgnet",
    stride=8,
    paper="CGNet (Wu et al., 2018)",
    reference="CGNet",
    features={8: "cgnet_stage3_concat"},
    contract_kwargs={"M": 2, "N": 3},  # the contract test: fewer CG blocks, same layers
)
def cgnet(inputs, num_classes, *, M=3, N=15, name="cgnet"):
    """CGNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      M: CG blocks in stage 2, the downsampling block included (reference and paper: 3).
      N: CG blocks in stage 3, the downsampling block included (reference: 15; the paper's best
        model: 21).
      name: layer-name prefix.
    """
    M, N = int(M), int(N)
    if M < 1 or N < 1:
        raise ValueError(f"cgnet: M and N count blocks and must be >= 1, got M={M}, N={N}")
    features = cgnet_encoder(inputs, M=M, N=N, name=name)
    x = layers.Conv2D(num_classes, 1, use_bias=False, name=f"{name}_classifier")(features)
    return BilinearUpsample(8, name=f"{name}_upsample")(x)
