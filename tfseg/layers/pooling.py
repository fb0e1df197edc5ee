"""Adaptive average pooling, resizing to another tensor's size, and the pyramid pooling module,
in forms that are exact for every input size and export to TensorRT 8.2.

PyTorch networks pool to a fixed grid (``nn.AdaptiveAvgPool2d(6)``) and resize back to the input's
size (``F.interpolate(x, size)``). ONNX has no adaptive pooling to a size other than 1, and a Resize
whose scales depend on the input size is not a constant for TensorRT 8.2. Both operations are linear
and separable: along each spatial axis, output = M @ input for an (out, in) matrix that depends only
on the two sizes. So:

- with static spatial sizes (eager calls, and every export, which traces at a fixed input size) the
  matrices are numpy constants and the layer is two ``MatMul``s with constants between transposes
  (or one ``AveragePool`` when the pooling windows tile the input exactly);
- with dynamic sizes (a traced graph with ``None`` H/W, e.g. a SavedModel with dynamic shapes) the
  same matrices are computed from the runtime sizes with ``arange`` and comparisons.

Adaptive pooling uses PyTorch's bins: output cell ``i`` of ``out`` averages input rows
``floor(i * in / out)`` to ``ceil((i + 1) * in / out) - 1`` (overlapping when ``out`` does not
divide ``in``). Resizing is half-pixel bilinear (``align_corners=False``, tfseg's convention
everywhere; ``tf.image.resize`` and ``F.interpolate(..., align_corners=False)`` agree on it), the
source coordinate clamped at the borders.
"""

import numpy as np
from keras import layers, ops

from tfseg.layers.blocks import keras_serializable, pointwise_bn_act


def _pair(size):
    return (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)


