"""FDDWNet (Liu et al., 2019): factorised dilated depth-wise separable convolutions.

J. Liu, Q. Zhou, Y. Qiang, B. Kang, X. Wu, B. Zheng, "FDDWNet: A Lightweight Convolutional Neural
Network for Real-time Semantic Segmentation", ICASSP 2020 (arXiv:1911.00632, 2019).

A deep, narrow encoder-decoder (stride 8) of 31 layers built from EERM units:

- downsampling unit (ENet's initial block, as in the reference zoo: ``esnet.initial_block``): a
  3x3/2 convolution + BN + ReLU to ``out - in`` channels concatenated with a 3x3/2 max-pool;
- EERM unit (extremely efficient residual module, ``ks`` = 3): depth-wise Kx1 -> BN -> depth-wise
  1xK -> BN -> 1x1 -> BN -> ReLU -> dilated depth-wise Kx1 -> BN -> dilated depth-wise 1xK -> BN
  -> 1x1 -> BN, + input, ReLU (two factorised depth-wise separable convolutions, the second
  dilated);
- encoder: layers 1-2 down to 16 and 64 channels, 3-7 five EERM (dilation 1) at stride 4, 8 down to
  128, 9-16 eight EERM (dilations 1, 2, 5, 9, twice), 17-24 eight EERM (2, 5, 9, 17, twice);
- decoder: 25 a 3x3/2 transposed convolution + BN + ReLU to 64, 26-27 two EERM, plus the output of
  layer 7 (the skip connection), 28 the same up to 16, 29-30 two EERM, 31 a 3x3/2 transposed
  convolution to the classes.

Follows the PyTorch reference zoo (zh320/realtime-semantic-segmentation-pytorch,
``models/fddwnet.py``): bias-free convolutions in the units, no dropout. As in ``esnet``, the last
layer leaves the logits linear by default, where the reference adds BN + ReLU (a ReLU clips every
logit at zero); ``output_bn_act=True`` builds the reference's head exactly (38 more parameters with
19 classes). Kernels start as PyTorch initialises them (``tfseg.layers.init.torch_init``;
depth-wise kernels ``torch_depthwise_init``, U(+-1/sqrt(Kh*Kw))), which keeps a fresh model's
inference-mode logits small (see ``esnet``), rather than tfseg's usual He-normal / Glorot.
BN uses tfseg's epsilon (1e-3); stride-2 layers use Keras' "same" alignment.

Parameters with 19 classes: 773,644 (reference 773,682 with the BN + ReLU head; 773,682 with
``output_bn_act=True``); 8.58 GMACs at 1x3x512x1024 (reference 8.58).

>>> model = tfseg.build_model("fddwnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import bn_act
from tfseg.layers.blocks import _activation
from tfseg.layers.factorized import factorized_conv
from tfseg.layers.init import torch_depthwise_init, torch_init
from tfseg.models.esnet import deconv_bn_act, initial_block, output_deconv
from tfseg.registry import MODELS

DILATIONS_9_16 = (1, 2, 5, 9, 1, 2, 5, 9)
DILATIONS_17_24 = (2, 5, 9, 17, 2, 5, 9, 17)


def _depthwise_pair(x, ks, *, dilation, name, tag):
    """Bias-free depth-wise Kx1 -> BN -> depth-wise 1xK -> BN (no activation)."""
    a, b = f"{name}_dw{ks}x1{tag}", f"{name}_dw1x{ks}{tag}"
    return factorized_conv(
        x, None, ks, dilation=dilation, depthwise=True, bn_between=True,
        kernel_initializer=lambda: torch_depthwise_init((ks, 1)),
        names={"conv1": f"{a}_dwconv", "bn1": f"{a}_bn", "conv2": f"{b}_dwconv", "bn2": f"{b}_bn"},
        name=name,
    )


def _pointwise_bn_act(x, activation, *, name):
    """Bias-free 1x1 convolution + BN + ``activation`` (``None``: linear)."""
    x = layers.Conv2D(
        x.shape[-1], 1, use_bias=False, kernel_initializer=torch_init(), name=f"{name}_conv"
    )(x)
    return bn_act(x, activation, name=name)


def eerm_unit(x, ks=3, *, dilation=1, activation="relu", name):
    """EERM unit: two factorised depth-wise separable convolutions (the second dilated), + input,
    activation; keeps the shape of ``x``."""
    y = _depthwise_pair(x, ks, dilation=1, name=name, tag="a")
    y = _pointwise_bn_act(y, activation, name=f"{name}_pw_a")
    y = _depthwise_pair(y, ks, dilation=dilation, name=name, tag="b")
    y = _pointwise_bn_act(y, None, name=f"{name}_pw_b")
    y = layers.Add(name=f"{name}_add")([x, y])
    return _activation(y, activation, name=f"{name}_out")


@MODELS.register(
    "fddwnet",
    stride=8,
    paper="FDDWNet (Liu et al., 2019)",
    reference="FDDWNet",
    features={8: "fddwnet_layer24_out"},
)
def fddwnet(
    inputs,
    num_classes,
    *,
    ks=3,
    activation="relu",
    output_bn_act=False,
    name="fddwnet",
):
    """FDDWNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      ks: kernel length of the factorised depth-wise convolutions (Kx1 and 1xK).
      activation: every activation (``"relu"`` as the reference).
      output_bn_act: end with the reference's BN + activation on the logits (default: linear).
      name: layer-name prefix.
    """
    ks = int(ks)
    if ks < 1 or ks % 2 == 0:
        raise ValueError(f"fddwnet: ks must be a positive odd kernel length, got {ks}")
    act = {"activation": activation}

    def units(x, first, dilations):
        for i, d in enumerate(dilations):
            x = eerm_unit(x, ks, dilation=d, name=f"{name}_layer{first + i}", **act)
        return x

    x = initial_block(inputs, 16, name=f"{name}_layer1", **act)
    x = initial_block(x, 64, name=f"{name}_layer2", **act)
    skip = units(x, 3, (1,) * 5)
    x = initial_block(skip, 128, name=f"{name}_layer8", **act)
    x = units(x, 9, DILATIONS_9_16)
    x = units(x, 17, DILATIONS_17_24)
    x = deconv_bn_act(x, 64, name=f"{name}_layer25", **act)
    x = units(x, 26, (1, 1))
    x = layers.Add(name=f"{name}_skip")([x, skip])
    x = deconv_bn_act(x, 16, name=f"{name}_layer28", **act)
    x = units(x, 29, (1, 1))
    return output_deconv(
        x, num_classes, bn_activation=activation if output_bn_act else None, name=f"{name}_layer31"
    )
