"""Instance Segmentation Module of the SSN paper (sec. 4): instance centres by iterative sampling.

A *Guidance Module* predicts a Guidance Offsets Table ``o`` (2 channels, tanh into [-1, 1], one unit
= ``offset_scale`` pixels of the module's resolution). A fixed regular grid ``G`` (each pixel's own
coordinates) is sampled ``t`` times with the same table::

    V_0 = G,    V_k = sample(V_{k-1}, G + o)        (bilinear, k = 1..t)

so each pixel follows the vector field for ``t`` steps and ends up holding the coordinates of the
point it reached: the centre of its instance once the table points there. The loss is put on
``V_t``; the gradient flows back through every sampling step into ``o`` but not into ``G`` (a
constant, ``stop_gradient``). The module runs at the feature resolution (stride ``s``); its output
is converted to input-pixel coordinates and upsampled to the input resolution by a guided sampler
(:class:`InstanceUpsample`): bilinear while training (differentiable w.r.t. its offsets), nearest at
test time (it must copy centre values, not blend two instances' centres).

Everything uses ``keras.ops`` and ``tfseg.layers.sampler`` (gathers): backend-neutral, exportable.
"""

import keras
from keras import layers, ops

from tfseg.layers.blocks import conv_bn_act, keras_serializable
from tfseg.layers.resize import BilinearUpsample
from tfseg.layers.sampler import pixel_grid, regular_grid, sample

INSTANCE_LOSSES = ("l2", "l1", "smooth_l1")


def iterative_sampling(grid, offsets, iterations, offset_scale=1.0):
    """``V_t`` of the module: ``grid`` (B, h, w, 2) sampled ``iterations`` times at
    ``grid + offsets``.

    ``grid`` holds ``(y, x)`` pixel positions (pixel centres at integers, the sampler's convention);
    ``offsets`` (B, h, w, 2) in units of ``offset_scale`` pixels. No gradient reaches ``grid``. With
    zero offsets the output equals ``grid`` for any number of iterations.
    """
    iterations = int(iterations)
    if iterations < 1:
        raise ValueError(f"instance iterations must be >= 1, got {iterations}")
    grid = ops.stop_gradient(grid)
    coords = grid + ops.cast(offsets, grid.dtype) * float(offset_scale)
    values = grid
    for _ in range(iterations):
        values = sample(values, coords, "bilinear")
    return values


@keras_serializable
class InstanceSampling(keras.layers.Layer):
    """The iterative sampler as a layer: offsets in [-1, 1] (B, h, w, 2) -> centres (B, h, w, 2).

    The output is in *input-image* pixel coordinates: the module runs at ``stride`` and
    low-resolution position ``i`` covers input pixels ``s*i .. s*i + s - 1``, whose centre is
    ``s * (i + 0.5) - 0.5``. (Bilinear sampling preserves affine maps, so converting after the
    iterations is exact.)
    """

    def __init__(self, iterations=30, offset_scale=1.0, stride=8, **kwargs):
        super().__init__(**kwargs)
        self.iterations = int(iterations)
        if self.iterations < 1:
            raise ValueError(f"{self.name}: iterations must be >= 1, got {iterations}")
        self.offset_scale = float(offset_scale)
        self.stride = int(stride)

    def call(self, offsets):
        shape = ops.shape(offsets)
        grid = pixel_grid(shape[0], shape[1], shape[2], dtype=offsets.dtype)
        values = iterative_sampling(grid, offsets, self.iterations, self.offset_scale)
        return (values + 0.5) * float(self.stride) - 0.5

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "iterations": self.iterations,
            "offset_scale": self.offset_scale,
            "stride": self.stride,
        }


