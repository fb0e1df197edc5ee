"""Small custom layers: channel shuffle / split / mean and the input-stride guard."""

import keras
import numpy as np
from keras import ops

from tfseg.layers.blocks import keras_serializable


@keras_serializable
class ChannelShuffle(keras.layers.Layer):
    """ShuffleNet channel shuffle as a fixed channel permutation (a gather on the channel axis).

    Equivalent to reshape (g, C/g) -> transpose -> reshape, but independent of H/W, so it works with
    dynamic shapes and exports to a single TFLite GATHER / ONNX Gather.
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(
                f"{self.name}: {channels} channels are not divisible by groups={self.groups}"
            )
        perm = np.arange(channels).reshape(self.groups, channels // self.groups).T.reshape(-1)
        self._perm = perm.astype("int32")

    def call(self, x):
        return ops.take(x, self._perm, axis=-1)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras_serializable
class ChannelSplit(keras.layers.Layer):
    """Split NHWC features into ``parts`` equal contiguous channel groups (a list of tensors).

    The channel split of ShuffleNet v2 / LEDNet's SS-nbt unit: static slices, so it works with
    dynamic H/W and exports to TFLite STRIDED_SLICE / ONNX Slice.
    """

    def __init__(self, parts=2, **kwargs):
        super().__init__(**kwargs)
        self.parts = int(parts)
        if self.parts < 1:
            raise ValueError(f"ChannelSplit parts must be a positive integer, got {parts}")

    def _width(self, channels):
        if channels % self.parts:
            raise ValueError(
                f"{self.name}: {channels} channels do not split into {self.parts} equal parts"
            )
        return channels // self.parts

    def call(self, x):
        n = self._width(x.shape[-1])
        return [x[..., i * n : (i + 1) * n] for i in range(self.parts)]

    def compute_output_shape(self, input_shape):
        n = self._width(input_shape[-1])
        return [(*input_shape[:-1], n) for _ in range(self.parts)]

    def get_config(self):
        return {**super().get_config(), "parts": self.parts}


@keras_serializable
class ChannelMean(keras.layers.Layer):
    """Mean over the channel axis, keeping it: ``(B, H, W, C) -> (B, H, W, 1)``."""

    def call(self, x):
        return ops.mean(x, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        return super().get_config()  # no options of its own


@keras_serializable
class StrideGuard(keras.layers.Layer):
    """The model's input contract: the input-size multiple it needs, and its recorded anatomy.

    Placed right after the input. A size that is not a multiple of ``stride`` fails with a message
    naming the size, when the model is built for a static size and when a dynamic-size model is
    called on such a size (whenever the size is known at call time: eager calls, ``predict``, the
    first trace of a function). With ``any_size=True`` the layer instead pads the image at the
    bottom and right with zeros up to the next multiple (a no-op for sizes that fit, so static
    exports are unchanged), and ``CropToInput`` crops the outputs back.

    ``anatomy`` is the dict that ``tfseg.models.anatomy`` records when ``build_model`` builds the
    model (stride, outputs, encoder and class-score layers, features); it is part of the layer's
    config, so it survives a ``.keras`` round trip.
    """

    def __init__(self, stride, any_size=False, anatomy=None, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)
        self.any_size = bool(any_size)
        self.anatomy = dict(anatomy or {})

    def _check(self, h, w):
        for dim, label in ((h, "height"), (w, "width")):
            if isinstance(dim, int) and dim % self.stride:
                raise ValueError(
                    f"input {label} {dim} is not a multiple of the model's stride {self.stride}; "
                    f"use a size divisible by {self.stride} (tfseg.evaluate/predict pad "
                    f"automatically; build_model(..., any_size=True) pads inside the model)"
                )

    def build(self, input_shape):
        if not self.any_size:
            self._check(input_shape[1], input_shape[2])

    def call(self, x):
        if not self.any_size:
            self._check(*_static_hw(x))
            return x
        return pad_to_multiple(x, self.stride)

    def compute_output_shape(self, input_shape):
        if not self.any_size:
            return input_shape
        n, h, w, c = input_shape
        up = lambda d: None if d is None else -(-d // self.stride) * self.stride  # noqa: E731
        return (n, up(h), up(w), c)

    def get_config(self):
        return {
            **super().get_config(),
            "stride": self.stride,
            "any_size": self.any_size,
            "anatomy": self.anatomy,
        }


def _static_hw(x):
    """(H, W) of an NHWC tensor as Python ints where known, else None."""
    shape = tuple(x.shape)
    dims = []
    for d in shape[1:3]:
        dims.append(int(d) if isinstance(d, int) or (d is not None and str(d).isdigit()) else None)
    return dims


def pad_to_multiple(x, stride):
    """Zero-pad NHWC ``x`` at the bottom and right to a multiple of ``stride``
    (no-op if it fits)."""
    h, w = _static_hw(x)
    if h is not None and w is not None:
        ph, pw = -h % stride, -w % stride
        if ph == 0 and pw == 0:
            return x
        return ops.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]])
    shape = ops.shape(x)
    ph = (stride - shape[1] % stride) % stride
    pw = (stride - shape[2] % stride) % stride
    zeros_h = ops.zeros((shape[0], ph, shape[2], shape[3]), dtype=x.dtype)
    x = ops.concatenate([x, zeros_h], axis=1)
    zeros_w = ops.zeros((shape[0], shape[1] + ph, pw, shape[3]), dtype=x.dtype)
    return ops.concatenate([x, zeros_w], axis=2)


@keras_serializable
class CropToInput(keras.layers.Layer):
    """``[output, image] -> output[:, :H, :W]``: undoes ``StrideGuard(any_size=True)``'s padding."""

    def call(self, inputs):
        y, image = inputs
        (h, w), (yh, yw) = _static_hw(image), _static_hw(y)
        if h is not None and (h, w) == (yh, yw):
            return y
        shape = ops.shape(image)
        return y[:, : shape[1], : shape[2]]

    def compute_output_shape(self, input_shapes):
        y, image = input_shapes
        return (y[0], image[1], image[2], y[3])
