"""SSN building blocks: the Lightweight Non-Bottleneck-1D module (LNB, SSN paper Figure 5 and
Table 3)
and the early downsampling block (ERFNet/ENet style).

LNB, derived from ERFNet's Non-bt-1D (3x1, 1x3, 3x1 dilated, 1x3 dilated) by the paper's ablation:
the first two factorised convolutions become 1x1 channel-wise convolutions, one of them is moved to
the end of the residual branch, every convolution loses its bias and ReLU becomes PReLU. Branch
(``w`` = input channels, all convolutions ``w -> w``, no bias)::

    1x1 -> BN -> PReLU -> 3x1 (dilation d) -> PReLU -> 1x3 (dilation d) -> BN -> PReLU
        -> 1x1 -> BN -> Dropout
    out = PReLU(x + branch)

The normalisation/activation positions follow ERFNet's module (BN after each 1x3 pair, none between
3x1 and 1x3); PReLU has one slope per channel. Dropout is ERFNet's channel-wise dropout
(``SpatialDropout2D``); SSN uses 0.03 in the first five modules and 0.3 after.
"""

from keras import layers

from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, _activation


def _conv(x, filters, kernel_size, *, dilation_rate=1, strides=1, name):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )(x)


def _bn(x, name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def lnb_module(x, *, dilation=1, dropout=0.0, activation="prelu", name):
    """Lightweight Non-Bottleneck-1D module; keeps the shape of ``x`` (see the module docstring).

    Args:
      x: NHWC features; the module keeps their channel count.
      dilation: dilation of the 3x1 / 1x3 pair (1, 2, 4, 8, 16 in SSN's deeper modules).
      dropout: rate of the channel-wise dropout at the end of the branch (0 disables it).
      activation: ``"prelu"`` (the paper) or any Keras activation name, for ablations.
      name: layer-name prefix (``{name}_conv1x1a``, ``{name}_conv3x1``, ...).
    """
    dilation = int(dilation)
    if dilation < 1:
        raise ValueError(f"{name}: dilation must be >= 1, got {dilation}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
    channels = x.shape[-1]
    if channels is None:
        raise ValueError(f"{name}: the channel dimension must be known")
    y = _conv(x, channels, 1, name=f"{name}_conv1x1a")
    y = _bn(y, f"{name}_bn1")
    y = _activation(y, activation, name=f"{name}_act1")
    y = _conv(y, channels, (3, 1), dilation_rate=(dilation, 1), name=f"{name}_conv3x1")
    y = _activation(y, activation, name=f"{name}_act2")
    y = _conv(y, channels, (1, 3), dilation_rate=(1, dilation), name=f"{name}_conv1x3")
    y = _bn(y, f"{name}_bn2")
    y = _activation(y, activation, name=f"{name}_act3")
    y = _conv(y, channels, 1, name=f"{name}_conv1x1b")
    y = _bn(y, f"{name}_bn3")
    if dropout > 0:
        y = layers.SpatialDropout2D(float(dropout), name=f"{name}_dropout")(y)
    y = layers.Add(name=f"{name}_add")([x, y])
    return _activation(y, activation, name=f"{name}_out")


def downsampler_block(x, filters, *, activation="prelu", name):
    """Early downsampling (ERFNet/ENet): concat(3x3 stride-2 conv to ``filters - C_in`` channels,
    2x2 max-pool of the input) -> BN -> activation. Halves H and W; ``filters > C_in``."""
    cin = x.shape[-1]
    if cin is None or filters <= cin:
        raise ValueError(f"{name}: filters ({filters}) must exceed the input channels ({cin})")
    conv = _conv(x, filters - cin, 3, strides=2, name=f"{name}_conv")
    pool = layers.MaxPooling2D(2, strides=2, name=f"{name}_pool")(x)
    y = layers.Concatenate(name=f"{name}_concat")([conv, pool])
    y = _bn(y, f"{name}_bn")
    return _activation(y, activation, name=f"{name}_{activation}")
