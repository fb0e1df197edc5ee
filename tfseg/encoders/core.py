"""Pieces shared by the encoders: the output-stride schedule and the standalone encoder model."""

import keras

from tfseg.registry import ENCODERS

OUTPUT_STRIDES = (32, 16, 8)
PYRAMID_KEYS = ("P1", "P2", "P3", "P4", "P5")


class StrideSchedule:
    """Turns the downsamplings beyond ``output_stride`` into dilation (the RTSeg "Dilation
    frontend").

    An encoder calls :meth:`down` at each of its five downsamplings (to stride 2, 4, ..., 32) and
    gets the stride and the dilation for the layer that downsampled; layers after it use
    :attr:`dilation`. With ``output_stride=8`` the downsamplings to 16 and 32 get stride 1, and the
    layers after them dilation 2 and 4. The formerly strided layer itself keeps the dilation of the
    layers before it, which keeps every receptive field exactly as in the stride-32 network (as
    torchvision's ``replace_stride_with_dilation`` and DeepLab do).

    >>> s = StrideSchedule(8)
    >>> [s.down() for _ in range(5)], s.stride, s.dilation
    ([(2, 1), (2, 1), (2, 1), (1, 1), (1, 2)], 8, 4)
    """

    def __init__(self, output_stride):
        output_stride = check_output_stride(output_stride)
        self.output_stride = output_stride
        self.stride = 1
        self.dilation = 1

    def down(self):
        """Register one downsampling; returns ``(strides, dilation)`` for the downsampling layer."""
        dilation = self.dilation
        if self.stride >= self.output_stride:
            self.dilation *= 2
            return 1, dilation
        self.stride *= 2
        return 2, dilation

    @property
    def downsamples(self):
        """Whether the next :meth:`down` really downsamples (``False`` in the dilated stages)."""
        return self.stride < self.output_stride


def check_output_stride(output_stride):
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    return int(output_stride)


def build_encoder_model(
    name, input_shape=(None, None, 3), output_stride=32, *, prefix=None, **kwargs
):
    """A standalone ``keras.Model`` mapping an image to the encoder's pyramid.

    Args:
      name: encoder name from ``tfseg.list_encoders()``.
      input_shape: ``(H, W, 3)``; ``None`` dims accept any size divisible by 32.
      output_stride: 32, or 8 for the dilated variant (P4 and P5 at stride 8).
      prefix: layer-name prefix (default ``name``), as ``build_model`` uses it inside full models.
      **kwargs: encoder hyper-parameters (``alpha`` for mobilenet and mobilenetv2,
      ``include_last_conv`` for mobilenetv2, ``groups``/``scale`` for shufflenet).

    Returns:
      A model whose output is the dict ``{"P1": .., "P5": ..}``, P_k at stride ``2**k``.

    >>> model = build_encoder_model("mobilenet", (64, 96, 3))
    >>> model(np.zeros((1, 64, 96, 3)))["P5"].shape  # doctest: +SKIP
    TensorShape([1, 2, 3, 1024])
    """
    encoder_fn = ENCODERS.get(name)
    prefix = prefix or name
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    pyramid = encoder_fn(inputs, output_stride=output_stride, name=prefix, **kwargs)
    missing = [k for k in PYRAMID_KEYS if k not in pyramid]
    if missing:
        raise RuntimeError(f"encoder {name!r} did not return pyramid levels {missing}")
    return keras.Model(inputs, {k: pyramid[k] for k in PYRAMID_KEYS}, name=prefix)


def encoder_pyramid(x, encoder, *, output_stride=32, encoder_kwargs=None):
    """The pyramid ``{"P1".."P5"}`` of encoder ``encoder`` on tensor ``x``, its layers named with
    the encoder's name (so ``--encoder_weights`` finds them): how a complete network built on an
    encoder (``MODELS`` registered with ``default_encoder=``) builds it.

    >>> pyramid = encoder_pyramid(x, "resnet18", output_stride=8)  # doctest: +SKIP
    """
    from tfseg.registry import check_kwargs

    info = ENCODERS.info(encoder)
    kwargs = dict(encoder_kwargs or {})
    check_kwargs(info, kwargs, "encoder")
    pyramid = info.fn(x, output_stride=check_output_stride(output_stride), name=encoder, **kwargs)
    missing = [k for k in PYRAMID_KEYS if k not in pyramid]
    if missing:
        raise RuntimeError(f"encoder {encoder!r} did not return pyramid levels {missing}")
    return pyramid
