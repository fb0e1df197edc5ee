"""Differentiable spatial sampler built from gathers (the sampler of GUM / iGUM and the SSN
instance module).

Conventions (every caller relies on them):

- ``source`` is NHWC, ``(B, Hs, Ws, C)``.
- ``coords`` is ``(B, H, W, 2)`` float, holding ``(y, x)`` **in source pixel units**: the centre of
  source pixel ``(i, j)`` sits at ``(i, j)``, so valid positions span ``[0, Hs - 1] x [0, Ws - 1]``.
- Border handling: clamp to the edge (coordinates outside that range read the edge value; the
  gradient with respect to a coordinate is zero while it lies outside).
- ``mode="bilinear"`` interpolates the four neighbours and is differentiable with respect to both
  ``source`` and ``coords``; ``mode="nearest"`` reads the pixel at ``floor(coord + 0.5)`` (eq. 1 of
  the SSN paper), differentiable with respect to ``source`` only.

The implementation flattens ``source`` to ``(B * Hs * Ws, C)`` rows
(bilinear: ``4C`` rows holding the
four neighbours) and reads them with ``keras.ops.take`` (``tf.gather``): it traces with unknown
B/H/W, converts to TFLite built-ins (GATHER) and to a plain ONNX ``Gather`` that TensorRT 8.2
accepts
(no GridSample, no tensorflow-addons). ``keras.ops.take`` also wraps negative indices, which adds a
few integer ops (Less/Select) per gather; the indices here are never negative.
"""

import keras
from keras import ops

from tfseg.layers.blocks import keras_serializable

SAMPLER_MODES = ("bilinear", "nearest")


def _check_mode(mode):
    if mode not in SAMPLER_MODES:
        raise ValueError(f"sampler mode must be one of {SAMPLER_MODES}, got {mode!r}")


def grid_axis(size, out_size, dtype="float32"):
    """Source coordinates of the ``out_size`` output pixel centres along one axis (half-pixel):
    ``(i + 0.5) * size / out_size - 0.5`` for ``i`` in ``0 .. out_size - 1``."""
    scale = ops.cast(size, dtype) / ops.cast(out_size, dtype)
    return (ops.cast(ops.arange(out_size), dtype) + 0.5) * scale - 0.5


def regular_grid(batch, height, width, out_height, out_width, dtype="float32"):
    """Sampling coordinates of a regular ``out_height x out_width`` grid over a ``height x width``
    source, ``(batch, out_height, out_width, 2)`` holding ``(y, x)`` in source pixel units.

    Half-pixel convention (``align_corners=False``, as ``tf.image.resize`` and PyTorch):
    output pixel
    ``i`` covers the same area of the image as the source, so its centre maps to
    ``(i + 0.5) * height / out_height - 0.5``. Sampling ``source`` bilinearly at this grid equals
    half-pixel bilinear resizing (and ``BilinearUpsample`` for an integer factor). Any argument may
    be a symbolic/dynamic scalar (e.g. ``keras.ops.shape(x)[1]``).
    """
    ys = grid_axis(height, out_height, dtype)
    xs = grid_axis(width, out_width, dtype)
    yy = ops.broadcast_to(ops.reshape(ys, (1, -1, 1, 1)), (batch, out_height, out_width, 1))
    xx = ops.broadcast_to(ops.reshape(xs, (1, 1, -1, 1)), (batch, out_height, out_width, 1))
    return ops.concatenate([yy, xx], axis=-1)


def pixel_grid(batch, height, width, dtype="float32"):
    """Integer pixel positions ``(y, x)`` of a ``height x width`` map: ``regular_grid`` with the
    output equal to the source (``coords[b, i, j] == (i, j)``)."""
    return regular_grid(batch, height, width, height, width, dtype=dtype)


def sample(source, coords, mode="bilinear"):
    """Sample ``source`` (B, Hs, Ws, C) at ``coords`` (B, H, W, 2) = (y, x) in source pixel units.

    Returns ``(B, H, W, C)`` in ``source``'s dtype. See the module docstring for the conventions.

    >>> src = keras.ops.reshape(keras.ops.arange(12, dtype="float32"), (1, 3, 4, 1))
    >>> sample(src, keras.ops.convert_to_tensor([[[[1.0, 1.5]]]]))  # between 5 and 6 -> 5.5
    """
    _check_mode(mode)
    source = ops.convert_to_tensor(source)
    coords = ops.convert_to_tensor(coords)
    if len(source.shape) != 4 or len(coords.shape) != 4 or coords.shape[-1] not in (2, None):
        raise ValueError(
            "sample expects source (B, Hs, Ws, C) and coords (B, H, W, 2), got "
            f"{tuple(source.shape)} and {tuple(coords.shape)}"
        )
    coords = ops.cast(coords, source.dtype)
    return _sample_yx(source, coords[..., 0], coords[..., 1], mode)


