"""Downsampling units shared by the real-time zoo.

- ``conv_pool_downsample``: a 3x3/2 convolution concatenated with a max-pool of the input (ENet's
  initial block and its descendants: ERFNet, ESNet, FDDWNet, AGLNet, CFPNet, DABNet, FSSNet...),
  normalised either in the convolution branch or after the concatenation;
- ``strided_depthwise``: a 3x3 depthwise convolution with stride 2 and any even dilation (or
  dilation 1) in an exact, exportable form (Keras does not take stride and dilation together), with
  TensorFlow's or PyTorch's sampling phase.
"""

from keras import layers

from tfseg.layers.blocks import BN_EPSILON, BN_MOMENTUM, act, activation_suffix

ALIGNMENTS = ("tf", "torch")


def make_initializer(initializer):
    """``initializer`` as a Keras initializer argument: a name or instance is passed as it is; a
    zero-argument factory (e.g. ``tfseg.layers.init.torch_init``) is called, once per layer, so
    every layer gets its own seed."""
    if isinstance(initializer, str) or hasattr(initializer, "get_config"):
        return initializer
    return initializer()


def conv_pool_downsample(
    x,
    filters,
    *,
    activation="relu",
    pool_size=3,
    normalize="branch",
    use_bias=False,
    kernel_initializer="he_normal",
    branch_name=None,
    activation_name=None,
    name,
):
    """``concat(3x3/2 convolution to filters - C_in channels, max-pool/2 of x)``: halves H and W.

    Args:
      x: NHWC features with ``C_in < filters`` channels.
      filters: output channels.
      activation: ``tfseg.layers.blocks.act``'s argument (``"prelu"`` is one slope per layer; a
        callable ``f(x, name)`` adds a layer of its own); ``None``: linear.
      pool_size: 3 (3x3/2 "same", AGLNet/CFPNet/DABNet/ESNet/FSSNet) or 2 (2x2/2, ENet/ERFNet).
      normalize: ``"branch"``: BN + activation on the convolution branch only (layers
        ``{branch}_conv``, ``{branch}_bn``, ``{branch}_<activation>`` with ``branch`` =
        ``branch_name``, default ``{name}_conv``); ``"concat"``: BN + activation after the
        concatenation (layers ``{name}_conv``, ``{name}_bn``, ``{name}_<activation>``).
      use_bias: bias of the convolution.
      kernel_initializer: a Keras initializer name / instance or a zero-argument factory.
      activation_name: the activation layer's name instead of the default.
      name: layer-name prefix; the pool is ``{name}_pool`` and the concatenation ``{name}_concat``.
    """
    channels = x.shape[-1]
    if channels is None or filters <= channels:
        raise ValueError(f"{name}: filters ({filters}) must exceed the input channels ({channels})")
    if normalize not in ("branch", "concat"):
        raise ValueError(f"{name}: normalize must be 'branch' or 'concat', got {normalize!r}")
    prefix = (branch_name or f"{name}_conv") if normalize == "branch" else name
    conv = layers.Conv2D(
        filters - channels,
        3,
        strides=2,
        padding="same",
        use_bias=use_bias,
        kernel_initializer=make_initializer(kernel_initializer),
        name=f"{prefix}_conv" if normalize == "branch" else f"{name}_conv",
    )(x)
    if normalize == "branch":
        conv = _bn_act(conv, activation, activation_name, prefix)
    # 2x2/2 windows tile an even input ("valid" as ENet); 3x3/2 ones overlap ("same").
    pool = layers.MaxPooling2D(
        pool_size, strides=2, padding="same" if pool_size % 2 else "valid", name=f"{name}_pool"
    )(x)
    y = layers.Concatenate(name=f"{name}_concat")([conv, pool])
    if normalize == "concat":
        y = _bn_act(y, activation, activation_name, name)
    return y


def _bn_act(x, activation, activation_name, prefix):
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
    if activation is None:
        return x
    return act(x, activation, name=activation_name or f"{prefix}_{activation_suffix(activation)}")


def strided_depthwise(
    x,
    *,
    dilation=1,
    alignment="tf",
    use_bias=False,
    depthwise_initializer="glorot_uniform",
    conv_name=None,
    subsample_name=None,
    name,
):
    """3x3 depthwise convolution with stride 2 and ``dilation`` (1 or even), exactly, as exportable
    layers. H and W must be even.

    ``alignment`` picks the pixels the output is centred on, i.e. the direct form "stride-1
    dilated convolution with zero padding, then every second pixel":

    - ``"tf"``: the odd pixels ``y[1::2, 1::2]``, the samples of Keras/TF's stride-2 "same"
      convolution (which pads the extra pixel at the bottom/right);
    - ``"torch"``: the even pixels ``y[0::2, 0::2]``, PyTorch's ``padding=dilation``.

    With an even dilation every tap of an output pixel lies on the pixels of its phase, so the
    layer takes those pixels (``tf``: a one-pixel crop ``{name}_crop``; both: a 1x1/2 pooling,
    ``subsample_name`` or ``{name}_subsample``) and convolves them at stride 1 with half the
    dilation. With dilation 1, ``tf`` is the plain stride-2 "same" convolution and ``torch`` pads
    one pixel on every side (``{name}_pad``) and convolves "valid" at stride 2.

    The depthwise layer is ``conv_name`` (default ``name``): the same kernel shape as the direct
    form's, so the same weights.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"{name}: alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    dilation = int(dilation)
    if dilation < 1 or (dilation > 1 and dilation % 2):
        raise ValueError(f"{name}: a strided depthwise branch needs dilation 1 or an even one, "
                         f"got {dilation}")
    strides, padding = 1, "same"
    if dilation == 1:
        strides = 2
        if alignment == "torch":
            x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
            padding = "valid"
    else:
        if alignment == "tf":
            x = layers.Cropping2D(((1, 0), (1, 0)), name=f"{name}_crop")(x)
        x = layers.AveragePooling2D(1, strides=2, name=subsample_name or f"{name}_subsample")(x)
        dilation //= 2
    return layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        use_bias=use_bias,
        depthwise_initializer=make_initializer(depthwise_initializer),
        name=conv_name or name,
    )(x)
