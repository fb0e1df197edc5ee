"""ESNet (Wang et al., 2019): an Efficient Symmetric Network of factorised convolution units.

Y. Wang, Q. Zhou, J. Xiong, X. Wu, X. Jin, "ESNet: An Efficient Symmetric Network for Real-time
Semantic Segmentation", PRCV 2019 (arXiv:1906.09826).

A nearly symmetric encoder-decoder (stride 8):

- downsampling unit (ENet's initial block, as in the reference zoo): a 3x3/2 convolution + BN + ReLU
  to ``out - in`` channels concatenated with a 3x3/2 max-pool of the input; 3 -> 16, 16 -> 64,
  64 -> 128;
- FCU (factorised convolution unit, ERFNet's non-bottleneck-1D with a ``K``x1 / 1x``K`` kernel):
  Kx1 -> ReLU -> 1xK -> BN -> ReLU -> Kx1 -> ReLU -> 1xK -> BN, + input, ReLU;
- PFCU (parallel FCU): 3x1 -> ReLU -> 1x3 -> BN -> ReLU, then three parallel dilated pairs
  (3x1 -> ReLU -> 1x3 -> BN, dilations 2, 5 and 9), summed with the input, ReLU;
- encoder: down 16, 3 FCU (K=3), down 64, 2 FCU (K=5), down 128, 3 PFCU;
- decoder: 3x3/2 transposed convolution + BN + ReLU to 64, 2 FCU (K=5), the same to 16, 2 FCU (K=3),
  and a 3x3/2 transposed convolution to the classes.

Follows the PyTorch reference zoo (zh320/realtime-semantic-segmentation-pytorch,
``models/esnet.py``): bias-free convolutions, no dropout, one BN per dilated branch. One difference
by default: the reference ends with BN + ReLU on the logits (its ``DeConvBNAct``), which clips every
logit at zero (where all classes' pre-activations are negative the logits are all 0, the argmax
falls to class 0 and no gradient passes the ReLU); tfseg keeps the same 3x3/2 transposed
convolution (with bias) but leaves the logits linear, as the authors' code does (their last layer
is a linear 2x2/2 transposed convolution). ``output_bn_act=True`` builds the reference's head
exactly (38 more parameters with 19 classes).

Kernels start as PyTorch initialises them (``torch_init``; the reference sets no initialiser), not
tfseg's usual He-normal: with He-normal, the 12 residual units and 3 transposed convolutions of a
fresh model (BN statistics still 0/1) grow inference-mode logits to ~100, where fp32 reassociation
alone (BN folding, LiteRT, ONNX) differs by ~3e-4 and fails the contract's 1e-4 export parity; with
PyTorch's initialisation they stay ~0.2 and the exports agree to ~1e-7.

Transposed convolutions and stride-2 layers use Keras' "same" alignment (PyTorch pads the other
side: the convolution and the max-pool of a downsampling unit stay aligned with each other); BN uses
tfseg's epsilon (1e-3).

Parameters with 19 classes: 1,657,420 (reference 1,657,458 with the BN + ReLU head; 1,657,458 with
``output_bn_act=True``); 24.25 GMACs at 1x3x512x1024 (reference 24.25).

>>> model = tfseg.build_model("esnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers.blocks import _activation
from tfseg.layers.blocks import deconv_bn_act as _deconv_bn_act
from tfseg.layers.downsample import conv_pool_downsample
from tfseg.layers.factorized import factorized_conv
from tfseg.layers.init import torch_init
from tfseg.registry import MODELS


def _keras_act(activation):
    """``tfseg.layers.blocks._activation`` as an ``act`` callable (``"prelu"``: one slope per
    channel, as ESNet/FDDWNet always had), or ``None``."""
    if activation is None:
        return None
    return lambda y, layer_name: _activation(y, activation, name=layer_name)


def initial_block(x, filters, *, activation="relu", name):
    """ENet's initial block: (3x3/2 convolution + BN + activation to ``filters - C``) || 3x3/2
    max-pool of ``x``, concatenated (no normalisation after the concatenation).

    The reference zoo's downsampling unit of ESNet and FDDWNet (``enet.InitialBlock``)."""
    return conv_pool_downsample(
        x, filters, activation=_keras_act(activation), kernel_initializer=torch_init,
        branch_name=name, activation_name=f"{name}_{activation}", name=name,
    )


