"""STDC-Seg (Fan et al., CVPR 2021): BiSeNet's context decoder on an STDC encoder, STDC1 by default.

Paper: M. Fan, S. Lai, J. Huang, X. Wei, Z. Chai, J. Luo, X. Wei, "Rethinking BiSeNet For Real-time
Semantic Segmentation", CVPR 2021, arXiv:2104.13188. The spatial path of BiSeNet is dropped: the
encoder's stride-8 stage (P3) takes its place, and a detail head trained on Laplacian boundary
targets (training only, ``tfseg.detail_loss``) teaches that stage spatial detail. Layout as in
the PyTorch reference zoo (zh320, ``models/stdc.py``), whose parameter count tfseg matches:

- encoder: ``stdc1`` (``encoder="stdc2"`` for STDC2-Seg; ``tfseg/encoders/stdc.py``);
- context path, BiSeNet's (``tfseg.models.bisenetv1.context_path``): P5 through an attention
  refinement module plus its global average, a 1x1 convolution (no bias, no BN) to 256, x2
  upsampling; P4 through an attention refinement module, a 1x1 convolution to 256, plus the
  upsampled P5; x2 upsampling to stride 8;
- BiSeNet's feature fusion module (``tfseg.models.bisenetv1.feature_fusion``) of the context
  features and P3 (256 + 256 channels with STDC) to 128 channels;
- the zoo's SegHead (3x3 convolution to 128 + BN + ReLU, 1x1 convolution to the classes) at 1/8
  and x8 bilinear upsampling.

Training heads (``build_model(..., heads=("aux",))`` or ``heads=("detail",)``; the builder always
returns ``{"logits", "aux": [a3, a4, a5], "detail": d}``):

- ``aux``: a SegHead to the classes on each of P3, P4, P5 (strides 8, 16, 32): 2,072,448
  parameters with 19 classes, as the reference's;
- ``detail``: a SegHead to one channel on P3 (stride 8): the detail logits, trained by
  ``tfseg.detail_loss.DetailLoss`` against boundary targets computed from the label map. The
  reference also gives the model its ``detail_conv`` (a 1x1 convolution 3 -> 1 without bias, 3
  parameters) that fuses the Laplacian targets of strides 1, 2 and 4 before they are binarised;
  no gradient reaches it through the binarisation, so its weights never leave their initial
  values. tfseg keeps these 3 weights in the model (``{name}_detail_fuse``, a layer that passes
  the detail logits through unchanged) so the counts match, initialised to the STDC authors'
  fixed fusion weights (0.6, 0.3, 0.1), which the loss uses (``DETAIL_FUSE_WEIGHTS``).

Departures from the reference:

- the ARMs' and FFM's 1x1 attention convolutions run on the pooled 1x1 map and broadcast their
  result; the reference broadcasts the pooled vector to the full map first (``expand_as``) and
  convolves every (identical) pixel: same outputs and parameters, 1.34 GMACs fewer at 512x1024
  (the registration's ``reference_gmacs`` is the reference's count less these);
- upsampling is half-pixel bilinear (``BilinearUpsample``), not ``align_corners=True``;
- the detail targets follow the STDC authors' code (fusion weights fixed at 0.6, 0.3, 0.1,
  negative Laplacian responses clamped to zero, each stride binarised before the fusion, Dice on
  sigmoid probabilities), where the reference fuses the raw responses with a randomly initialised
  ``detail_conv`` and takes the Dice of the raw logits: see ``tfseg.detail_loss``;
- the reference cannot train the aux and detail heads together; tfseg can (``heads=("aux",
  "detail")``).

Parameters with 19 classes: STDC1 7,788,448 (reference 7,788,448), STDC2 11,818,912 (reference
11,818,912); with the aux heads 9,860,896 (reference 9,860,896), with the detail head 8,083,747
(reference 8,083,747). Conv GMACs at 512x1024: STDC1 14.31 (reference 15.65, 14.31 without the
broadcast attention convolutions), STDC2 20.90 (reference 22.25, 20.91).

>>> model = tfseg.build_model("stdc", 19, input_shape=(512, 1024, 3))
>>> stdc2 = tfseg.build_model("stdc", 19, encoder="stdc2", input_shape=(512, 1024, 3))
"""

import keras
from keras import layers, ops

from tfseg.encoders import encoder_pyramid
from tfseg.layers import BilinearUpsample, seg_head
from tfseg.layers.blocks import keras_serializable
from tfseg.models.bisenetv1 import context_path, feature_fusion
from tfseg.registry import MODELS

CONTEXT_WIDTH = 256
FUSION_WIDTH = 128
DETAIL_WIDTH = 128
#: The STDC authors' weights for the detail targets of strides 1, 2 and 4.
DETAIL_FUSE_WEIGHTS = (0.6, 0.3, 0.1)


@keras_serializable
class DetailFusionWeights(layers.Layer):
    """Holds the 1x1 (3 -> 1, no bias) fusion kernel of the detail targets and passes its input
    through unchanged (plus zero times its weights). Its 3 weights are the reference model's
    ``detail_conv`` (so the parameter counts match); the targets are binarised after the fusion,
    so no gradient reaches them and ``tfseg.detail_loss`` uses their fixed initial values
    (``DETAIL_FUSE_WEIGHTS``)."""

    def __init__(self, fuse_weights=DETAIL_FUSE_WEIGHTS, **kwargs):
        super().__init__(**kwargs)
        self.fuse_weights = tuple(float(w) for w in fuse_weights)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(1, 1, len(self.fuse_weights), 1),
            initializer=keras.initializers.Constant([[list([w] for w in self.fuse_weights)]]),
            name="kernel",
        )

    def call(self, x):
        # a zero term ties the kernel to the graph: it gets a zero gradient rather than none
        # (Keras warns about trainable variables without gradients)
        return x + 0.0 * ops.sum(ops.cast(self.kernel, x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "fuse_weights": list(self.fuse_weights)}


@MODELS.register(
    "stdc",
    stride=32,
    paper="STDC-Seg (Fan et al., 2021)",
    reference="STDC1",
    default_encoder="stdc1",
    features={8: "stdc_ffm_out"},
    heads=("aux", "detail"),
    reference_aux_params=7_788_448 + 2_072_448,
    # The reference's 15.65 GMACs less the 1.34 of its broadcast attention convolutions (above).
    reference_gmacs=14.31,
)
def stdc(inputs, num_classes, *, encoder, encoder_kwargs=None, name="stdc"):
    """STDC-Seg: ``{"logits": logits at the input resolution, "aux": [SegHead logits on P3, P4,
    P5 (strides 8, 16, 32)], "detail": detail logits (1 channel, stride 8)}``; ``build_model``
    keeps the heads asked for (``heads=("aux",)``, ``("detail",)``)."""
    pyramid = encoder_pyramid(inputs, encoder, output_stride=32, encoder_kwargs=encoder_kwargs)
    x3 = pyramid["P3"]
    context = context_path(pyramid, CONTEXT_WIDTH, name=f"{name}_context")
    x = feature_fusion(context, x3, FUSION_WIDTH, name=f"{name}_ffm")
    x = seg_head(x, num_classes, name=f"{name}_head")
    logits = BilinearUpsample(8, name=f"{name}_up")(x)
    aux = [seg_head(pyramid[f"P{k}"], num_classes, name=f"{name}_aux{k}") for k in (3, 4, 5)]
    detail = seg_head(x3, 1, hidden=DETAIL_WIDTH, name=f"{name}_detail")
    detail = DetailFusionWeights(name=f"{name}_detail_fuse")(detail)
    return {"logits": logits, "aux": aux, "detail": detail}
