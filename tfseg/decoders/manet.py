"""MA-Net decoder with segmentation_models_pytorch's layout (``smp.MAnet``).

Paper: T. Fan, G. Wang, Y. Li, H. Wang, "MA-Net: A Multi-Scale Attention Network for Liver and
Tumor Segmentation", IEEE Access 8, 2020: a U-Net whose centre is a position-wise attention block
(PAB, self-attention over the pixels of the deepest feature map) and whose decoder blocks are
multi-scale fusion attention blocks (MFAB: squeeze-and-excitation channel attention on both the
upsampled deep features and the skip).

SMP layout (checked against ``segmentation_models_pytorch/decoders/manet/{decoder,model}.py``,
``base/modules.py`` and ``base/heads.py``, SMP 0.3.2; 0.6.0 has the same parameters), over
P5..P1 (channels read from the tensors) with ``decoder_channels`` 256/128/64/32/16:

- PAB on P5 (``C`` channels): 1x1 convolutions ``top`` and ``center`` to ``pab_channels`` (64) and a
  3x3 ``bottom`` to ``C``, all with biases; ``A = softmax(center^T top)`` over the pixels, the
  softmax taken jointly over all ``(HW)^2`` entries as SMP's ``view(bsize, -1)`` does; ``A bottom``
  read back into a ``(C, H, W)`` map by SMP's plain ``reshape`` of the ``(HW, C)`` product (not a
  transpose: SMP's forward mixes pixels and channels there, and ``PositionAttention`` reproduces it
  so that SMP weights compute the same); ``x + that``, then a 3x3 ``out`` convolution (with bias,
  no BN, no activation). The two products are counted as MACs: ``(HW)^2 (pab_channels + C)``;
- four MFABs, skips P4, P3, P2, P1: ``Conv2dReLU`` 3x3 (``in -> in``) and 1x1 (``in -> skip``),
  nearest x2; SE on that and SE on the skip (global average, 1x1 to ``max(1, skip // 16)`` + ReLU,
  1x1 back + sigmoid, with biases), the two attentions added and multiplying the upsampled map;
  concatenated with the skip; two 3x3 ``Conv2dReLU`` to the block's channels;
- a last plain block (no skip): nearest x2 and two 3x3 ``Conv2dReLU`` (stride 1);
- head: 3x3 convolution (with bias) to the classes, already at the input size.

Departures from SMP (none changes a parameter or a MAC): BatchNorm epsilon 1e-3 (PyTorch 1e-5),
Keras "same" padding. SMP's ``encoder_depth`` (3..5) is not an option: the decoder always uses the
five levels, as SMP's default.

Trainable parameters for 19 classes and conv/matmul GMACs at 1x3x512x1024 against SMP 0.3.2
(``docs/reference/smp_reference.csv``):

- ResNet-18: 21,678,083 params (SMP 21,678,083), 48.69 GMACs (SMP 48.69);
- ResNet-50: 147,442,603 (147,442,603), 150.46 (150.46);
- ResNet-101: 166,434,731 (166,434,731), 189.25 (189.25);
- MobileNetV2: 48,891,351 (48,891,351), 43.49 (43.49).
"""

from keras import layers, ops

from tfseg.decoders._smp_blocks import conv_relu
from tfseg.layers.blocks import keras_serializable
from tfseg.registry import DECODERS


@keras_serializable
class PositionAttention(layers.Layer):
    """``[top, center, bottom] -> `` SMP's PAB attention map (NHWC, ``bottom``'s shape).

    ``top``/``center``: ``(B, H, W, P)``, ``bottom``: ``(B, H, W, C)``. With ``n = H W`` pixels:
    ``A = softmax(center top^T)`` (``n x n``, one softmax over all its entries), ``Y = A bottom``
    (``n x C``); the output is ``Y`` read as SMP reads it, a row-major ``(C, H, W)`` array, here
    returned as NHWC. Static spatial sizes give constant shapes (ONNX, LiteRT)."""

    def call(self, inputs):
        top, center, bottom = inputs
        h, w, c = bottom.shape[1:]
        p = top.shape[-1]
        if h is not None and w is not None:
            n, out_shape = h * w, (-1, h, w, c)
        else:
            shape = ops.shape(bottom)
            n, out_shape = shape[1] * shape[2], (-1, shape[1], shape[2], c)
        top = ops.reshape(top, (-1, n, p))
        center = ops.reshape(center, (-1, n, p))
        bottom = ops.reshape(bottom, (-1, n, c))
        scores = ops.matmul(center, ops.transpose(top, (0, 2, 1)))  # (B, n, n)
        scores = scores - ops.max(scores, axis=(1, 2), keepdims=True)
        weights = ops.exp(scores)
        weights = weights / ops.sum(weights, axis=(1, 2), keepdims=True)
        y = ops.matmul(weights, bottom)  # (B, n, C), row-major as SMP's (B, HW, C)
        y = ops.transpose(ops.reshape(y, (-1, c, n)), (0, 2, 1))  # SMP's reshape to (B, C, H, W)
        return ops.reshape(y, out_shape)

    def compute_output_shape(self, input_shapes):
        return input_shapes[2]

    def macs(self):
        """Multiply-accumulates of the two products (``tfseg.flops`` reads them)."""
        h, w, p = (int(d) for d in self.input[0].shape[1:])
        c = int(self.input[2].shape[-1])
        n = h * w
        return n * n * (p + c)


