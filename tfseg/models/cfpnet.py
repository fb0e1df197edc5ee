"""CFPNet (Lou and Loew, 2021): Channel-wise Feature Pyramid network for real-time semantic
segmentation.

CFP module (K = 4 feature-pyramid channels, dilation ``rk``): a 1x1 convolution (+ BN + PReLU)
projects C channels to C/4; four parallel FP channels with dilations 1, ceil(rk/4), ceil(rk/2) and
rk each apply three chained factorised convolution pairs (3x1 then 1x3, each + BN + PReLU) of widths
C/16, C/16 and C/8, whose outputs are concatenated (C/4 channels); the FP channels are merged by
hierarchical feature fusion (each adds the sum of the earlier ones), concatenated, fused by a 1x1
convolution (+ BN + PReLU) and added to the module's input.

Network (the layout of the PyTorch reference zoo, ``models/cfpnet.py`` of
zh320/realtime-semantic-segmentation-pytorch):

- three 3x3 convolutions to 32 (+ BN + PReLU), the first with stride 2; concatenated with the image
  at 1/2 (35 channels);
- a downsampling block to 64 (3x3/2 convolution to 64 - 35 channels + BN + PReLU, concatenated
  with a 3x3/2 max-pool), ``n`` = 2 CFP modules with dilation 2; concatenated with the image at 1/4;
- a downsampling block to 128, ``m`` = 6 CFP modules with dilations 4, 4, 8, 8, 16, 16;
  concatenated with the image at 1/8 (131 channels, stride 8);
- a 1x1 convolution to the classes and x8 bilinear upsampling.

PReLUs have one slope per layer (``nn.PReLU()`` in the reference), starting at 0.25. Convolution
kernels start as PyTorch's defaults, like the reference (``aglnet.torch_init``, uniform within
+-1/sqrt(fan_in)): with He-normal kernels the eight residual CFP modules grow the untrained
network's logits to ~1e3 at inference (BN at its initial statistics), beyond float32 parity of the
exports.

Differences from the reference (parameters with 19 classes: 272,147 here, 272,167 there; 5.15
GMACs at 512x1024 in both):

- the 1x1 classifier gives the logits directly (with its bias), where the reference adds BN +
  PReLU on the logits (20 more parameters), as ``erfnet``/``espnet``/``adscnet`` do in tfseg;
- the image pyramid and the final upsampling are bilinear with half-pixel centres (the convention
  of ``tf.image.resize`` and of PyTorch's ``align_corners=False``) by fixed factors, where the
  reference uses ``align_corners=True``, whose sampling positions depend on the image size. The
  1/f image is computed exactly, without a resize op: for an even factor f, pixel i of the output
  is the mean of input pixels f*i + f/2 - 1 and f*i + f/2 in each direction, i.e. a crop of f/2 - 1
  pixels at the top/left and a 2x2 average pool with stride f (``bilinear_downsample``);
- strided convolutions and pools use TF "same" padding.

The paper's CFPNet-V1 reports 0.55M parameters; the reference's layout (followed here) is smaller.

>>> model = tfseg.build_model("cfpnet", 19, input_shape=(512, 1024, 3))
"""

from keras import layers

from tfseg.layers import BilinearUpsample
from tfseg.layers.blocks import conv_bn_prelu
from tfseg.layers.downsample import conv_pool_downsample
from tfseg.layers.factorized import factorized_conv
from tfseg.layers.init import torch_init
from tfseg.layers.resize import bilinear_downsample
from tfseg.registry import MODELS

K = 4
DILATIONS = (2, 2, 4, 4, 8, 8, 16, 16)


def _conv_bn_prelu(x, filters, kernel, *, strides=1, dilation=1, name):
    """Convolution (no bias) + BN + PReLU (one slope)."""
    return conv_bn_prelu(
        x, filters, kernel, strides=strides, dilation_rate=dilation,
        kernel_initializer=torch_init(), name=name,
    )


def downsampling_block(x, filters, *, name):
    """3x3/2 convolution to ``filters - in`` (+ BN + PReLU) || 3x3/2 max-pool, concatenated."""
    return conv_pool_downsample(
        x, filters, activation="prelu", kernel_initializer=torch_init, name=name
    )


def factorized_pair(x, filters, *, dilation=1, name):
    """3x1 then 1x3 convolution, each dilated + BN + PReLU (a factorised 3x3)."""
    return factorized_conv(
        x, filters, 3, dilation=dilation, bn_between=True, activation_between="prelu",
        activation="prelu", kernel_initializer=torch_init,
        names={"conv1": f"{name}_3x1_conv", "conv2": f"{name}_1x3_conv"}, name=name,
    )


