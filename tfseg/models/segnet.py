"""SegNet (Badrinarayanan, Kendall and Cipolla, 2017): an encoder-decoder whose decoder upsamples
with the max-pooling indices of the encoder.

Paper: V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
Architecture for Image Segmentation", IEEE TPAMI 39(12), 2017 (arXiv:1511.00561). Layout as in the
PyTorch reference zoo (``models/segnet.py`` of zh320/realtime-semantic-segmentation-pytorch), whose
parameter count tfseg matches; every convolution is 3x3 without bias, followed by BatchNorm and
ReLU (``width`` = 64 is the reference's ``hid_channel``):

- encoder (stride 32): the 13 convolutions of VGG16 in five stages of 2, 2, 3, 3, 3 convolutions
  to 64, 128, 256, 512, 512 channels, each stage closed by a 2x2/2 max-pool that keeps its switches
  (the position of each window's maximum);
- decoder, mirror of the encoder: each stage first max-unpools with the switches of the matching
  encoder pool (the value goes back where the maximum was, zeros elsewhere), then convolves: stages
  5, 4, 3 (at 1/16, 1/8, 1/4) keep their input width for two convolutions and reach 512, 256, 128
  channels with a third; stages 2 and 1 (at 1/2, 1/1) have two convolutions, the first keeping the
  width, the second to 64 channels;
- a 3x3 convolution + BatchNorm to the classes (the logits).

Max-pooling with switches and max-unpooling are ``tfseg.layers.max_pool_with_switches`` and
``MaxUnpool2D`` (exact, ties to the first position of the window like PyTorch's indices, and
exportable with dynamic sizes: strided slices, comparisons and reshapes, no ScatterND).

Departures from the reference:

- the logits are linear: the reference's classifier is a ConvBNAct (convolution + BN + ReLU), whose
  ReLU clamps every negative logit to zero; tfseg keeps the convolution and the BN and drops the
  ReLU (no parameters change);
- BatchNorm epsilon 1e-3 (tfseg's) instead of 1e-5.

As the reference, tfseg trains it from scratch (the paper can start the encoder from ImageNet VGG16
weights), with He-normal convolutions: without residual additions the untrained logits stay small
and export parity needs no special initialisation. The model-contract test builds it at
``width=16`` (1,846,058 parameters for 5 classes, the same layers), because tf2onnx's time grows
with the weight bytes; the full width passed the same contract once (223 s on the shared machine).

Parameters with 19 classes: 29,483,046 (reference 29,483,046); 344.87 conv GMACs at 512x1024
(reference 344.87).

>>> model = tfseg.build_model("segnet", 19, input_shape=(512, 1024, 3))
"""

from tfseg.layers import MaxUnpool2D, conv_bn_act, max_pool_with_switches
from tfseg.registry import MODELS

# Convolutions per encoder stage (VGG16: 2, 2, 3, 3, 3) and their width as multiples of ``width``.
ENCODER_STAGES = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))


def encoder_stage(x, filters, convs, *, name):
    """``convs`` 3x3 ConvBNReLU to ``filters``, then a 2x2/2 max-pool: ``(pooled, switches)``."""
    for i in range(convs):
        x = conv_bn_act(x, filters, 3, name=f"{name}_conv{i + 1}")
    return max_pool_with_switches(x, name=name)


def decoder_stage(x, switches, filters, convs, *, name):
    """Max-unpooling with ``switches``, then ``convs`` 3x3 ConvBNReLU: all but the last keep the
    input width, the last goes to ``filters``."""
    width = x.shape[-1]
    x = MaxUnpool2D(name=f"{name}_unpool")([x, switches])
    for i in range(convs):
        x = conv_bn_act(x, width if i < convs - 1 else filters, 3, name=f"{name}_conv{i + 1}")
    return x


@MODELS.register(
    "segnet",
    stride=32,
    paper="SegNet (Badrinarayanan et al., 2017)",
    reference="SegNet",
    features={8: "segnet_up4_conv3_relu"},
    # The model-contract test builds it at a quarter width (1.8 M parameters, same layers):
    # export parity at full width takes ~3x as long, tf2onnx's time growing with the weight bytes.
    contract_kwargs={"width": 16},
)
def segnet(inputs, num_classes, *, width=64, name="segnet"):
    """SegNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      width: channels of the first stage (the reference's ``hid_channel``); the stages have 1, 2,
        4, 8, 8 times as many.
      name: layer-name prefix.
    """
    x = inputs
    switches = []
    for stage, (convs, mult) in enumerate(ENCODER_STAGES, start=1):
        x, s = encoder_stage(x, width * mult, convs, name=f"{name}_down{stage}")
        switches.append(s)
    # The decoder mirrors the encoder: stage k unpools with the switches of encoder stage k and
    # ends at the width of encoder stage k - 1 (``width`` for the first two stages).
    for stage in range(len(ENCODER_STAGES), 0, -1):
        convs, _ = ENCODER_STAGES[stage - 1]
        filters = width * ENCODER_STAGES[max(stage - 2, 0)][1]
        x = decoder_stage(x, switches[stage - 1], filters, convs, name=f"{name}_up{stage}")
    return conv_bn_act(x, num_classes, 3, activation=None, name=f"{name}_classifier")