def pab(x, *, pab_channels=64, name):
    """SMP's position-wise attention block (the MAnet centre; see the module docstring)."""
    channels = x.shape[-1]

    def conv(y, filters, kernel_size, suffix):
        return layers.Conv2D(
            filters,
            kernel_size,
            padding="same",
            kernel_initializer="he_normal",
            name=f"{name}_{suffix}",
        )(y)

    top = conv(x, pab_channels, 1, "top")
    center = conv(x, pab_channels, 1, "center")
    bottom = conv(x, channels, 3, "bottom")
    y = PositionAttention(name=f"{name}_attention")([top, center, bottom])
    y = layers.Add(name=f"{name}_add")([x, y])
    return conv(y, channels, 3, "out")


def squeeze_excitation(x, reduced, *, name):
    """SE attention vector ``(B, 1, 1, C)``: global average, 1x1 + ReLU, 1x1 + sigmoid."""
    channels = x.shape[-1]
    y = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    y = layers.Conv2D(reduced, 1, kernel_initializer="he_normal", name=f"{name}_reduce")(y)
    y = layers.Activation("relu", name=f"{name}_relu")(y)
    y = layers.Conv2D(channels, 1, kernel_initializer="he_normal", name=f"{name}_expand")(y)
    return layers.Activation("sigmoid", name=f"{name}_sigmoid")(y)


def mfab(x, skip, filters, *, reduction=16, use_batchnorm=True, name):
    """SMP's multi-scale fusion attention block (see the module docstring)."""
    skip_channels = skip.shape[-1]
    x = conv_relu(x, x.shape[-1], 3, use_batchnorm=use_batchnorm, name=f"{name}_hl1")
    x = conv_relu(x, skip_channels, 1, use_batchnorm=use_batchnorm, name=f"{name}_hl2")
    x = layers.UpSampling2D(2, name=f"{name}_up")(x)
    reduced = max(1, skip_channels // reduction)
    attention = layers.Add(name=f"{name}_se_add")(
        [
            squeeze_excitation(x, reduced, name=f"{name}_se_hl"),
            squeeze_excitation(skip, reduced, name=f"{name}_se_ll"),
        ]
    )
    x = layers.Multiply(name=f"{name}_se_mul")([x, attention])
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = conv_relu(x, filters, 3, use_batchnorm=use_batchnorm, name=f"{name}_conv1")
    return conv_relu(x, filters, 3, use_batchnorm=use_batchnorm, name=f"{name}_conv2")


def decoder_block(x, filters, *, use_batchnorm=True, name):
    """SMP's plain U-Net block without a skip: nearest x2, two 3x3 ``Conv2dReLU``."""
    x = layers.UpSampling2D(2, name=f"{name}_up")(x)
    x = conv_relu(x, filters, 3, use_batchnorm=use_batchnorm, name=f"{name}_conv1")
    return conv_relu(x, filters, 3, use_batchnorm=use_batchnorm, name=f"{name}_conv2")


@DECODERS.register(
    "manet",
    paper="MA-Net (Fan et al., 2020), SMP layout",
    smp_reference="manet",
    # The model contract (export parity) on narrower blocks: same layers and ops, a faster test.
    contract_kwargs={"decoder_channels": (32, 32, 16, 16, 8), "pab_channels": 16},
)
def manet(
    pyramid,
    num_classes,
    *,
    decoder_channels=(256, 128, 64, 32, 16),
    pab_channels=64,
    reduction=16,
    use_batchnorm=True,
    name="manet",
):
    """SMP's MAnet over P5..P1 (see the module docstring).

    Args:
      decoder_channels: output channels of the five decoder blocks, deepest first (SMP's default
        256, 128, 64, 32, 16).
      pab_channels: channels of the PAB's ``top``/``center`` projections (SMP's
        ``decoder_pab_channels``, 64).
      reduction: squeeze-and-excitation reduction of the MFABs (16).
      use_batchnorm: BatchNorm in the ``Conv2dReLU`` blocks (SMP's ``decoder_use_batchnorm``).
    """
    decoder_channels = tuple(int(c) for c in decoder_channels)
    if len(decoder_channels) != 5:
        raise ValueError(
            f"manet: decoder_channels must give 5 block widths, got {decoder_channels}"
        )
    x = pab(pyramid["P5"], pab_channels=int(pab_channels), name=f"{name}_pab")
    for i, (level, filters) in enumerate(zip(("P4", "P3", "P2", "P1"), decoder_channels)):
        x = mfab(
            x,
            pyramid[level],
            filters,
            reduction=int(reduction),
            use_batchnorm=use_batchnorm,
            name=f"{name}_block{i + 1}",
        )
    x = decoder_block(x, decoder_channels[-1], use_batchnorm=use_batchnorm, name=f"{name}_block5")
    return layers.Conv2D(num_classes, 3, padding="same", name=f"{name}_head")(x)