def fp_channel(x, *, dilation, name):
    """Feature-pyramid channel: three chained factorised pairs (C/4, C/4, C/2), concatenated."""
    channels = x.shape[-1]
    if channels % 4:
        raise ValueError(f"{name}: {channels} channels are not a multiple of 4")
    y1 = factorized_pair(x, channels // 4, dilation=dilation, name=f"{name}_b1")
    y2 = factorized_pair(y1, channels // 4, dilation=dilation, name=f"{name}_b2")
    y3 = factorized_pair(y2, channels // 2, dilation=dilation, name=f"{name}_b3")
    return layers.Concatenate(name=f"{name}_concat")([y1, y2, y3])


def cfp_dilations(rk):
    """Dilations of the K = 4 FP channels of a CFP module: 1, ceil(rk/4), ceil(rk/2), rk."""
    rk = int(rk)
    return (1, -(-rk // 4), -(-rk // 2), rk)


def cfp_module(x, *, rk, name):
    """CFP module: project to C/4, four FP channels, hierarchical fusion, 1x1, + input."""
    channels = x.shape[-1]
    if channels % (4 * K):
        raise ValueError(f"{name}: {channels} channels are not a multiple of {4 * K}")
    y = _conv_bn_prelu(x, channels // K, 1, name=f"{name}_proj")
    feats = []
    for k, d in enumerate(cfp_dilations(rk)):
        f = fp_channel(y, dilation=d, name=f"{name}_fp{k + 1}")
        if feats:
            f = layers.Add(name=f"{name}_hff{k + 1}")([f, feats[-1]])
        feats.append(f)
    y = layers.Concatenate(name=f"{name}_concat")(feats)
    y = _conv_bn_prelu(y, channels, 1, name=f"{name}_fuse")
    return layers.Add(name=f"{name}_add")([x, y])


@MODELS.register(
    "cfpnet",
    stride=8,
    paper="CFPNet (Lou and Loew, 2021)",
    reference="CFPNet",
    features={8: "cfpnet_l3_concat"},
    # the contract test on one CFP module at 1/4 and two at 1/8 (same layers, fewer of them)
    contract_kwargs={"n": 1, "m": 2, "dilations": (2, 4, 16)},
)
def cfpnet(inputs, num_classes, *, n=2, m=6, dilations=DILATIONS, name="cfpnet"):
    """CFPNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 8.
      num_classes: logit channels.
      n, m: CFP modules at stride 4 (64 channels) and at stride 8 (128 channels).
      dilations: ``rk`` of each CFP module, ``n + m`` values.
      name: layer-name prefix.
    """
    n, m = int(n), int(m)
    dilations = tuple(int(d) for d in dilations)
    if n < 0 or m < 0 or len(dilations) != n + m:
        raise ValueError(
            f"cfpnet: dilations needs n + m = {n + m} values (n, m >= 0), got {dilations}"
        )
    half = bilinear_downsample(inputs, 2, name=f"{name}_image_d2")
    quarter = bilinear_downsample(inputs, 4, name=f"{name}_image_d4")
    eighth = bilinear_downsample(inputs, 8, name=f"{name}_image_d8")

    x = _conv_bn_prelu(inputs, 32, 3, strides=2, name=f"{name}_init1")
    x = _conv_bn_prelu(x, 32, 3, name=f"{name}_init2")
    x = _conv_bn_prelu(x, 32, 3, name=f"{name}_init3")
    x = layers.Concatenate(name=f"{name}_l1_concat")([x, half])

    x = downsampling_block(x, 64, name=f"{name}_down1")
    for i in range(n):
        x = cfp_module(x, rk=dilations[i], name=f"{name}_cfp1_{i + 1}")
    x = layers.Concatenate(name=f"{name}_l2_concat")([x, quarter])

    x = downsampling_block(x, 128, name=f"{name}_down2")
    for i in range(m):
        x = cfp_module(x, rk=dilations[n + i], name=f"{name}_cfp2_{i + 1}")
    x = layers.Concatenate(name=f"{name}_l3_concat")([x, eighth])

    x = layers.Conv2D(
        num_classes, 1, kernel_initializer=torch_init(), name=f"{name}_classifier"
    )(x)
    return BilinearUpsample(8, name=f"{name}_upsample")(x)
