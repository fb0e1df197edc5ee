"""BiSeNet (Yu et al., ECCV 2018): Bilateral Segmentation Network, ResNet18 context path by default.

Paper: C. Yu, J. Wang, C. Peng, C. Gao, G. Yu, N. Sang, "BiSeNet: Bilateral Segmentation Network
for Real-time Semantic Segmentation", ECCV 2018, arXiv:1808.00897. Two paths: a shallow, wide
spatial path keeps detail at 1/8; a context path (an ImageNet encoder) gives a large receptive
field; a feature fusion module joins them. Layout as in the PyTorch reference zoo (zh320,
``models/bisenetv1.py``), whose parameter count tfseg matches:

- spatial path: three 3x3/2 convolutions to 128 (+ BN + ReLU), stride 8;
- context path: the encoder's stride-16 and stride-32 features (P4, P5; any encoder, channels read
  from the tensors). P5: attention refinement module + its global average (broadcast), a 1x1
  convolution (no bias, no BN) to 256, x2 upsampling; P4: attention refinement module, a 1x1
  convolution to 256, plus the upsampled P5; x2 upsampling to stride 8;
- feature fusion module of the two paths (384 channels with ResNet18) to 256 channels;
- the zoo's SegHead (3x3 convolution to 128 + BN + ReLU, a 1x1 convolution to the classes) at 1/8
  and x8 bilinear upsampling.

Blocks, written as module-level functions because other networks reuse them (STDC, ...):

- ``attention_refinement`` (ARM): ``x * sigmoid(BN(conv1x1(global average of x)))``;
- ``feature_fusion`` (FFM): ``x`` = 3x3 convolution (+ BN + ReLU) of the concatenated inputs;
  ``w`` = ``sigmoid(conv1x1(relu(conv1x1(global average of x))))`` (no bias, no BN);
  ``x + x * w``.

The reference has no auxiliary heads (the paper's two auxiliary losses on the context path are
not in it), so neither has tfseg.

Departures from the reference:

- the ARM's and FFM's 1x1 attention convolutions run on the pooled 1x1 map and broadcast their
  result; the reference broadcasts the pooled vector to the full map first (``expand_as``) and
  convolves every (identical) pixel. Same outputs and BatchNorm statistics, same parameters, but
  1.34 GMACs fewer at 512x1024 (the reference's 36.67 includes them);
- upsampling is half-pixel bilinear (``BilinearUpsample``), not ``align_corners=True``; strided
  convolutions of the spatial path pad "same" (Keras'), PyTorch pads one pixel on each side.

Parameters with 19 classes: 13,315,392 (reference 13,315,392); 35.33 conv GMACs at 512x1024
(reference 36.67, -3.7 %: the broadcast attention convolutions above).

>>> model = tfseg.build_model("bisenetv1", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.encoders import encoder_pyramid
from tfseg.layers import BilinearUpsample, conv_bn_act, seg_head
from tfseg.registry import MODELS

SPATIAL_WIDTH = 128
CONTEXT_WIDTH = 256
FUSION_WIDTH = 256


def _conv1x1(x, filters, *, name):
    """The reference's ``conv1x1``: a 1x1 convolution without bias, no BN."""
    return layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)


def attention_refinement(x, *, name):
    """Attention refinement module (ARM): ``x`` times a channel attention vector, the sigmoid of a
    1x1 convolution (+ BN) of ``x``'s global average. Layers ``{name}_pool``, ``{name}_attn_*``,
    ``{name}_mul``; the output has ``x``'s shape."""
    w = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    w = conv_bn_act(w, x.shape[-1], 1, activation="sigmoid", name=f"{name}_attn")
    return layers.Multiply(name=f"{name}_mul")([x, w])


def feature_fusion(low, high, filters, *, name):
    """Feature fusion module (FFM): a 3x3 convolution (+ BN + ReLU) of the concatenated inputs
    (same size) to ``filters``, reweighted by a squeeze-and-excitation vector (global average,
    1x1 convolution + ReLU, 1x1 convolution + sigmoid; no bias, no BN) and added to itself:
    ``x + x * w``. Output ``{name}_out``."""
    x = layers.Concatenate(name=f"{name}_concat")([low, high])
    x = conv_bn_act(x, filters, 3, name=f"{name}_fuse")
    w = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    w = _conv1x1(w, filters, name=f"{name}_attn1")
    w = layers.ReLU(name=f"{name}_attn1_relu")(w)
    w = _conv1x1(w, filters, name=f"{name}_attn2")
    w = layers.Activation("sigmoid", name=f"{name}_attn2_sigmoid")(w)
    y = layers.Multiply(name=f"{name}_mul")([x, w])
    return layers.Add(name=f"{name}_out")([x, y])


def spatial_path(inputs, filters=SPATIAL_WIDTH, *, name):
    """Three 3x3/2 convolutions (+ BN + ReLU) to ``filters``: stride 8."""
    x = inputs
    for i in range(3):
        x = conv_bn_act(x, filters, 3, strides=2, name=f"{name}_conv{i + 1}")
    return x


def context_path(pyramid, filters=CONTEXT_WIDTH, *, name):
    """ARMs on the encoder's P5 (plus its global average) and P4, 1x1 convolutions to
    ``filters``, summed top-down: the context features at stride 8."""
    x32 = pyramid["P5"]
    x32_avg = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_p5_pool")(x32)
    x32 = attention_refinement(x32, name=f"{name}_arm32")
    x32 = layers.Add(name=f"{name}_p5_add")([x32, x32_avg])
    x32 = _conv1x1(x32, filters, name=f"{name}_p5_proj")
    x32 = BilinearUpsample(2, name=f"{name}_p5_up")(x32)
    x16 = attention_refinement(pyramid["P4"], name=f"{name}_arm16")
    x16 = _conv1x1(x16, filters, name=f"{name}_p4_proj")
    x16 = layers.Add(name=f"{name}_p4_add")([x16, x32])
    return BilinearUpsample(2, name=f"{name}_p4_up")(x16)


@MODELS.register(
    "bisenetv1",
    stride=32,
    paper="BiSeNet (Yu et al., 2018)",
    reference="BiSeNetv1",
    default_encoder="resnet18",
    any_encoder=True,
    features={8: "bisenetv1_ffm_out"},
)
def bisenetv1(inputs, num_classes, *, encoder, encoder_kwargs=None, name="bisenetv1"):
    """BiSeNet (V1) logits at the input resolution: spatial path + ``encoder`` context path."""
    spatial = spatial_path(inputs, name=f"{name}_spatial")
    pyramid = encoder_pyramid(inputs, encoder, output_stride=32, encoder_kwargs=encoder_kwargs)
    context = context_path(pyramid, name=f"{name}_context")
    x = feature_fusion(spatial, context, FUSION_WIDTH, name=f"{name}_ffm")
    x = seg_head(x, num_classes, name=f"{name}_head")
    return BilinearUpsample(8, name=f"{name}_up")(x)