def _sample_yx(source, y, x, mode):
    """``sample`` with the coordinates as two (B, H, W) tensors ``y`` and ``x`` of the same
    shape."""
    dtype = source.dtype
    src_shape = ops.shape(source)
    batch, hs, ws, channels = src_shape[0], src_shape[1], src_shape[2], src_shape[3]
    y, x = ops.cast(y, dtype), ops.cast(x, dtype)
    # Row offset of each batch element in the flattened map, (B, 1, 1).
    base = ops.reshape(ops.arange(batch, dtype="int32") * ops.cast(hs * ws, "int32"), (-1, 1, 1))
    y = ops.clip(y, 0.0, ops.cast(hs - 1, dtype))
    x = ops.clip(x, 0.0, ops.cast(ws - 1, dtype))
    ws_i = ops.cast(ws, "int32")

    if mode == "nearest":
        yi = ops.cast(ops.floor(y + 0.5), "int32")
        xi = ops.cast(ops.floor(x + 0.5), "int32")
        # floor(edge + 0.5) stays on the edge because y, x are clipped first.
        yi = ops.minimum(yi, ops.cast(hs - 1, "int32"))
        xi = ops.minimum(xi, ops.cast(ws - 1, "int32"))
        flat = ops.reshape(source, (-1, channels))
        return ops.take(flat, base + yi * ws_i + xi, axis=0)

    y0f = ops.floor(y)
    x0f = ops.floor(x)
    wy = y - y0f
    wx = x - x0f
    # One gather reads the four neighbours, packed along channels beforehand at low resolution:
    # [s(y, x), s(y, x + 1), s(y + 1, x), s(y + 1, x + 1)] with the edge replicated, so (y0, x0)
    # alone addresses them (~20% faster than four gathers on LiteRT and onnxruntime).
    right = ops.concatenate([source[:, :, 1:], source[:, :, -1:]], axis=2)
    pair = ops.concatenate([source, right], axis=-1)
    below = ops.concatenate([pair[:, 1:], pair[:, -1:]], axis=1)
    packed = ops.reshape(ops.concatenate([pair, below], axis=-1), (-1, 4 * channels))
    rows = ops.take(packed, base + ops.cast(y0f, "int32") * ws_i + ops.cast(x0f, "int32"), axis=0)
    out_shape = ops.shape(rows)
    rows = ops.reshape(rows, (out_shape[0], out_shape[1], out_shape[2], 4, channels))
    weights = ops.stack([(1.0 - wy) * (1.0 - wx), (1.0 - wy) * wx, wy * (1.0 - wx), wy * wx], -1)
    return ops.sum(rows * ops.expand_dims(weights, -1), axis=-2)


@keras_serializable
class GuidedSampler(keras.layers.Layer):
    """Keras layer around ``sample``: ``GuidedSampler(mode)([source, coords]) -> (B, H, W, C)``.

    ``source`` (B, Hs, Ws, C); ``coords`` (B, H, W, 2) = (y, x) in source pixel units (pixel centres
    at integers, clamp to the edge). ``mode`` is ``"bilinear"`` (differentiable w.r.t. both inputs)
    or ``"nearest"``.

    >>> up = GuidedSampler()([low_res_logits, regular_grid(b, h, w, 8 * h, 8 * w) + offsets])
    """

    def __init__(self, mode="bilinear", **kwargs):
        super().__init__(**kwargs)
        _check_mode(mode)
        self.mode = mode

    def call(self, inputs):
        source, coords = inputs
        return sample(source, coords, self.mode)

    def compute_output_shape(self, input_shape):
        source_shape, coords_shape = input_shape
        return (coords_shape[0], coords_shape[1], coords_shape[2], source_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras_serializable
class GuidedUpsample(keras.layers.Layer):
    """Guided upsampling (GUM / iGUM): ``GuidedUpsample(offset_scale)([source, offsets])``.

    ``source`` (B, Hs, Ws, C) is sampled on the regular half-pixel grid of the output size (the
    spatial size of ``offsets``, (B, H, W, 2)), shifted by ``offset_scale * offsets``: the offsets
    are ``(dy, dx)`` and one unit moves the sampling point by ``offset_scale`` **source** pixels
    (offsets squashed with tanh into [-1, 1] thus move a point by at most ``offset_scale``
    low-resolution pixels, i.e. up to the neighbouring source pixel for the default 1.0). With zero
    offsets the layer
    is plain half-pixel bilinear resizing (``mode="bilinear"``) or nearest resizing.
    """

    def __init__(self, offset_scale=1.0, mode="bilinear", **kwargs):
        super().__init__(**kwargs)
        _check_mode(mode)
        self.offset_scale = float(offset_scale)
        self.mode = mode

    def call(self, inputs):
        source, offsets = inputs
        dtype = source.dtype
        src_shape = ops.shape(source)
        out_shape = ops.shape(offsets)
        # The regular grid as two broadcast vectors: a (B, H, W, 2) grid would be folded into a
        # constant of the output size by static-shape exports (4 MiB at 512x1024 in ONNX).
        ys = ops.reshape(grid_axis(src_shape[1], out_shape[1], dtype), (1, -1, 1))
        xs = ops.reshape(grid_axis(src_shape[2], out_shape[2], dtype), (1, 1, -1))
        offsets = ops.cast(offsets, dtype) * self.offset_scale
        return _sample_yx(source, offsets[..., 0] + ys, offsets[..., 1] + xs, self.mode)

    def compute_output_shape(self, input_shape):
        source_shape, offsets_shape = input_shape
        return (offsets_shape[0], offsets_shape[1], offsets_shape[2], source_shape[-1])

    def get_config(self):
        return {**super().get_config(), "offset_scale": self.offset_scale, "mode": self.mode}