def deconv_bn_act(x, filters, *, activation="relu", name):
    """3x3/2 transposed convolution (with bias) + BN + activation: doubles H and W.

    The reference zoo's ``DeConvBNAct`` (``activation=None`` leaves it linear after the BN)."""
    return _deconv_bn_act(
        x, filters, activation=_keras_act(activation), activation_name=f"{name}_{activation}",
        kernel_initializer=torch_init(), name=name,
    )


def output_deconv(x, num_classes, *, bn_activation=None, name):
    """The last 3x3/2 transposed convolution to the classes; ``bn_activation`` (e.g. ``"relu"``)
    adds the reference's BN + activation on the logits."""
    if bn_activation is not None:
        return deconv_bn_act(x, num_classes, activation=bn_activation, name=name)
    return layers.Conv2DTranspose(
        num_classes,
        3,
        strides=2,
        padding="same",
        kernel_initializer=torch_init(),
        name=f"{name}_deconv",
    )(x)


def factorized_pair(x, kernel, *, dilation=1, activation="relu", bn_activation="relu", name):
    """Kx1 -> activation -> 1xK -> BN (-> ``bn_activation``; ``None`` keeps it linear), both
    bias-free and with ``dilation`` along their long axis; keeps the channel count."""
    return factorized_conv(
        x, None, kernel, dilation=dilation, activation_between=_keras_act(activation),
        activation=_keras_act(bn_activation), kernel_initializer=torch_init,
        names={
            "act1": f"{name}_{kernel}x1_{activation}",
            "conv2": f"{name}_1x{kernel}_conv",
            "act2": f"{name}_1x{kernel}_{bn_activation}",
        },
        name=name,
    )


def fcu(x, kernel, *, activation="relu", name):
    """Factorised convolution unit: two Kx1/1xK pairs, + input, activation."""
    y = factorized_pair(
        x, kernel, activation=activation, bn_activation=activation, name=f"{name}_a"
    )
    y = factorized_pair(y, kernel, activation=activation, bn_activation=None, name=f"{name}_b")
    y = layers.Add(name=f"{name}_add")([x, y])
    return _activation(y, activation, name=f"{name}_out")


def pfcu(x, dilations=(2, 5, 9), *, activation="relu", name, out_name=None):
    """Parallel factorised convolution unit: a 3x1/1x3 pair, then one dilated pair per dilation in
    parallel, summed with the input, activation."""
    y = factorized_pair(x, 3, activation=activation, bn_activation=activation, name=f"{name}_0")
    branches = [
        factorized_pair(
            y, 3, dilation=d, activation=activation, bn_activation=None, name=f"{name}_d{d}"
        )
        for d in dilations
    ]
    y = layers.Add(name=f"{name}_add")([x, *branches])
    return _activation(y, activation, name=out_name or f"{name}_out")


@MODELS.register(
    "esnet",
    stride=8,
    paper="ESNet (Wang et al., 2019)",
    reference="ESNet",
    features={8: "esnet_encoder_out"},
)
def esnet(
    inputs,
    num_classes,
    *,
    pfcu_dilations=(2, 5, 9),
    activation="relu",
    output_bn_act=False,
    name="esnet",
):
    """ESNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      pfcu_dilations: dilations of the parallel branches of every PFCU (reference r1, r2, r3).
      activation: every activation (``"relu"`` as the reference).
      output_bn_act: end with the reference's BN + activation on the logits (default: linear).
      name: layer-name prefix.
    """
    act = {"activation": activation}
    x = initial_block(inputs, 16, name=f"{name}_down1", **act)
    for i in range(3):
        x = fcu(x, 3, name=f"{name}_block1_{i + 1}", **act)
    x = initial_block(x, 64, name=f"{name}_down2", **act)
    for i in range(2):
        x = fcu(x, 5, name=f"{name}_block2_{i + 1}", **act)
    x = initial_block(x, 128, name=f"{name}_down3", **act)
    for i in range(3):
        out_name = f"{name}_encoder_out" if i == 2 else None
        x = pfcu(x, tuple(pfcu_dilations), name=f"{name}_block3_{i + 1}", out_name=out_name, **act)
    x = deconv_bn_act(x, 64, name=f"{name}_up4", **act)
    for i in range(2):
        x = fcu(x, 5, name=f"{name}_block4_{i + 1}", **act)
    x = deconv_bn_act(x, 16, name=f"{name}_up5", **act)
    for i in range(2):
        x = fcu(x, 3, name=f"{name}_block5_{i + 1}", **act)
    return output_deconv(
        x, num_classes, bn_activation=activation if output_bn_act else None, name=f"{name}_output"
    )
