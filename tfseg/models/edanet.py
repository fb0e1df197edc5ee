"""EDANet (Lo et al., 2018): Efficient Dense modules of Asymmetric convolution.

S.-Y. Lo, H.-M. Hang, S.-W. Chan, J.-J. Lin, "Efficient Dense Modules of Asymmetric Convolution for
Real-Time Semantic Segmentation", ACM Multimedia Asia 2019 (arXiv:1809.06323, 2018).

A decoder-free network: three downsamplings to stride 8, two dense stages of EDA modules, a 1x1
projection to the classes and an x8 bilinear upsampling.

- downsampling block (ENet/ERFNet style): 3x3/2 convolution to ``out - in`` channels concatenated
  with a 2x2/2 max-pool of the input, BN + ReLU. 3 -> 15 (stride 2), 15 -> 60 (stride 4). The third
  downsampling has fewer outputs than inputs (260 -> 130), so it is a plain 3x3/2 convolution + BN +
  ReLU, as in the paper;
- EDA module (dense, growth rate ``k`` = 40): 1x1 convolution to ``k`` (BN + ReLU), then two
  asymmetric pairs 3x1 -> 1x3 (BN + ReLU after each pair), the second pair dilated; its ``k`` new
  channels are concatenated in front of its input (DenseNet-style), so every module adds ``k``;
- stage 2: 5 modules at stride 4 (dilations 1, 1, 1, 2, 2): 60 -> 260 channels;
  stage 3: 8 modules at stride 8 (dilations 2, 2, 4, 4, 8, 8, 16, 16): 130 -> 450 channels;
- head: 1x1 convolution (no bias) to the classes, bilinear x8.

Follows the PyTorch reference zoo (zh320/realtime-semantic-segmentation-pytorch,
``models/edanet.py``): no dropout in the modules (the paper uses 0.02), no bias in the projection.
Differences, both without parameters: the x8 upsampling is half-pixel bilinear
(``BilinearUpsample``, a constant-scale resize that exports to TensorRT) where the reference uses
``align_corners=True``; BatchNorm uses tfseg's epsilon (1e-3, PyTorch 1e-5).
``activation="prelu"`` gives per-channel slopes (the reference's ``nn.PReLU()`` has one per layer).

Parameters with 19 classes: 686,679 (reference 686,679); 8.83 GMACs at 1x3x512x1024
(reference 8.83).

>>> model = tfseg.build_model("edanet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, conv_bn_act
from tfseg.layers.nonbt import downsampler_block
from tfseg.registry import MODELS

# The reference's dilations of the two dense stages (their lengths are num_b1 and num_b2).
DILATIONS_STAGE2 = (1, 1, 1, 2, 2)
DILATIONS_STAGE3 = (2, 2, 4, 4, 8, 8, 16, 16)


def eda_module(x, k, *, dilation=1, activation="relu", name, out_name=None):
    """One EDA module: ``k`` new channels (1x1, 3x1 -> 1x3, dilated 3x1 -> 1x3) concatenated before
    ``x``; the output (layer ``out_name``, default ``{name}_concat``) has ``C + k`` channels."""
    y = conv_bn_act(x, k, 1, activation=activation, name=f"{name}_1x1")
    y = layers.Conv2D(
        k,
        (3, 1),
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_3x1a",
    )(y)
    y = conv_bn_act(y, k, (1, 3), activation=activation, name=f"{name}_1x3a")
    y = layers.Conv2D(
        k,
        (3, 1),
        padding="same",
        dilation_rate=(dilation, 1),
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_3x1b",
    )(y)
    y = conv_bn_act(
        y, k, (1, 3), dilation_rate=(1, dilation), activation=activation, name=f"{name}_1x3b"
    )
    return layers.Concatenate(name=out_name or f"{name}_concat")([y, x])


def _dilations(given, count, default, what):
    if given is None:
        if count != len(default):
            raise ValueError(
                f"edanet: {what} has {count} modules; give its dilations as well "
                f"(the reference's {len(default)} are {default})"
            )
        return tuple(default)
    given = tuple(int(d) for d in given)
    if len(given) != count:
        raise ValueError(f"edanet: {len(given)} dilations for the {count} modules of {what}")
    return given


@MODELS.register(
    "edanet",
    stride=8,
    paper="EDANet (Lo et al., 2018)",
    reference="EDANet",
    features={8: "edanet_stage3_out"},
)
def edanet(
    inputs,
    num_classes,
    *,
    k=40,
    num_b1=5,
    num_b2=8,
    dilations1=None,
    dilations2=None,
    activation="relu",
    name="edanet",
):
    """EDANet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      k: growth rate (channels each EDA module adds).
      num_b1, num_b2: EDA modules in stage 2 (stride 4) and stage 3 (stride 8).
      dilations1, dilations2: their dilations (default: the reference's, for 5 and 8 modules).
      activation: activation after every BN (``"relu"`` as the reference).
      name: layer-name prefix.
    """
    dilations1 = _dilations(dilations1, num_b1, DILATIONS_STAGE2, "stage 2")
    dilations2 = _dilations(dilations2, num_b2, DILATIONS_STAGE3, "stage 3")
    x = downsampler_block(inputs, 15, activation=activation, name=f"{name}_down1")
    x = downsampler_block(x, 60, activation=activation, name=f"{name}_down2")
    for i, d in enumerate(dilations1):
        x = eda_module(x, k, dilation=d, activation=activation, name=f"{name}_stage2_{i + 1}")
    x = conv_bn_act(x, 130, 3, strides=2, activation=activation, name=f"{name}_down3")
    for i, d in enumerate(dilations2):
        last = i == len(dilations2) - 1
        x = eda_module(
            x,
            k,
            dilation=d,
            activation=activation,
            name=f"{name}_stage3_{i + 1}",
            out_name=f"{name}_stage3_out" if last else None,
        )
    x = layers.Conv2D(num_classes, 1, use_bias=False, name=f"{name}_project")(x)
    return BilinearUpsample(8, name=f"{name}_upsample")(x)
