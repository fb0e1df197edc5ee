"""Factorised (asymmetric) convolutions: a Kx1 then a 1xK convolution in place of a KxK one.

One helper, ``factorized_conv``, for the pairs of the real-time zoo, which differ only in:

- full or depthwise convolutions (ESNet, CFPNet, ERFNet, EDANet, AGLNet / DABNet, FDDWNet);
- what sits between the two convolutions: nothing (EDANet), an activation (ERFNet's
  non-bottleneck-1D, ESNet, SSN's LNB, AGLNet), BN (FDDWNet) or BN + activation (DABNet, CFPNet);
- whether the second is followed by an activation after its BN;
- dilation (along each convolution's long axis), bias, initialiser, and which comes first.

Layer names default to ``{name}_{K}x1``, ``{name}_{K}x1_bn``, ``{name}_{K}x1_<act>``,
``{name}_1x{K}``, ``{name}_1x{K}_bn``, ``{name}_1x{K}_<act>``; ``names`` overrides any of them
(networks keep the names their saved weights were written with).
"""

from keras import layers

from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, act, activation_suffix
from tfseg.layers.downsample import make_initializer

ROLES = ("conv1", "bn1", "act1", "conv2", "bn2", "act2")


def factorized_conv(
    x,
    filters=None,
    kernel_size=3,
    *,
    dilation=1,
    depthwise=False,
    first="kx1",
    bn_between=False,
    activation_between=None,
    bn=True,
    activation=None,
    use_bias=False,
    kernel_initializer=None,
    names=None,
    name,
):
    """``Kx1 conv [-> BN] [-> act] -> 1xK conv [-> BN] [-> act]`` (or 1xK first), "same" padding.

    Args:
      x: NHWC features.
      filters: output channels of both convolutions (default: the input's); ignored (must be
        ``None`` or the input's) when ``depthwise``.
      kernel_size: K.
      dilation: dilation of both convolutions along their long axis.
      depthwise: depthwise convolutions (``DepthwiseConv2D``) instead of full ones.
      first: ``"kx1"`` (Kx1 then 1xK) or ``"1xk"``.
      bn_between, activation_between: BN and/or activation after the first convolution.
      bn, activation: BN and/or activation after the second convolution.
      use_bias: bias of the convolutions; a pair ``(first, second)`` sets them separately.
      kernel_initializer: a Keras initializer name / instance, or a zero-argument factory called
        once per convolution (``tfseg.layers.init.torch_init``); default: Keras' own
        (``glorot_uniform``).
      names: ``{role: layer name}`` overriding the defaults; roles ``conv1``, ``bn1``, ``act1``,
        ``conv2``, ``bn2``, ``act2`` (1 = the first convolution).
      name: layer-name prefix.

    Activations follow ``tfseg.layers.blocks.act`` (``None``, a Keras name, ``"prelu"`` with one
    slope per layer, or a callable ``f(x, name)``).
    """
    if first not in ("kx1", "1xk"):
        raise ValueError(f"{name}: first must be 'kx1' or '1xk', got {first!r}")
    unknown = set(names or {}) - set(ROLES)
    if unknown:
        raise ValueError(f"{name}: unknown layer role(s) {sorted(unknown)}; roles: {ROLES}")
    channels = x.shape[-1]
    if depthwise and filters not in (None, channels):
        raise ValueError(f"{name}: a depthwise pair keeps the {channels} channels, got {filters}")
    filters = channels if filters is None else filters
    k, d = int(kernel_size), int(dilation)
    tall = ((k, 1), (d, 1), f"{name}_{k}x1")
    wide = ((1, k), (1, d), f"{name}_1x{k}")
    steps = (tall, wide) if first == "kx1" else (wide, tall)
    biases = tuple(use_bias) if isinstance(use_bias, (tuple, list)) else (use_bias, use_bias)
    names = names or {}
    post = ((bn_between, activation_between), (bn, activation))
    for i, ((kernel, rate, prefix), bias, (with_bn, activation_i)) in enumerate(
        zip(steps, biases, post), start=1
    ):
        init = {} if kernel_initializer is None else {"init": kernel_initializer}
        if depthwise:
            if init:
                init = {"depthwise_initializer": make_initializer(kernel_initializer)}
            conv = layers.DepthwiseConv2D(
                kernel, padding="same", dilation_rate=rate, use_bias=bias,
                name=names.get(f"conv{i}", prefix), **init,
            )
        else:
            if init:
                init = {"kernel_initializer": make_initializer(kernel_initializer)}
            conv = layers.Conv2D(
                filters, kernel, padding="same", dilation_rate=rate, use_bias=bias,
                name=names.get(f"conv{i}", prefix), **init,
            )
        x = conv(x)
        if with_bn:
            x = layers.BatchNormalization(
                momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=names.get(f"bn{i}", f"{prefix}_bn")
            )(x)
        if activation_i is not None:
            default = f"{prefix}_{activation_suffix(activation_i)}"
            x = act(x, activation_i, name=names.get(f"act{i}", default))
    return x
