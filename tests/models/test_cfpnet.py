"""CFPNet's exact exportable image pyramid against the direct resize."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.models.cfpnet import bilinear_downsample, cfp_dilations


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_bilinear_downsample_equals_tf_image_resize(factor):
    x = np.random.default_rng(factor).normal(size=(2, 8 * factor, 4 * factor, 3)).astype("float32")
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, bilinear_downsample(inputs, factor, name="down"))
    expected = tf.image.resize(x, (8, 4), method="bilinear", antialias=False).numpy()
    np.testing.assert_allclose(np.asarray(model(x)), expected, atol=1e-6)


def test_cfp_dilations_follow_the_reference_ratios():
    # ceil(rk * r) for r in (1/rk, 1/4, 1/2, 1)
    assert [cfp_dilations(rk) for rk in (2, 4, 8, 16)] == [
        (1, 1, 1, 2), (1, 1, 2, 4), (1, 2, 4, 8), (1, 4, 8, 16)
    ]
