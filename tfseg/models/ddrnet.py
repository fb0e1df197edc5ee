"""DDRNet (Hong, Pan, Sun and Jia, 2021): Deep Dual-resolution Networks, DDRNet-23-slim by default.

Paper: Y. Hong, H. Pan, W. Sun, Y. Jia, "Deep Dual-resolution Networks for Real-time and Accurate
Semantic Segmentation of Road Scenes", arXiv:2101.06085, 2021 (IEEE T-ITS 2023). A ResNet-like
trunk that splits at 1/8 into a high-resolution branch kept at 1/8 and a low-resolution branch
going down to 1/64, exchanging features by bilateral fusions, with the Deep Aggregation Pyramid
Pooling Module (DAPPM) on the low branch. Layout as in the PyTorch reference zoo (zh320,
``models/ddrnet.py``), whose parameter count tfseg matches; with ``c`` = 32 (23-slim):

- stem: a 3x3/2 convolution to c (+ BN + ReLU); stage 2: a 3x3/2 convolution to c and 2 residual
  basic blocks (stride 4); stage 3: 2 basic blocks to 2c, the first with stride 2 (stride 8);
- stage 4: low branch 2 basic blocks to 4c (the first with stride 2: 1/16), high branch 2 basic
  blocks at 2c (1/8); bilateral fusion;
- stage 5: low branch 2 basic blocks to 8c (1/32), high branch 2 basic blocks at 2c; bilateral
  fusion; then a bottleneck block to 16c with stride 2 (1/64) and the DAPPM to 4c on the low
  branch, a bottleneck block to 4c on the high branch; their sum (the low branch upsampled x8);
- the zoo's SegHead (3x3 convolution to 128 + BN + ReLU, a 1x1 convolution to the classes) at 1/8
  and x8 bilinear upsampling.

Blocks: basic = ``[3x3 (+ BN + ReLU), 3x3 (+ BN)]`` + input (or a strided 1x1 convolution + BN
where the stride or width changes), ReLU; bottleneck = ``[1x1, 3x3 (strided), 1x1 to the output
width]`` + shortcut, ReLU; bilateral fusion = low += a strided 3x3 convolution (+ BN) of high (one
convolution of stride 2 or 4, as the reference), high += the upsampled 1x1 convolution (+ BN) of
low, each followed by a ReLU; DAPPM on ``x`` (hidden width = in / 4): ``y1`` = 1x1 (+ BN + ReLU),
``y_k`` = 3x3 (+ BN + ReLU) of ``y_{k-1}`` + the upsampled 1x1 convolution of an average pool of
``x`` (5x5/2, 9x9/4, 17x17/8, global), a 1x1 (+ BN + ReLU) of the concatenated ``y1..y5`` plus a 1x1
(+ BN + ReLU) of ``x``.

Auxiliary head (``heads=("aux",)``): a SegHead on the high branch after stage 4 (stride 8).
``arch`` picks the reference's other variants: ``"23"`` (c = 64) and ``"39"`` (c = 64, deeper).

Departures from the reference (no parameters or MACs change):

- upsampling is half-pixel bilinear, not ``align_corners=True``: ``BilinearUpsample`` for the
  fixed factors, ``ResizeLike`` for the DAPPM's pooled maps (``ceil(h / s)`` pixels for a map of
  ``h`` and a pool of stride ``s``, resized back to ``h`` as the reference does, for any size);
- strided convolutions and pools pad "same" (Keras'), and the DAPPM's average pools leave the
  padding out of the mean (PyTorch counts it);
- the 1/64 low branch is upsampled x8 by a fixed factor, so inputs must be multiples of 64 (the
  reference resizes to the high branch's size for any input).

Initialisation is tfseg's He-normal, without zero-init residuals: the untrained logits reach a
standard deviation of ~350 on N(0, 1) images (128x192), and export parity still holds.

Parameters with 19 classes: 5,542,624 (reference 5,542,624), 5,619,040 with the auxiliary head
(reference 5,619,040); 9.46 conv GMACs at 512x1024 (reference 9.46).

>>> model = tfseg.build_model("ddrnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import (
    BilinearUpsample,
    ResizeLike,
    SameAveragePooling2D,
    conv_bn_act,
    seg_head,
)
from tfseg.registry import MODELS

# arch: (base width c, blocks of stage 2, stage 3, stage 4, stage 4's second round, stage 5,
# stage 5's bottleneck).
ARCHS = {
    "23-slim": (32, (2, 2, 2, 0, 2, 1)),
    "23": (64, (2, 2, 2, 0, 2, 1)),
    "39": (64, (3, 4, 3, 3, 3, 1)),
}
# DAPPM average pools: (kernel, stride); then a global average pool.
DAPPM_POOLS = ((5, 2), (9, 4), (17, 8))


def _shortcut(x, filters, strides, name):
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv_bn_act(x, filters, 1, strides=strides, activation=None, name=f"{name}_down")


def _residual_out(branch, shortcut, name):
    x = layers.Add(name=f"{name}_add")([branch, shortcut])
    return layers.ReLU(name=f"{name}_relu")(x)


def basic_block(x, filters, *, strides=1, name):
    """ResNet basic block: two 3x3 convolutions (+ BN) + shortcut, ReLU."""
    y = conv_bn_act(x, filters, 3, strides=strides, name=f"{name}_conv1")
    y = conv_bn_act(y, filters, 3, activation=None, name=f"{name}_conv2")
    return _residual_out(y, _shortcut(x, filters, strides, name), name)


def bottleneck_block(x, filters, *, strides=1, name):
    """The reference's bottleneck: 1x1 and 3x3 (strided) at the input width, 1x1 to ``filters``."""
    channels = x.shape[-1]
    y = conv_bn_act(x, channels, 1, name=f"{name}_conv1")
    y = conv_bn_act(y, channels, 3, strides=strides, name=f"{name}_conv2")
    y = conv_bn_act(y, filters, 1, activation=None, name=f"{name}_conv3")
    return _residual_out(y, _shortcut(x, filters, strides, name), name)


