"""Adaptive pooling and resizing to another tensor's size (``tfseg.layers.pooling``): against
direct numpy forms of PyTorch's adaptive bins and of ``tf.image.resize``'s half-pixel bilinear, with
static and with dynamic spatial sizes, and exported (LiteRT and ONNX, TensorRT 8.2 op list)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_contract import check_export_parity

from tfseg.layers.pooling import (
    AdaptiveAvgPool2D,
    ResizeLike,
    adaptive_pool_matrix,
    bilinear_matrix,
    pyramid_pooling,
)

SIZES = [(16, 6), (16, 4), (7, 3), (5, 6), (12, 1), (32, 2)]


def _adaptive_pool_loops(x, out_h, out_w):
    """PyTorch's adaptive average pooling of NHWC ``x``, cell by cell."""
    n, h, w, c = x.shape
    y = np.zeros((n, out_h, out_w, c), x.dtype)
    for i in range(out_h):
        h0, h1 = int(np.floor(i * h / out_h)), int(np.ceil((i + 1) * h / out_h))
        for j in range(out_w):
            w0, w1 = int(np.floor(j * w / out_w)), int(np.ceil((j + 1) * w / out_w))
            y[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return y


def _dynamic(layer, *shapes):
    """``layer`` traced with unknown H and W."""
    specs = [tf.TensorSpec((None, None, None, s[-1])) for s in shapes]
    return tf.function(lambda *a: layer(list(a) if len(a) > 1 else a[0]), input_signature=specs)


@pytest.mark.parametrize("size,out", SIZES)
def test_adaptive_pool_matches_the_bins_static_and_dynamic(size, out):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size + 3, 4)).astype("float32")
    want = _adaptive_pool_loops(x, out, out)
    layer = AdaptiveAvgPool2D(out)
    np.testing.assert_allclose(np.asarray(layer(x)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_dynamic(layer, x.shape)(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert adaptive_pool_matrix(size, out).sum(axis=1) == pytest.approx(np.ones(out))


@pytest.mark.parametrize("small,big", [(6, 16), (3, 16), (1, 16), (2, 32), (16, 16), (16, 6)])
def test_resize_like_matches_tf_image_resize(small, big):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, small, small + 1, 3)).astype("float32")
    like = np.zeros((2, big, big + 5, 1), "float32")
    want = tf.image.resize(x, (big, big + 5), method="bilinear").numpy()
    layer = ResizeLike()
    np.testing.assert_allclose(np.asarray(layer([x, like])), want, rtol=1e-5, atol=1e-5)
    got = _dynamic(layer, x.shape, like.shape)(x, like).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert bilinear_matrix(small, big).sum(axis=1) == pytest.approx(np.ones(big))


def test_pyramid_pooling_exports_exactly_at_a_size_the_bins_do_not_divide(tmp_path):
    """At 80x112 the stride-16 map is 5x7: the 2, 4 and 6 bins overlap (no AveragePool form)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(16, 3, strides=16, padding="same", name="stem")(inputs)
    x = pyramid_pooling(x, 8, name="ppm")
    x = keras.layers.Conv2D(3, 1, name="cls")(x)
    logits = keras.layers.UpSampling2D(16, interpolation="bilinear", name="up")(x)
    model = keras.Model(inputs, logits)
    assert [w.shape for w in model.get_layer("ppm_conv6").weights] == [(1, 1, 16, 4)]
    check_export_parity(model, (80, 112))
