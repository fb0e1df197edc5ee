"""Gather-based sampler against a plain numpy reference; gradients by finite differences."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.layers.resize import upsample_bilinear
from tfseg.layers.sampler import GuidedSampler, pixel_grid, regular_grid, sample


def np_sample(source, coords, mode="bilinear"):
    """Loop reference: clamp to the edge, pixel centres at integers."""
    b, hs, ws, c = source.shape
    _, h, w, _ = coords.shape
    out = np.zeros((b, h, w, c), source.dtype)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                y = min(max(coords[n, i, j, 0], 0.0), hs - 1)
                x = min(max(coords[n, i, j, 1], 0.0), ws - 1)
                if mode == "nearest":
                    out[n, i, j] = source[n, int(np.floor(y + 0.5)), int(np.floor(x + 0.5))]
                    continue
                y0, x0 = int(np.floor(y)), int(np.floor(x))
                y1, x1 = min(y0 + 1, hs - 1), min(x0 + 1, ws - 1)
                dy, dx = y - y0, x - x0
                out[n, i, j] = (
                    source[n, y0, x0] * (1 - dy) * (1 - dx)
                    + source[n, y0, x1] * (1 - dy) * dx
                    + source[n, y1, x0] * dy * (1 - dx)
                    + source[n, y1, x1] * dy * dx
                )
    return out


def _data(rng, b=2, hs=5, ws=7, c=3, h=4, w=9, margin=1.5):
    source = rng.standard_normal((b, hs, ws, c))
    ys = rng.uniform(-margin, hs - 1 + margin, (b, h, w, 1))
    xs = rng.uniform(-margin, ws - 1 + margin, (b, h, w, 1))
    return source, np.concatenate([ys, xs], -1)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_sample_matches_numpy(mode):
    rng = np.random.default_rng(0)
    source, coords = _data(rng)  # batch 2, non-square, points beyond every border
    coords[0, 0, 0] = (-3.0, -3.0)  # far outside: corner
    coords[0, 0, 1] = (4.0, 6.0)  # exactly on the last pixel
    coords[1, 1, 2] = (2.0, 3.0)  # exactly on a pixel centre
    source = source.astype("float32")
    coords = coords.astype("float32")
    got = keras.ops.convert_to_numpy(sample(source, coords, mode))
    np.testing.assert_allclose(got, np_sample(source, coords, mode), atol=1e-5)
    assert got.shape == (2, 4, 9, 3)
    np.testing.assert_allclose(got[0, 0, 0], source[0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(got[0, 0, 1], source[0, 4, 6], atol=1e-6)
    np.testing.assert_allclose(got[1, 1, 2], source[1, 2, 3], atol=1e-6)


def test_single_row_source():
    source = np.arange(4, dtype="float32").reshape(1, 1, 4, 1)
    coords = np.array([[[[0.7, 1.25], [-2.0, 9.0]]]], "float32")
    got = keras.ops.convert_to_numpy(sample(source, coords))
    np.testing.assert_allclose(got.ravel(), [1.25, 3.0], atol=1e-6)


def test_regular_grid_is_half_pixel_resize():
    rng = np.random.default_rng(1)
    source = rng.standard_normal((2, 3, 5, 4)).astype("float32")
    grid = regular_grid(2, 3, 5, 12, 20)
    assert tuple(grid.shape) == (2, 12, 20, 2)
    got = keras.ops.convert_to_numpy(sample(source, grid))
    ref = tf.image.resize(source, (12, 20), method="bilinear").numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(
        got, keras.ops.convert_to_numpy(upsample_bilinear(source, 4)), atol=1e-5
    )
    ident = keras.ops.convert_to_numpy(sample(source, pixel_grid(2, 3, 5)))
    np.testing.assert_allclose(ident, source, atol=1e-6)


def _fd_check(fn, x, eps=1e-6, atol=1e-6):
    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = fn(x)
    analytic = tape.gradient(y, x).numpy()
    numeric = np.zeros_like(x.numpy())
    base = x.numpy()
    for idx in np.ndindex(base.shape):
        plus, minus = base.copy(), base.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (fn(tf.constant(plus)).numpy() - fn(tf.constant(minus)).numpy()) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, atol=atol)
    return analytic


def test_gradients_finite_difference_float64():
    rng = np.random.default_rng(2)
    source, coords = _data(rng, b=2, hs=3, ws=4, c=2, h=2, w=3, margin=0.0)
    # Stay away from integer positions (kinks of the piecewise-linear map) and from the border.
    coords = np.clip(coords, 0.2, None)
    coords = np.where(np.abs(coords - np.round(coords)) < 0.1, coords + 0.25, coords)
    coords[..., 0] = np.minimum(coords[..., 0], 1.8)
    coords[..., 1] = np.minimum(coords[..., 1], 2.8)
    weights = tf.constant(rng.standard_normal((2, 2, 3, 2)))
    src_t = tf.constant(source)
    crd_t = tf.constant(coords)
    g_src = _fd_check(lambda s: tf.reduce_sum(sample(s, crd_t) * weights), source)
    g_crd = _fd_check(lambda c: tf.reduce_sum(sample(src_t, c) * weights), coords)
    assert np.abs(g_src).sum() > 0 and np.abs(g_crd).sum() > 0


def test_layer_dynamic_shapes_and_config():
    src_in = keras.Input((None, None, 3))
    crd_in = keras.Input((None, None, 2))
    out = GuidedSampler(mode="nearest", name="s")([src_in, crd_in])
    model = keras.Model([src_in, crd_in], out)
    rng = np.random.default_rng(3)
    source, coords = _data(rng, b=1, hs=6, ws=4, h=3, w=5)
    got = model.predict([source.astype("float32"), coords.astype("float32")], verbose=0)
    np.testing.assert_allclose(got, np_sample(source, coords, "nearest"), atol=1e-5)
    # Traced with unknown sizes (what export and fit do).
    fn = tf.function(
        lambda s, c: sample(s, c),
        input_signature=[
            tf.TensorSpec((None, None, None, 3), tf.float32),
            tf.TensorSpec((None, None, None, 2), tf.float32),
        ],
    )
    np.testing.assert_allclose(
        fn(source.astype("float32"), coords.astype("float32")).numpy(),
        np_sample(source, coords),
        atol=1e-5,
    )
    clone = GuidedSampler.from_config(model.get_layer("s").get_config())
    assert clone.mode == "nearest"


def test_bad_mode_and_shapes_raise():
    with pytest.raises(ValueError, match="bicubic"):
        GuidedSampler(mode="bicubic")
    with pytest.raises(ValueError, match="coords"):
        sample(np.zeros((1, 4, 4, 1), "float32"), np.zeros((1, 4, 4), "float32"))
