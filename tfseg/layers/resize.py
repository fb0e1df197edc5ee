"""Bilinear upsampling by a static integer factor that survives dynamic H/W.

``keras.ops.image.resize`` fails on dynamic spatial sizes inside a traced function with
TF 2.21 / Keras 3.15 (see DESIGN.md, known traps). This layer implements half-pixel bilinear
interpolation (``align_corners=False``, the convention of ``tf.image.resize`` and PyTorch) for an
integer factor as a separable pair of shifted, weighted sums. It only needs slicing, concatenation,
stacking and a reshape, so it traces with unknown H/W, converts to TFLite built-ins and to ONNX ops
that TensorRT 8.2 accepts, and stays differentiable.
"""

import keras
from keras import ops

from tfseg.layers.blocks import keras_serializable


def _upsample_axis(x, factor, axis):
    """Upsample ``x`` (NHWC) along spatial ``axis`` (1 or 2) by ``factor``."""
    if factor == 1:
        return x
    n = ops.shape(x)[axis]
    if axis == 1:
        first, last = x[:, :1], x[:, -1:]
    else:
        first, last = x[:, :, :1], x[:, :, -1:]
    padded = ops.concatenate([first, x, last], axis=axis)
    if axis == 1:
        prev, nxt = padded[:, :-2], padded[:, 2:]
    else:
        prev, nxt = padded[:, :, :-2], padded[:, :, 2:]
    phases = []
    for p in range(factor):
        # Output pixel i*factor + p samples source coordinate i + d.
        d = (2 * p + 1 - factor) / (2 * factor)
        if d < 0:
            phases.append(x + (-d) * (prev - x))
        elif d > 0:
            phases.append(x + d * (nxt - x))
        else:
            phases.append(x)
    y = ops.stack(phases, axis=axis + 1)
    shape = ops.shape(x)
    if axis == 1:
        new_shape = (-1, n * factor, shape[2], shape[3])
    else:
        new_shape = (-1, shape[1], n * factor, shape[3])
    return ops.reshape(y, new_shape)


def upsample_bilinear(x, factor):
    """Functional form: half-pixel bilinear upsampling of NHWC ``x`` by integer ``factor``."""
    x = _upsample_axis(x, factor, 1)
    return _upsample_axis(x, factor, 2)


@keras_serializable
class BilinearUpsample(keras.layers.Layer):
    """Upsample NHWC features by a static integer factor with half-pixel bilinear interpolation.

    >>> y = BilinearUpsample(4)(keras.ops.ones((1, 8, 16, 3)))  # (1, 32, 64, 3)
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        factor = int(factor)
        if factor < 1:
            raise ValueError(f"BilinearUpsample factor must be a positive integer, got {factor}")
        self.factor = factor

    def call(self, x):
        return upsample_bilinear(x, self.factor)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (
            b,
            None if h is None else h * self.factor,
            None if w is None else w * self.factor,
            c,
        )

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def bilinear_downsample(x, factor, *, name):
    """Bilinear downsampling of NHWC ``x`` by an integer ``factor`` (half-pixel centres, no
    antialiasing: ``tf.image.resize(x, size / factor, "bilinear")``), exactly, for sizes that are
    multiples of ``factor``.

    Output pixel i samples input coordinate f*i + (f - 1)/2: the mean of pixels f*i + f/2 - 1 and
    f*i + f/2 for an even f (a crop and a 2x2/f average pool), pixel f*i + (f - 1)/2 for an odd f
    (a crop and a 1x1/f pool). Only cropping and pooling: dynamic H/W, TFLite built-ins, ONNX
    Slice + AveragePool. Layers ``{name}_crop`` (when the crop is not empty) and ``{name}_pool``.
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"{name}: factor must be a positive integer, got {factor}")
    if factor == 1:
        return x
    offset = factor // 2 - 1 if factor % 2 == 0 else factor // 2
    window = 2 if factor % 2 == 0 else 1
    if offset:
        x = keras.layers.Cropping2D(((offset, 0), (offset, 0)), name=f"{name}_crop")(x)
    return keras.layers.AveragePooling2D(
        window, strides=factor, padding="valid", name=f"{name}_pool"
    )(x)
