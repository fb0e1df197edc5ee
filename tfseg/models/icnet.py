"""ICNet (Zhao, Qi, Shen, Shi and Jia, ECCV 2018): Image Cascade Network.

Paper: H. Zhao, X. Qi, X. Shen, J. Shi, J. Jia, "ICNet for Real-Time Semantic Segmentation on
High-Resolution Images", ECCV 2018 (arXiv:1704.08545). Three branches see the image at three
resolutions; the coarse ones carry the semantics, the fine one the detail, and cascade feature
fusion (CFF) units merge them from coarse to fine. Layout as in the PyTorch reference zoo (zh320,
``models/icnet.py``), whose parameter count tfseg matches, on a dilated encoder (output stride 8;
ResNet18 by default, the paper's PSPNet used ResNet50):

- low branch: the image at 1/4 through the encoder (its P5: stride 32 of the image), then the
  zoo's pyramid pooling module (pools 1, 2, 4, 6; ``tfseg.layers.pyramid_pooling``) to 256;
- medium branch: the image at 1/2 through the SAME encoder (one set of weights, as the reference's
  single ``self.backbone`` called twice), its P3 (stride 16 of the image);
- high branch: three 3x3/2 convolutions (+ BN + ReLU) to 32, 64, 128 on the full image (stride 8);
- CFF(low, medium) to 128 at stride 16, then CFF(that, high) to 128 at stride 8; a CFF upsamples
  its coarse input x2, takes a 3x3 convolution of dilation 2 (+ BN) of it and a 1x1 convolution
  (+ BN) of the fine input, and adds them (ReLU);
- x2 bilinear upsampling, the zoo's SegHead (3x3 convolution to 128 + BN + ReLU, 1x1 convolution
  to the classes) at stride 4 and x4 bilinear upsampling.

Auxiliary heads (``heads=("aux",)``): a SegHead on each CFF's upsampled coarse input (stride 16 and
stride 8), the paper's cascade label guidance. The reference weighs them 1.0, as tfseg's default.

The shared encoder is a nested Keras model (``tfseg.encoders.build_encoder_model``, named after
the encoder, e.g. ``resnet18``) called on both scales, so its layers live inside that sub-model
with their usual names (``resnet18_...``): ``--encoder_weights`` finds them there
(``tfseg.encoders.weights`` searches nested models), and ``tfseg.flops.model_macs`` counts the
encoder once per call, at each call's size. Any registered encoder works (``encoder=``): the
widths are read from its P3 and P5.

Departures from the reference (no parameters or MACs change):

- resizing is half-pixel bilinear, not ``align_corners=True``: the 1/2 and 1/4 image are
  ``bilinear_downsample`` (a 2x2 average at the half-pixel centres), the upsamplings
  ``BilinearUpsample``, the pyramid pooling's maps ``ResizeLike``;
- the dilated encoder is tfseg's output-stride-8 schedule (``StrideSchedule``: every block after
  a removed downsampling dilated 2, then 4, as torchvision's ``replace_stride_with_dilation``);
  the reference dilates only the first convolution of ResNet's stages 3 and 4 (2 and 4) and keeps
  the other convolutions of those stages undilated;
- convolutions pad "same" (Keras') and BatchNorm has epsilon 1e-3 (tfseg's conventions).

Parameters with 19 classes: 12,421,088 (reference 12,421,088), 12,868,832 with the two auxiliary
heads (reference 12,868,832); 38.43 conv GMACs at 512x1024 (reference 38.43), the encoder counted
at both scales (6.02 at 1/4, 24.06 at 1/2).

>>> model = tfseg.build_model("icnet", 19, input_shape=(512, 1024, 3))
"""

import keras
from keras import layers

from tfseg.encoders import build_encoder_model
from tfseg.layers import (
    BilinearUpsample,
    bilinear_downsample,
    conv_bn_act,
    pyramid_pooling,
    seg_head,
)
from tfseg.registry import MODELS

PPM_WIDTH = 256
CFF_WIDTH = 128
HIGH_WIDTHS = (32, 64, 128)


def cascade_feature_fusion(coarse, fine, num_classes, *, filters=CFF_WIDTH, name):
    """CFF unit: ``(fused map at fine's stride, auxiliary logits of the upsampled coarse map)``.

    The coarse map is upsampled x2; a 3x3 convolution of dilation 2 (+ BN) of it plus a 1x1
    convolution (+ BN) of ``fine``, then ReLU. The auxiliary SegHead reads the upsampled coarse map.
    """
    coarse = BilinearUpsample(2, name=f"{name}_up")(coarse)
    aux = seg_head(coarse, num_classes, name=f"{name}_aux")
    a = conv_bn_act(coarse, filters, 3, dilation_rate=2, activation=None, name=f"{name}_coarse")
    b = conv_bn_act(fine, filters, 1, activation=None, name=f"{name}_fine")
    x = layers.Add(name=f"{name}_add")([a, b])
    return layers.ReLU(name=f"{name}_relu")(x), aux


def _shared_encoder(encoder, encoder_kwargs):
    """The dilated encoder as one sub-model named ``encoder``, mapping an image to ``[P3, P5]``
    (a list: tfseg's model anatomy reads a nested model's outputs as a list)."""
    full = build_encoder_model(encoder, output_stride=8, **dict(encoder_kwargs or {}))
    pyramid = full.output
    return keras.Model(full.inputs, [pyramid["P3"], pyramid["P5"]], name=encoder)


@MODELS.register(
    "icnet",
    stride=32,
    paper="ICNet (Zhao et al., 2018)",
    reference="ICNet",
    default_encoder="resnet18",
    any_encoder=True,
    features={8: "icnet_cff21_relu", 16: "icnet_cff42_relu"},
    heads=("aux",),
    reference_aux_params=12_868_832,
)
def icnet(inputs, num_classes, *, encoder, encoder_kwargs=None, name="icnet"):
    """ICNet: ``{"logits": logits at the input resolution, "aux": [auxiliary logits at stride 16,
    at stride 8]}`` (``build_model`` keeps the auxiliary ones for ``heads=("aux",)``).

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      encoder: registered encoder name, built dilated (output stride 8) and shared by the 1/2 and
        1/4 branches.
      encoder_kwargs: the encoder's hyper-parameters.
      name: layer-name prefix (the encoder sub-model is named after the encoder).
    """
    backbone = _shared_encoder(encoder, encoder_kwargs)
    half = bilinear_downsample(inputs, 2, name=f"{name}_half")
    quarter = bilinear_downsample(inputs, 4, name=f"{name}_quarter")

    low = backbone(quarter)[1]  # P5: stride 32
    low = pyramid_pooling(low, PPM_WIDTH, name=f"{name}_ppm")
    medium = backbone(half)[0]  # P3: stride 16
    high = inputs
    for i, filters in enumerate(HIGH_WIDTHS):
        high = conv_bn_act(high, filters, 3, strides=2, name=f"{name}_high{i + 1}")  # stride 8

    x, aux16 = cascade_feature_fusion(low, medium, num_classes, name=f"{name}_cff42")
    x, aux8 = cascade_feature_fusion(x, high, num_classes, name=f"{name}_cff21")
    x = BilinearUpsample(2, name=f"{name}_up")(x)
    x = seg_head(x, num_classes, name=f"{name}_head")
    logits = BilinearUpsample(4, name=f"{name}_upsample")(x)
    return {"logits": logits, "aux": [aux16, aux8]}
