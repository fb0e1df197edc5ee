import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.layers import BilinearUpsample, ChannelShuffle, StrideGuard, upsample_bilinear
from tfseg.layers.init import BilinearKernel


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 8])
def test_bilinear_upsample_matches_tf_half_pixel(factor):
    x = np.random.default_rng(factor).normal(size=(2, 5, 7, 3)).astype("float32")
    got = np.asarray(upsample_bilinear(x, factor))
    want = tf.image.resize(x, (5 * factor, 7 * factor), method="bilinear").numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_bilinear_upsample_traces_with_dynamic_shapes():
    layer = BilinearUpsample(4)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def f(x):
        return layer(x)

    for h, w in ((3, 5), (8, 2)):
        assert f(tf.zeros((1, h, w, 3))).shape == (1, 4 * h, 4 * w, 3)


def test_channel_shuffle_equals_reshape_transpose():
    x = np.arange(2 * 3 * 4 * 12, dtype="float32").reshape(2, 3, 4, 12)
    got = np.asarray(ChannelShuffle(3)(x))
    want = x.reshape(2, 3, 4, 3, 4).transpose(0, 1, 2, 4, 3).reshape(2, 3, 4, 12)
    np.testing.assert_array_equal(got, want)


def test_stride_guard_rejects_indivisible_static_size():
    with pytest.raises(ValueError, match="not a multiple of the model's stride 32"):
        StrideGuard(32)(keras.Input((100, 64, 3)))
    assert StrideGuard(32)(keras.Input((None, None, 3))).shape[1] is None


def test_bilinear_kernel_upsamples_like_bilinear_in_the_interior():
    init = BilinearKernel()
    k = np.asarray(init((4, 4, 2, 2)))
    layer = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same", use_bias=False)
    x = np.random.default_rng(0).normal(size=(1, 6, 6, 2)).astype("float32")
    layer.build(x.shape)
    layer.set_weights([k])
    got = np.asarray(layer(x))
    want = tf.image.resize(x, (12, 12)).numpy()
    np.testing.assert_allclose(got[:, 2:-2, 2:-2], want[:, 2:-2, 2:-2], atol=1e-5)
