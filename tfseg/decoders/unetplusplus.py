"""UNet++ (Zhou et al., 2018) in segmentation_models_pytorch's layout (SMP ``UnetPlusPlus``).

Paper: "UNet++: A Nested U-Net Architecture for Medical Image Segmentation" (DLMIA 2018): the
encoder and decoder are joined by nested, dense skip pathways; node ``X^{i,j}`` convolves the
concatenation of all earlier nodes of its scale and the upsampled node of the scale below.

SMP layout (checked against ``decoders/unetplusplus/decoder.py`` and ``model.py``, 0.3.x; 0.6.0
gives the same parameters and MACs). Encoder at output stride 32; with features ``f_0..f_4`` =
P5..P1 (deepest first) and ``c_i`` the channels of ``f_{i+1}`` (the skip widths), SMP's node
``x_{d}_{j}`` (depth ``d`` <= layer ``j`` < 4) is a U-Net decoder block (nearest x2 upsampling,
concatenation, two 3x3 convolution-BN-ReLU) at the scale of ``f_{j+1}``:

- ``x_{d}_{d} = block(f_d, [f_{d+1}])``;
- ``x_{d}_{j} = block(x_{d}_{j-1}, [x_{d+1}_{j}, ..., x_{j}_{j}, f_{j+1}])`` for ``j > d``;
- output channels: the decoder channels 256/128/64/32 for ``d = 0`` (the U-Net spine
  ``x_0_0..x_0_3``), the skip width ``c_j`` for the nested nodes ``d > 0``;
- ``x_0_4 = block(x_0_3, [])`` with 16 channels at the input resolution, then SMP's head: a 3x3
  convolution with bias to the classes (no upsampling, no activation).

Eleven blocks in all; only the spine's output feeds the head (no deep supervision, as in SMP).

Departures from SMP: none in parameters or MACs. Keras "same" padding (equal to SMP's padding 1 for
these stride-1 3x3 convolutions) and BN epsilon 1e-3 (PyTorch 1e-5), tfseg's conventions. SMP's
``UnetPlusPlusDecoder`` builds a centre block for VGG encoders but its forward never calls it (so
SMP counts parameters that do not run); it is not offered here. ``decoder_use_batchnorm="inplace"``
(InPlaceABN) is not offered either, nor SMP's ``encoder_depth`` 3 or 4 (``build_model`` builds and
records all five pyramid levels; SMP's default is 5).

Against ``docs/reference/smp_reference.csv`` (trainable parameters for 19 classes; conv/matmul
GMACs at 1x3x512x1024; tfseg's ResNet-50/101 with ``layout="torchvision"``, MobileNetV2 with
``include_last_conv=True``):

================  ==============  ==============  =========  =========
encoder           params (tfseg)  params (SMP)    GMACs      SMP GMACs
================  ==============  ==============  =========  =========
resnet18          15,973,059      15,973,059      129.10     129.10
resnet50          48,988,355      48,988,355      460.89     460.89
resnet101         67,980,483      67,980,483      499.68     499.68
mobilenet_v2      6,827,331       6,827,331       36.90      36.90
================  ==============  ==============  =========  =========
"""

from tfseg.decoders._smp_blocks import check_options, decoder_block, segmentation_head
from tfseg.registry import DECODERS


@DECODERS.register(
    "unetplusplus",
    encoder_output_stride=32,
    paper="UNet++ (Zhou et al., 2018), SMP layout",
    smp_reference="unetpp",
)
def unetplusplus(
    pyramid,
    num_classes,
    *,
    decoder_channels=(256, 128, 64, 32, 16),
    use_batchnorm=True,
    attention_type=None,
    name="unetplusplus",
):
    """SMP's ``UnetPlusPlus`` decoder and head over ``pyramid`` (see the module docstring).

    Args:
      decoder_channels: output channels of the spine blocks ``x_0_0..x_0_4``, deepest first (SMP's
        ``decoder_channels``), five. The nested nodes take the skip widths.
      use_batchnorm: BN after each decoder convolution (SMP's ``decoder_use_batchnorm``); without
        it the convolutions have biases.
      attention_type: ``None`` or ``"scse"`` (SMP's ``decoder_attention_type``).
    """
    channels = check_options("unetplusplus", pyramid, decoder_channels, attention_type)
    n = len(channels)  # 5 levels, P5..P1
    features = [pyramid[f"P{n - i}"] for i in range(n)]  # deepest first, as SMP's reversed list
    skip_width = [f.shape[-1] for f in features[1:]]

    def block(x, skips, d, j):
        filters = channels[j] if d == 0 else skip_width[j]
        return decoder_block(
            x,
            skips,
            filters,
            use_batchnorm=use_batchnorm,
            attention_type=attention_type,
            name=f"{name}_x{d}_{j}",
        )

    dense = {}
    for step in range(n - 1):  # SMP's layer_idx: the distance j - d of the nodes built
        for d in range(n - 1 - step):
            j = d + step  # the node x_{d}_{j}
            if step == 0:
                dense[d, j] = block(features[d], [features[d + 1]], d, j)
            else:
                nested = [dense[k, j] for k in range(d + 1, j + 1)]
                dense[d, j] = block(dense[d, j - 1], nested + [features[j + 1]], d, j)
    x = decoder_block(
        dense[0, n - 2],
        [],
        channels[n - 1],
        use_batchnorm=use_batchnorm,
        attention_type=attention_type,
        name=f"{name}_x0_{n - 1}",
    )
    return segmentation_head(x, num_classes, name=f"{name}_head")
