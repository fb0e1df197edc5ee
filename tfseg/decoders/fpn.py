"""FPN decoder in the layout of segmentation_models_pytorch (SMP 0.3.2 / 0.6.0, ``smp.FPN``).

Paper: A. Kirillov, K. He, R. Girshick, P. Dollar, "Panoptic Feature Pyramid Networks", CVPR 2019
(Kirillov et al., 2019), sec. 3 "semantic segmentation branch" (first shown at the COCO 2017 Stuff
challenge, which SMP cites). Layout checked against SMP's ``decoders/fpn/decoder.py`` and
``model.py`` (v0.3.2; unchanged in 0.6.0 for these settings). With ``c2..c5`` the channels of the
encoder's P2..P5 (read from the tensors):

- top-down pyramid of ``pyramid_channels`` (256): ``p5 = conv1x1(P5)``, then for P4, P3, P2
  ``p_k = nearest_x2(p_{k+1}) + conv1x1(P_k)`` (1x1 lateral convolutions with a bias, no
  normalisation);
- one segmentation block per pyramid level, ``segmentation_channels`` (128) wide: a 3x3 convolution
  (no bias) + GroupNorm(32) + ReLU, followed by a bilinear x2, repeated until the level reaches
  stride 4 (p5: three times, p4: twice, p3: once, p2: one 3x3 + GN + ReLU without upsampling);
- the four stride-4 maps merged by a sum (``merge_policy="add"``; ``"cat"`` concatenates them,
  4 x 128 channels), spatial dropout (``Dropout2d``, 0.2);
- head: a 1x1 convolution to the classes (with a bias) and a bilinear x4 to the input resolution.

Departures from SMP (none changes a parameter or a MAC):

- bilinear upsamplings (segmentation blocks and head) are half-pixel (``BilinearUpsample``), where
  SMP uses ``align_corners=True``: tfseg's convention, exportable with constant scales;
- GroupNorm keeps PyTorch's epsilon (1e-5) and is Keras' with a division by the standard deviation
  in place of ``rsqrt`` (``ExportableGroupNormalization``: TensorRT 8.2 parses no ``Reciprocal``);
- Keras' "same" padding; ``he_normal`` initialisation;
- SMP's ``encoder_depth`` (3..5) is not an option: the decoder always reads P2..P5.

Trainable parameters (19 classes) and conv GMACs at 1x3x512x1024 against SMP 0.3.2
(``docs/reference/smp_reference.csv``; tfseg's ``resnet50``/``resnet101`` with
``layout="torchvision"``, ``mobilenetv2`` with ``include_last_conv=True``):

=============  ==========  ==========  =======  ======
encoder        tfseg       SMP         GMACs    SMP
=============  ==========  ==========  =======  ======
resnet18       13,049,555  13,049,555  35.589   35.59
resnet50       26,118,355  26,118,355  62.365   62.37
resnet101      45,110,483  45,110,483  101.154  101.15
mobilenet_v2   4,217,747   4,217,747   19.248   19.25
=============  ==========  ==========  =======  ======

>>> model = tfseg.build_model("fpn", 19, encoder="resnet18", input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample, ExportableGroupNormalization
from tfseg.registry import DECODERS

MERGE_POLICIES = ("add", "cat")
GROUPS = 32


def _conv_gn_relu(x, filters, *, upsample, name):
    """3x3 convolution (no bias) + GroupNorm(32) + ReLU, then a bilinear x2 if ``upsample``."""
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = ExportableGroupNormalization(groups=GROUPS, epsilon=1e-5, name=f"{name}_gn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    if upsample:
        x = BilinearUpsample(2, name=f"{name}_up")(x)
    return x


def segmentation_block(x, filters, num_upsamples, *, name):
    """SMP's ``SegmentationBlock``: ``max(1, num_upsamples)`` conv-GN-ReLU units, each followed by
    a bilinear x2 when ``num_upsamples > 0``."""
    for i in range(max(1, num_upsamples)):
        x = _conv_gn_relu(x, filters, upsample=num_upsamples > 0, name=f"{name}_{i + 1}")
    return x


def _lateral(x, filters, *, name):
    return layers.Conv2D(filters, 1, kernel_initializer="he_normal", name=name)(x)


@DECODERS.register(
    "fpn",
    encoder_output_stride=32,
    paper="Panoptic FPN (Kirillov et al., 2019), SMP layout",
    smp_reference="fpn",
    # The model contract (tests/decoders/test_smp_decoders.py) on narrower maps: same layers, ops.
    contract_kwargs={"pyramid_channels": 64, "segmentation_channels": 32},
)
def fpn(
    pyramid,
    num_classes,
    *,
    pyramid_channels=256,
    segmentation_channels=128,
    merge_policy="add",
    dropout=0.2,
    name="fpn",
):
    """SMP's FPN over P2..P5 (see the module docstring); logits at the input resolution.

    Args:
      pyramid_channels: width of the top-down pyramid (SMP's ``decoder_pyramid_channels``).
      segmentation_channels: width of the segmentation blocks, a multiple of 32 (GroupNorm(32);
        SMP's ``decoder_segmentation_channels``).
      merge_policy: ``"add"`` sums the four stride-4 maps, ``"cat"`` concatenates them.
      dropout: spatial dropout rate after the merge (``Dropout2d``; 0 leaves it out).
    """
    if merge_policy not in MERGE_POLICIES:
        raise ValueError(
            f"{name}: merge_policy must be one of {MERGE_POLICIES}, got {merge_policy!r}"
        )
    if segmentation_channels % GROUPS:
        raise ValueError(
            f"{name}: segmentation_channels must be a multiple of {GROUPS} (GroupNorm), "
            f"got {segmentation_channels}"
        )
    p = {5: _lateral(pyramid["P5"], pyramid_channels, name=f"{name}_p5_lateral")}
    for k in (4, 3, 2):
        top = layers.UpSampling2D(2, name=f"{name}_p{k}_up")(p[k + 1])
        lateral = _lateral(pyramid[f"P{k}"], pyramid_channels, name=f"{name}_p{k}_lateral")
        p[k] = layers.Add(name=f"{name}_p{k}_add")([top, lateral])
    maps = [
        segmentation_block(p[k], segmentation_channels, k - 2, name=f"{name}_seg{k}")
        for k in (5, 4, 3, 2)
    ]
    if merge_policy == "add":
        x = layers.Add(name=f"{name}_merge")(maps)
    else:
        x = layers.Concatenate(name=f"{name}_merge")(maps)
    if dropout:
        x = layers.SpatialDropout2D(float(dropout), name=f"{name}_dropout")(x)
    x = layers.Conv2D(num_classes, 1, kernel_initializer="he_normal", name=f"{name}_head")(x)
    return BilinearUpsample(4, name=f"{name}_head_up")(x)
