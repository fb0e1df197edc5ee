"""ADSCNet (Wang, Zhou et al., Applied Intelligence 2019): asymmetric depthwise separable
convolution network for real-time semantic segmentation.

ADSC unit: a depthwise 3x1 convolution (+ BN + ReLU6), a 1x1 convolution, a depthwise 1x3
convolution (+ BN + ReLU6) and a 1x1 convolution (both 1x1 linear, no bias). With stride 1 the
unit is residual (``x + unit(x)``); with stride 2 the first depthwise convolution is strided and
the unit's output is concatenated with a 3x3/2 average pooling of its input, so the width doubles
(the paper's "pooling before the unit" that keeps context).

DDCC (Dense Dilated Convolution Connections) at stride 8, 128 channels: four ADSC units with
dilations 3, 5, 9, 13, each preceded by a stride-1 average pooling whose window equals its dilation;
the input of block k is a 1x1 projection (no bias) of the concatenation of the module's input and
every earlier block's output (DenseNet style), and a last 1x1 convolution fuses all five.

Network (the layout of the PyTorch reference zoo, ``models/adscnet.py`` of
zh320/realtime-semantic-segmentation-pytorch):

- 3x3/2 convolution to 32 (+ BN + ReLU6), an ADSC unit (the stride-2 skip ``x1``);
- ADSC 32, ADSC/2 (-> 64 at stride 4), ADSC 64 (the stride-4 skip ``x4``), ADSC/2 (-> 128 at
  stride 8);
- DDCC;
- decoder: 3x3/2 transposed convolution to 64 (+ BN + ReLU), ADSC 64, ``+ x4``; ADSC 64, transposed
  convolution to 32 (+ BN + ReLU), ``+ x1``; ADSC 32 and a 3x3/2 transposed convolution to the
  classes.

Differences from the reference (parameters with 19 classes: 509,235 here, 509,273 there; 6.88
GMACs at 512x1024 in both):

- the last transposed convolution gives the logits directly (with its bias), where the reference
  adds BN + ReLU on the logits (38 parameters; a ReLU on logits floors every class score at 0), as
  ``erfnet``/``espnet`` do in tfseg;
- average pools (in the stride-2 units and in DDCC) divide by the number of pixels inside the image
  at the borders (TF "same" pooling); PyTorch's ``count_include_pad=True`` divides by the full
  window, so DDCC's 13x13 pool darkens the outer 6 pixels of the stride-8 map. Strided
  convolutions and pools use TF "same" padding (the extra row/column at the bottom/right).

>>> model = tfseg.build_model("adscnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import SameAveragePooling2D, bn_act, conv_bn_act, depthwise_bn_act
from tfseg.registry import MODELS

DDCC_DILATIONS = (3, 5, 9, 13)


def _pointwise(x, filters, *, name):
    """1x1 convolution, no bias, no normalisation."""
    return layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer="he_normal", name=name
    )(x)


def adsc_unit(x, *, strides=1, dilation=1, activation="relu6", name):
    """ADSC unit: dw 3x1 -> 1x1 -> dw 1x3 -> 1x1; residual (stride 1) or || avg pool (stride 2)."""
    if strides not in (1, 2):
        raise ValueError(f"{name}: strides must be 1 or 2, got {strides}")
    channels = x.shape[-1]
    y = depthwise_bn_act(
        x, (3, 1), strides=strides, dilation_rate=(dilation, 1), activation=activation,
        name=f"{name}_dw3x1",
    )
    y = _pointwise(y, channels, name=f"{name}_pw1")
    y = depthwise_bn_act(
        y, (1, 3), dilation_rate=(1, dilation), activation=activation, name=f"{name}_dw1x3"
    )
    y = _pointwise(y, channels, name=f"{name}_pw2")
    if strides == 1:
        return layers.Add(name=f"{name}_add")([x, y])
    pool = SameAveragePooling2D(3, strides=2, name=f"{name}_pool")(x)
    return layers.Concatenate(name=f"{name}_concat")([y, pool])


def ddcc(x, *, dilations=DDCC_DILATIONS, activation="relu6", name):
    """Dense Dilated Convolution Connections: pooled, dilated ADSC units densely connected."""
    channels = x.shape[-1]
    outputs = [x]
    for k, d in enumerate(dilations):
        if k == 0:
            y = x
        else:
            y = layers.Concatenate(name=f"{name}_b{k + 1}_concat")(outputs)
            y = _pointwise(y, channels, name=f"{name}_b{k + 1}_proj")
        y = SameAveragePooling2D(d, strides=1, name=f"{name}_b{k + 1}_pool")(y)
        outputs.append(adsc_unit(y, dilation=d, activation=activation, name=f"{name}_b{k + 1}"))
    y = layers.Concatenate(name=f"{name}_concat")(outputs)
    return _pointwise(y, channels, name=f"{name}_fuse")


def _deconv_bn_relu(x, filters, *, name):
    """3x3/2 transposed convolution (with bias) + BN + ReLU."""
    x = layers.Conv2DTranspose(
        filters, 3, strides=2, padding="same", kernel_initializer="he_normal", name=f"{name}_deconv"
    )(x)
    return bn_act(x, "relu", name=name)


@MODELS.register(
    "adscnet",
    stride=8,
    paper="ADSCNet (Wang et al., 2019)",
    reference="ADSCNet",
    features={8: "adscnet_ddcc_fuse"},
)
def adscnet(inputs, num_classes, *, activation="relu6", name="adscnet"):
    """ADSCNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      activation: activation of the stem and of the ADSC units' depthwise convolutions (the
        reference's ``act_type``, ReLU6); the decoder's transposed convolutions use ReLU.
      name: layer-name prefix.
    """
    act = activation
    x = conv_bn_act(inputs, 32, 3, strides=2, activation=act, name=f"{name}_conv0")
    x1 = adsc_unit(x, activation=act, name=f"{name}_conv1")
    x = adsc_unit(x1, activation=act, name=f"{name}_conv2")
    x = adsc_unit(x, strides=2, activation=act, name=f"{name}_conv3")
    x4 = adsc_unit(x, activation=act, name=f"{name}_conv4")
    x = adsc_unit(x4, strides=2, activation=act, name=f"{name}_conv5")
    x = ddcc(x, activation=act, name=f"{name}_ddcc")

    x = _deconv_bn_relu(x, 64, name=f"{name}_up1")
    x = adsc_unit(x, activation=act, name=f"{name}_up1_adsc")
    x = layers.Add(name=f"{name}_skip4")([x, x4])
    x = adsc_unit(x, activation=act, name=f"{name}_up2_adsc")
    x = _deconv_bn_relu(x, 32, name=f"{name}_up2")
    x = layers.Add(name=f"{name}_skip2")([x, x1])
    x = adsc_unit(x, activation=act, name=f"{name}_up3_adsc")
    return layers.Conv2DTranspose(
        num_classes, 3, strides=2, padding="same", name=f"{name}_classifier"
    )(x)