def adaptive_pool_matrix(in_size, out_size):
    """(out, in) float32 matrix of PyTorch's adaptive average pooling along one axis."""
    m = np.zeros((out_size, in_size), "float32")
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -(-((i + 1) * in_size) // out_size)
        m[i, start:end] = 1.0 / (end - start)
    return m


def bilinear_matrix(in_size, out_size):
    """(out, in) float32 matrix of half-pixel bilinear resizing along one axis."""
    m = np.zeros((out_size, in_size), "float32")
    scale = in_size / out_size
    for i in range(out_size):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        lo = min(int(np.floor(src)), in_size - 1)
        hi = min(lo + 1, in_size - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m


def _dynamic_pool_matrix(in_size, out_size):
    i = ops.arange(out_size, dtype="int32")
    start = (i * in_size) // out_size
    end = ((i + 1) * in_size + out_size - 1) // out_size
    j = ops.arange(in_size, dtype="int32")[None, :]
    inside = ops.logical_and(j >= start[:, None], j < end[:, None])
    return ops.cast(inside, "float32") / ops.cast(end - start, "float32")[:, None]


def _dynamic_bilinear_matrix(in_size, out_size):
    scale = ops.cast(in_size, "float32") / ops.cast(out_size, "float32")
    src = ops.maximum((ops.cast(ops.arange(out_size), "float32") + 0.5) * scale - 0.5, 0.0)
    last = ops.cast(in_size - 1, "float32")
    lo = ops.minimum(ops.floor(src), last)
    hi = ops.minimum(lo + 1.0, last)
    frac = (src - lo)[:, None]
    j = ops.cast(ops.arange(in_size), "float32")[None, :]
    at_lo = ops.cast(ops.equal(j, lo[:, None]), "float32")
    at_hi = ops.cast(ops.equal(j, hi[:, None]), "float32")
    return at_lo * (1.0 - frac) + at_hi * frac


def _apply(x, m_h, m_w):
    """``M_h @ x @ M_w^T`` over the spatial axes of NHWC ``x``."""
    dtype = x.dtype
    m_h, m_w = ops.cast(m_h, dtype), ops.cast(m_w, dtype)
    x = ops.matmul(ops.transpose(x, (0, 2, 3, 1)), ops.transpose(m_h))  # (N, W, C, H')
    x = ops.matmul(ops.transpose(x, (0, 3, 2, 1)), ops.transpose(m_w))  # (N, H', C, W')
    return ops.transpose(x, (0, 1, 3, 2))


def _static_hw(x):
    h, w = x.shape[1], x.shape[2]
    return (h, w) if isinstance(h, int) and isinstance(w, int) else None


@keras_serializable
class AdaptiveAvgPool2D(layers.Layer):
    """``nn.AdaptiveAvgPool2d(output_size)`` for NHWC tensors, exact for every input size (see the
    module docstring); ``output_size`` an int or ``(h, w)``. Output size 1 is a mean."""

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = _pair(output_size)

    def call(self, x):
        oh, ow = self.output_size
        if (oh, ow) == (1, 1):
            return ops.mean(x, axis=(1, 2), keepdims=True)
        static = _static_hw(x)
        if static is None:
            h, w = ops.shape(x)[1], ops.shape(x)[2]
            return _apply(x, _dynamic_pool_matrix(h, oh), _dynamic_pool_matrix(w, ow))
        h, w = static
        if h % oh == 0 and w % ow == 0:
            k = (h // oh, w // ow)
            return ops.average_pool(x, k, strides=k, padding="valid")
        return _apply(x, adaptive_pool_matrix(h, oh), adaptive_pool_matrix(w, ow))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}


@keras_serializable
class ResizeLike(layers.Layer):
    """``[x, like] -> x`` resized (half-pixel bilinear) to the spatial size of ``like``: PyTorch's
    ``F.interpolate(x, like.shape[2:], mode="bilinear", align_corners=False)``, for any two sizes.
    A 1x1 ``x`` is broadcast."""

    def call(self, inputs):
        x, like = inputs
        small, big = _static_hw(x), _static_hw(like)
        if small == (1, 1) and big is not None:
            # a broadcast product rather than ``ops.tile``: the same values, and LiteRT's XNNPACK
            # runs MUL but not TILE (whose kernel ended a delegate partition: Fast-SCNN's
            # pyramid pooling)
            return x * ops.ones((1, big[0], big[1], 1), dtype=x.dtype)
        if small is not None and big is not None:
            if small == big:
                return x
            return _apply(x, bilinear_matrix(small[0], big[0]), bilinear_matrix(small[1], big[1]))
        sx, sl = ops.shape(x), ops.shape(like)
        return _apply(
            x,
            _dynamic_bilinear_matrix(sx[1], sl[1]),
            _dynamic_bilinear_matrix(sx[2], sl[2]),
        )

    def compute_output_shape(self, input_shapes):
        x, like = input_shapes
        return (x[0], like[1], like[2], x[3])


def pyramid_pooling(
    x, out_channels, *, pool_sizes=(1, 2, 4, 6), activation="relu", use_bias=False, name
):
    """The reference zoo's ``PyramidPoolingModule`` (PSPNet's, Zhao et al. 2017): for each pool
    size, adaptive average pooling and a 1x1 convolution (no bias, no BN) to ``in / 4`` channels,
    resized back to ``x``'s size; the input and the four maps concatenated (``2 * in`` channels) and
    fused by ``pointwise_bn_act`` to ``out_channels`` (with a bias if ``use_bias``).

    Layers: ``{name}_pool{s}``, ``{name}_conv{s}``, ``{name}_up{s}``, ``{name}_concat``,
    ``{name}_fuse_*``.
    """
    hidden = x.shape[-1] // len(pool_sizes)
    branches = [x]
    for s in pool_sizes:
        y = AdaptiveAvgPool2D(s, name=f"{name}_pool{s}")(x)
        y = layers.Conv2D(
            hidden, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv{s}"
        )(y)
        branches.append(ResizeLike(name=f"{name}_up{s}")([y, x]))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    return pointwise_bn_act(
        y, out_channels, activation=activation, use_bias=use_bias, name=f"{name}_fuse"
    )


@keras_serializable
class SameAveragePooling2D(layers.Layer):
    """``AveragePooling2D(pool_size, strides, padding="same")`` that gives TensorFlow's result on
    every Keras backend: each output averages the input pixels its window covers, padding not
    counted, with TensorFlow's split of an odd total padding (the extra row / column at the
    bottom / right).

    Keras 3.15's PyTorch backend gets this wrong when the padding is asymmetric (an even input
    with a 3x3 window at stride 2, or an even window): on a 4x4 input of 1..16 it returns
    ``[6, 7.667, 12.667, 14.333]`` where TensorFlow and JAX return ``[6, 7.5, 12, 13.5]``
    (tools/check_backends.py, docs/backends.md). On that backend the layer computes the window
    sums with a depthwise convolution of ones (``padding="same"``, which Keras pads as TensorFlow
    does) and divides by the same convolution of a map of ones: the number of real pixels per
    window. Everywhere else it is Keras' own average pooling, so TensorFlow graphs and every export
    are unchanged.
    """

    def __init__(self, pool_size, strides=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size)
        self.strides = _pair(strides if strides is not None else pool_size)

    def call(self, x):
        import keras

        if keras.backend.backend() != "torch":
            return ops.average_pool(x, self.pool_size, self.strides, padding="same")
        channels = x.shape[-1]
        ones = ops.ones((*self.pool_size, channels, 1), dtype=x.dtype)
        sums = ops.depthwise_conv(x, ones, self.strides, padding="same")
        mask = ops.ones_like(x[..., :1])
        count = ops.depthwise_conv(mask, ones[:, :, :1], self.strides, padding="same")
        return sums / count

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        out = [None if s is None else -(-s // st) for s, st in zip((h, w), self.strides)]
        return (b, out[0], out[1], c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides}