def _blocks(x, block, filters, repeats, *, strides, name):
    for i in range(repeats):
        x = block(x, filters, strides=strides if i == 0 else 1, name=f"{name}_block{i + 1}")
    return x


def bilateral_fusion(low, high, *, factor, name):
    """Low += strided 3x3 conv (+ BN) of high; high += upsampled 1x1 conv (+ BN) of low; ReLUs."""
    to_high = conv_bn_act(low, high.shape[-1], 1, activation=None, name=f"{name}_low")
    to_low = conv_bn_act(
        high, low.shape[-1], 3, strides=factor, activation=None, name=f"{name}_high"
    )
    to_high = BilinearUpsample(factor, name=f"{name}_low_up")(to_high)
    low = layers.ReLU(name=f"{name}_low_relu")(layers.Add(name=f"{name}_low_add")([low, to_low]))
    high = layers.ReLU(name=f"{name}_high_relu")(
        layers.Add(name=f"{name}_high_add")([high, to_high])
    )
    return low, high


def _pooled(x, filters, pool, *, name):
    """The DAPPM's pooled context at ``x``'s size: average pool, 1x1 conv (no bias), bilinear
    resize to ``x``'s size (``ceil(h / stride)`` does not divide ``h`` for every input size)."""
    if pool is None:
        y = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    else:
        kernel, stride = pool
        y = SameAveragePooling2D(kernel, strides=stride, name=f"{name}_pool")(x)
    y = layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv"
    )(y)
    if pool is None:
        return y  # 1x1: broadcast by the addition
    return ResizeLike(name=f"{name}_up")([y, x])


