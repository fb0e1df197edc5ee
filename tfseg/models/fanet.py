"""FANet (Hu et al., 2020): real-time semantic segmentation with fast attention (ResNet18).

Paper: P. Hu, F. Perazzi, F. C. Heilbron, O. Wang, Z. Lin, K. Saenko, S. Sclaroff, "Real-time
Semantic Segmentation with Fast Attention", IEEE RA-L 2021, arXiv:2007.03815. Fast attention
replaces self-attention's softmax by L2-normalised (cosine) affinities, so the product can be
reordered: ``Q (K^T V)`` costs ``O(n c^2)`` instead of ``O(n^2 c)`` for ``n`` pixels and ``c``
channels. An extra spatial reduction in the encoder's first stage halves the resolution of every
later stage. Layout as in the PyTorch reference zoo (zh320, ``models/fanet.py``), whose parameter
count tfseg matches:

- encoder: ResNet18 whose first stage (conv2, the paper's Res-1) starts with a stride-2 basic block
  (a 1x1/2 convolution + BN projection on its shortcut): stages at strides 8, 16, 32, 64. On any
  other encoder (``encoder=``) FANet takes its P2..P5 (strides 4..32) as they are: the reduction is
  a change inside a ResNet stage, defined for ResNet18 only (``reduce_res1``);
- on each stage: a fast attention module to 32 channels (``att_channels``);
- top-down: the deepest stage's attention output through a 3x3 convolution (+ BN + ReLU); every
  other stage adds the deeper result upsampled by a 3x3/2 transposed convolution (+ BN + ReLU) to
  its attention output, then a 3x3 convolution (+ BN + ReLU);
- the four results, bilinearly upsampled to the shallowest one's size and concatenated (128
  channels), the zoo's SegHead (3x3 convolution to 128 + BN + ReLU, a 1x1 convolution to the
  classes) and bilinear upsampling to the input (x8).

Fast attention module on ``x``: ``q``, ``k``, ``v`` = three 3x3 convolutions (+ BN) to ``c``;
``q``, ``k`` L2-normalised over the channels; ``y = v (k^T q) / n``; a 3x3 convolution (+ BN +
ReLU) of ``y``, plus ``v``. This is the reference's formula exactly (``q @ (k^T @ v)`` with
channel-first ``(c, n)`` matrices): with channel-last ``(n, c)`` matrices the same sum reads
``v (k^T q)``, in which the roles of ``q`` and ``v`` are those of the paper's ``V`` and ``Q``.

Departures from the reference:

- the attention product is evaluated in the paper's fast order, through a ``c x c`` matrix
  (``k^T q``: 2 n c^2 MACs per module, 22 MMACs in all at 512x1024); the reference multiplies in
  the slow order, through an ``n x n`` matrix (``k @ v``: 2 n^2 c MACs, 4.6 GMACs at 512x1024 and
  a 256 MB matrix at stride 8). Same outputs up to float rounding, same parameters;
- upsampling is half-pixel bilinear (``BilinearUpsample``), not ``align_corners=True``; the
  transposed convolutions pad "same" (Keras'), which equals PyTorch's padding 1 / output padding 1;
- inputs must be multiples of 64 (fixed upsampling factors down to the stride-64 stage).

Parameters with 19 classes: 12,263,264 (reference 12,263,264); 8.02 conv/matmul GMACs at 512x1024
(7.998 in convolutions, 0.022 in the attention products) against the reference's 12.58, which
counts the slow order's 4.58 GMACs of products (its convolutions alone: 8.00).

>>> model = tfseg.build_model("fanet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers, ops

from tfseg.encoders import encoder_pyramid
from tfseg.encoders.resnet import _basic_block, _strided_conv_bn_act
from tfseg.layers import BilinearUpsample, conv_bn_act, deconv_bn_act, seg_head
from tfseg.layers.blocks import keras_serializable
from tfseg.registry import MODELS

ATT_CHANNELS = 32
L2_EPSILON = 1e-12  # F.normalize's


@keras_serializable
class FastAttention(layers.Layer):
    """``[q, k, v] -> v (k^T q) / n`` over the ``n`` pixels, ``q`` and ``k`` L2-normalised over
    the channels (cosine affinities): fast attention's product in ``O(n c^2)``."""

    def call(self, inputs):
        q, k, v = inputs
        h, w, c = v.shape[1:]
        if h is not None and w is not None:  # static sizes: constant shapes (ONNX, LiteRT)
            n, out_shape, scale = h * w, (-1, h, w, c), 1.0 / (h * w)
        else:
            shape = ops.shape(v)
            n, out_shape = shape[1] * shape[2], shape
            scale = 1.0 / ops.cast(n, v.dtype)
        q, k, v = (ops.reshape(t, (-1, n, c)) for t in (q, k, v))
        q, k = self._normalize(q), self._normalize(k)
        affinity = ops.matmul(ops.transpose(k, (0, 2, 1)), q)  # (batch, c, c)
        return ops.reshape(ops.matmul(v, affinity) * scale, out_shape)

    @staticmethod
    def _normalize(x):
        # x / max(|x|, eps), as F.normalize, on (batch, n, c) tensors: on 4-D ones tf2onnx's
        # layout transposes broke the division's broadcast (onnxruntime: incompatible dimensions)
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
        return x / ops.maximum(norm, L2_EPSILON)

    def compute_output_shape(self, input_shapes):
        return input_shapes[2]

    def macs(self):
        """Multiply-accumulates of the two products (``tfseg.flops`` reads them)."""
        h, w, c = (int(d) for d in self.input[0].shape[1:])
        return 2 * h * w * c * c