@keras_serializable
class InstanceUpsample(keras.layers.Layer):
    """GUM for instance centres: ``InstanceUpsample()([centres_lr, offsets_hr])``.

    Samples ``centres_lr`` (B, h, w, C) on the regular half-pixel grid of the output size (that of
    ``offsets_hr``, (B, H, W, 2)) shifted by ``offset_scale * offsets_hr`` (low-resolution pixels).
    Bilinear while training (``train_mode``), nearest at inference (``test_mode``): nearest copies
    one centre per pixel, so instance ids stay unique values (paper, "two practical tips").
    """

    def __init__(self, offset_scale=1.0, train_mode="bilinear", test_mode="nearest", **kwargs):
        super().__init__(**kwargs)
        self.offset_scale = float(offset_scale)
        self.train_mode = train_mode
        self.test_mode = test_mode
        for mode in (train_mode, test_mode):
            if mode not in ("bilinear", "nearest"):
                raise ValueError(
                    f"{self.name}: sampler mode must be bilinear or nearest, not {mode!r}"
                )

    def call(self, inputs, training=None):
        source, offsets = inputs
        src, out = ops.shape(source), ops.shape(offsets)
        grid = regular_grid(out[0], src[1], src[2], out[1], out[2], dtype=source.dtype)
        coords = grid + ops.cast(offsets, source.dtype) * self.offset_scale
        return sample(source, coords, self.train_mode if training else self.test_mode)

    def compute_output_shape(self, input_shape):
        source_shape, offsets_shape = input_shape
        return (offsets_shape[0], offsets_shape[1], offsets_shape[2], source_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "offset_scale": self.offset_scale,
            "train_mode": self.train_mode,
            "test_mode": self.test_mode,
        }


def _offsets(x, name):
    x = layers.Conv2D(
        2, 1, kernel_initializer="zeros", bias_initializer="zeros", name=f"{name}_conv"
    )(x)
    return layers.Activation("tanh", name=f"{name}_tanh")(x)


def instance_head(
    features,
    *,
    stride,
    iterations=30,
    offset_scale=1.0,
    filters=64,
    name="instance",
):
    """Instance centres (B, s*h, s*w, 2), input-pixel ``(y, x)``, from ``features`` at stride ``s``
    (``build_model(..., heads=("instance",))`` names the float32 output ``instance``).

    Guidance Module: two 3x3 conv-BN-ReLU (``filters``) and two zero-initialised 1x1 branches with
    tanh: the Guidance Offsets Table of the iterative sampler and the (iGUM-style, low-resolution,
    bilinearly upsampled) offsets of the final guided upsampling. An untrained head outputs each
    pixel's own position (nearest-upsampled at inference).
    """
    stride = int(stride)
    if stride < 1:
        raise ValueError(f"{name}: stride must be a positive integer, got {stride}")
    x = conv_bn_act(features, filters, 3, name=f"{name}_guide1")
    x = conv_bn_act(x, filters, 3, name=f"{name}_guide2")
    table = _offsets(x, f"{name}_table")
    centres = InstanceSampling(iterations, offset_scale, stride, name=f"{name}_sampling")(table)
    up = _offsets(x, f"{name}_up_offsets")
    if stride > 1:
        up = BilinearUpsample(stride, name=f"{name}_up_offsets_up")(up)
    return InstanceUpsample(1.0, name=f"{name}_upsample")([centres, up])


# --------------------------------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------------------------------


def instance_loss(y_true, y_pred, kind="l2"):
    """Mean centre error over labelled thing pixels.

    ``y_true`` (B, H, W, 3): centre (y, x) and the mask; ``y_pred`` (B, H, W, 2). ``kind``:
    ``"l2"`` (Euclidean distance, eq. 2 of the paper), ``"l1"`` (|dy| + |dx|) or ``"smooth_l1"``
    (Huber with beta = 1 pixel, summed over y and x). A batch without thing pixels gives 0.
    """
    if kind not in INSTANCE_LOSSES:
        raise ValueError(f"instance loss must be one of {INSTANCE_LOSSES}, got {kind!r}")
    y_true = ops.cast(y_true, "float32")
    diff = ops.cast(y_pred, "float32") - y_true[..., :2]
    mask = y_true[..., 2]
    if kind == "l2":
        per_pixel = ops.sqrt(ops.sum(ops.square(diff), axis=-1) + 1e-6)
    elif kind == "l1":
        per_pixel = ops.sum(ops.abs(diff), axis=-1)
    else:
        a = ops.abs(diff)
        per_pixel = ops.sum(ops.where(a < 1.0, 0.5 * a * a, a - 0.5), axis=-1)
    return ops.sum(per_pixel * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="tfseg")
class InstanceCentreLoss(keras.losses.Loss):
    """Keras loss of :func:`instance_loss` (``kind``: l2, l1, smooth_l1)."""

    def __init__(self, kind="l2", name="instance_loss", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        if kind not in INSTANCE_LOSSES:
            raise ValueError(f"instance loss must be one of {INSTANCE_LOSSES}, got {kind!r}")
        self.kind = kind

    def call(self, y_true, y_pred):
        return instance_loss(y_true, y_pred, self.kind)

    def get_config(self):
        return {"name": self.name, "kind": self.kind}