def dappm(x, filters, *, name):
    """Deep Aggregation Pyramid Pooling Module (hidden width ``in / 4``) to ``filters``."""
    hidden = x.shape[-1] // 4
    y0 = conv_bn_act(x, filters, 1, name=f"{name}_shortcut")
    y = conv_bn_act(x, hidden, 1, name=f"{name}_scale0")
    scales = [y]
    for i, pool in enumerate((*DAPPM_POOLS, None)):
        context = _pooled(x, hidden, pool, name=f"{name}_pool{i + 1}")
        y = layers.Add(name=f"{name}_scale{i + 1}_add")([y, context])
        y = conv_bn_act(y, hidden, 3, name=f"{name}_scale{i + 1}")
        scales.append(y)
    y = layers.Concatenate(name=f"{name}_concat")(scales)
    y = conv_bn_act(y, filters, 1, name=f"{name}_compress")
    return layers.Add(name=f"{name}_out")([y, y0])


def ddrnet_features(inputs, *, arch="23-slim", name="ddrnet"):
    """The stride-8 features before the head (4c channels) and the high branch after stage 4
    (2c channels, the auxiliary head's input)."""
    if arch not in ARCHS:
        raise ValueError(f"{name}: unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    c, (n2, n3, n4, n4b, n5, n5b) = ARCHS[arch]
    x = conv_bn_act(inputs, c, 3, strides=2, name=f"{name}_stem")
    x = conv_bn_act(x, c, 3, strides=2, name=f"{name}_stage2_down")
    x = _blocks(x, basic_block, c, n2, strides=1, name=f"{name}_stage2")
    x = _blocks(x, basic_block, 2 * c, n3, strides=2, name=f"{name}_stage3")

    low = _blocks(x, basic_block, 4 * c, n4, strides=2, name=f"{name}_stage4_low")
    high = _blocks(x, basic_block, 2 * c, n4, strides=1, name=f"{name}_stage4_high")
    low, high = bilateral_fusion(low, high, factor=2, name=f"{name}_stage4_fuse")
    if n4b:
        low = _blocks(low, basic_block, 4 * c, n4b, strides=1, name=f"{name}_stage4_low2")
        high = _blocks(high, basic_block, 2 * c, n4b, strides=1, name=f"{name}_stage4_high2")
        low, high = bilateral_fusion(low, high, factor=2, name=f"{name}_stage4_fuse2")
    aux_input = high

    low = _blocks(low, basic_block, 8 * c, n5, strides=2, name=f"{name}_stage5_low")
    high = _blocks(high, basic_block, 2 * c, n5, strides=1, name=f"{name}_stage5_high")
    low, high = bilateral_fusion(low, high, factor=4, name=f"{name}_stage5_fuse")
    low = _blocks(low, bottleneck_block, 16 * c, n5b, strides=2, name=f"{name}_stage5_low2")
    high = _blocks(high, bottleneck_block, 4 * c, n5b, strides=1, name=f"{name}_stage5_high2")
    low = dappm(low, 4 * c, name=f"{name}_dappm")
    low = BilinearUpsample(8, name=f"{name}_dappm_up")(low)
    return layers.Add(name=f"{name}_stage5_out")([high, low]), aux_input


@MODELS.register(
    "ddrnet",
    stride=64,
    paper="DDRNet (Hong et al., 2021)",
    reference="DDRNet",
    features={8: "ddrnet_stage5_out"},
    heads=("aux",),
    reference_aux_params=5_619_040,
)
def ddrnet(inputs, num_classes, *, arch="23-slim", name="ddrnet"):
    """DDRNet: ``{"logits": logits at the input resolution, "aux": [auxiliary logits at stride
    8]}`` (``build_model`` keeps the auxiliary one for ``heads=("aux",)``).

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 64.
      num_classes: logit channels.
      arch: ``"23-slim"`` (the reference's default), ``"23"`` or ``"39"``.
      name: layer-name prefix.
    """
    x, aux_input = ddrnet_features(inputs, arch=arch, name=name)
    x = seg_head(x, num_classes, name=f"{name}_head")
    logits = BilinearUpsample(8, name=f"{name}_upsample")(x)
    aux = seg_head(aux_input, num_classes, name=f"{name}_aux")
    return {"logits": logits, "aux": [aux]}