def fast_attention(x, filters=ATT_CHANNELS, *, name):
    """Fast attention module: q/k/v 3x3 convolutions (+ BN) to ``filters``, ``FastAttention``,
    a 3x3 convolution (+ BN + ReLU), plus ``v``. Output ``{name}_out``."""
    q = conv_bn_act(x, filters, 3, activation=None, name=f"{name}_q")
    k = conv_bn_act(x, filters, 3, activation=None, name=f"{name}_k")
    v = conv_bn_act(x, filters, 3, activation=None, name=f"{name}_v")
    y = FastAttention(name=f"{name}_attn")([q, k, v])
    y = conv_bn_act(y, filters, 3, name=f"{name}_fuse")
    return layers.Add(name=f"{name}_out")([y, v])


def fuse_up(x, deeper=None, *, name):
    """FANet's FuseUp: ``x`` plus the deeper result upsampled by a 3x3/2 transposed convolution
    (+ BN + ReLU) when there is one, then a 3x3 convolution (+ BN + ReLU): ``{name}_relu``."""
    if deeper is not None:
        up = deconv_bn_act(deeper, x.shape[-1], 3, strides=2, name=f"{name}_up")
        x = layers.Add(name=f"{name}_add")([x, up])
    return conv_bn_act(x, x.shape[-1], 3, name=name)


def reduced_resnet18(inputs, *, name="resnet18"):
    """ResNet18 (the ``resnet18`` encoder's layers and names, so its weights load) with FANet's
    Res-1 reduction: the first block of stage conv2 has stride 2 and a 1x1/2 convolution + BN
    projection (``{name}_conv2_block1_0``, not in the encoder). The four stages at strides 8..64."""
    x = _strided_conv_bn_act(inputs, 64, 7, 2, 1, "relu", name=f"{name}_conv1")
    x = layers.ZeroPadding2D(1, name=f"{name}_pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool1_pool")(x)
    stages = []
    for stage, filters in enumerate((64, 128, 256, 512), start=2):
        for block in (1, 2):
            x = _basic_block(
                x,
                filters,
                strides=2 if block == 1 else 1,
                first_dilation=1,
                dilation=1,
                name=f"{name}_conv{stage}_block{block}",
            )
        stages.append(x)
    return stages


@MODELS.register(
    "fanet",
    stride=64,
    paper="FANet (Hu et al., 2020)",
    reference="FANet",
    default_encoder="resnet18",
    any_encoder=True,
    features={8: "fanet_s8_fuse_relu"},
    # The reference's 12.58 GMACs less the 4.58 of its n x n attention products (see above).
    reference_gmacs=8.00,
)
def fanet(
    inputs,
    num_classes,
    *,
    encoder,
    encoder_kwargs=None,
    att_channels=ATT_CHANNELS,
    reduce_res1=None,
    name="fanet",
):
    """FANet logits at the input resolution.

    ``reduce_res1``: the extra stride 2 in ResNet18's first stage (``None``: on for ``resnet18``,
    the only encoder it is defined for; ``False`` takes ResNet18's P2..P5 as they are).
    """
    if reduce_res1 is None:
        reduce_res1 = encoder == "resnet18"
    if reduce_res1:
        if encoder != "resnet18":
            raise ValueError(f"{name}: reduce_res1 needs encoder='resnet18', got {encoder!r}")
        stages, first_stride = reduced_resnet18(inputs, name=encoder), 8
    else:
        pyramid = encoder_pyramid(inputs, encoder, output_stride=32, encoder_kwargs=encoder_kwargs)
        stages, first_stride = [pyramid[f"P{k}"] for k in (2, 3, 4, 5)], 4
    strides = [first_stride * 2**i for i in range(4)]
    fused = [None] * 4
    deeper = None
    for i in reversed(range(4)):
        level = f"{name}_s{strides[i]}"
        x = fast_attention(stages[i], att_channels, name=f"{level}_fa")
        deeper = fused[i] = fuse_up(x, deeper, name=f"{level}_fuse")
    merged = [fused[0]] + [
        BilinearUpsample(2**i, name=f"{name}_s{strides[i]}_up")(fused[i]) for i in (1, 2, 3)
    ]
    x = layers.Concatenate(name=f"{name}_concat")(merged)
    x = seg_head(x, num_classes, name=f"{name}_head")
    return BilinearUpsample(first_stride, name=f"{name}_up")(x)
