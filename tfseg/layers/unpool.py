"""Max-pooling with switches and max-unpooling (ENet, SegNet), exportable with dynamic sizes.

``PoolSwitches`` records which of the four pixels of each 2x2/2 window held the maximum (the first
on ties, row-major, like the indices of PyTorch's ``max_pool2d(..., return_indices=True)``) as a
code 0..3; ``MaxUnpool2D`` writes each value back at that position and zeros elsewhere
(``nn.MaxUnpool2d(2, 2)`` with the pool's indices). Both use only strided slicing, comparisons,
``where``, stacking and reshapes: they run with dynamic H/W and convert to TFLite built-ins and to
ONNX ops on TensorRT 8.2's list (no ``MaxUnpool``, ``ScatterND`` or ``GatherND``). No weights.
"""

from keras import layers, ops

from tfseg.layers.blocks import keras_serializable


def _windows(x):
    """The four pixels of every 2x2 window: top-left, top-right, bottom-left, bottom-right."""
    return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


def _interleave(a, b, axis):
    """Alternate rows (axis 1) or columns (axis 2) of ``a`` and ``b``: a0 b0 a1 b1 ..."""
    y = ops.stack([a, b], axis=axis + 1)
    shape = ops.shape(a)
    if axis == 1:
        return ops.reshape(y, (-1, shape[1] * 2, shape[2], shape[3]))
    return ops.reshape(y, (-1, shape[1], shape[2] * 2, shape[3]))


@keras_serializable
class PoolSwitches(layers.Layer):
    """Position (0..3, row-major) of the maximum of each 2x2/2 max-pool window, as a float code.

    The output has the pooled shape ``(B, H/2, W/2, C)``; ties go to the first position. No gradient
    flows through it (the switches are a routing decision).
    """

    def call(self, x):
        a, b, c, d = _windows(x)
        m = ops.maximum(ops.maximum(a, b), ops.maximum(c, d))
        # scalar codes, broadcast by ``where``: full-size code tensors (``zeros_like(m) + k``)
        # were folded into constants by the exporters (SegNet's ONNX file: 256 MB of them, and
        # 20 GB to convert at 512x1024)
        code = ops.where(
            ops.equal(a, m),
            0.0,
            ops.where(ops.equal(b, m), 1.0, ops.where(ops.equal(c, m), 2.0, 3.0)),
        )
        return ops.stop_gradient(ops.cast(code, m.dtype))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else h // 2, None if w is None else w // 2, c)


@keras_serializable
class MaxUnpool2D(layers.Layer):
    """Inverse of a 2x2/2 max-pool: ``[values, switches] -> (B, 2h, 2w, C)``.

    Each value goes to the window position its ``PoolSwitches`` code names; the other three
    positions are zero (``nn.MaxUnpool2d(2, 2)`` with the pool's indices).
    """

    def call(self, inputs):
        values, switches = inputs
        switches = ops.cast(switches, values.dtype)
        parts = [values * ops.cast(ops.equal(switches, float(k)), values.dtype) for k in range(4)]
        top = _interleave(parts[0], parts[1], axis=2)
        bottom = _interleave(parts[2], parts[3], axis=2)
        return _interleave(top, bottom, axis=1)

    def compute_output_shape(self, input_shapes):
        b, h, w, c = input_shapes[0]
        return (b, None if h is None else h * 2, None if w is None else w * 2, c)


def max_pool_with_switches(x, *, name):
    """2x2/2 max-pool of ``x`` and its switches: ``(pooled, switches)`` for ``MaxUnpool2D``
    (layers ``{name}_pool`` and ``{name}_switches``)."""
    pooled = layers.MaxPooling2D(2, 2, name=f"{name}_pool")(x)
    return pooled, PoolSwitches(name=f"{name}_switches")(x)
