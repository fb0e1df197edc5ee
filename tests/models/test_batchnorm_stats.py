"""``tfseg.models.batchnorm.recalibrate_batchnorm``: BN statistics measured on data for networks
that are only timed (random weights)."""

import keras
import numpy as np
import pytest

import tfseg
from tfseg.models.batchnorm import batchnorm_layers, recalibrate_batchnorm


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    return keras.Model(inp, x)


def test_statistics_are_the_average_of_the_batch_statistics():
    model = _model()
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((2, 8, 12, 3)) * s + s).astype("float32") for s in (1, 3)]
    assert recalibrate_batchnorm(model, batches) == 2
    bn1 = model.get_layer("bn1")
    assert bn1.momentum == 0.99  # restored
    conv = keras.Model(model.inputs, model.get_layer("c1").output)
    acts = [np.asarray(conv(b)) for b in batches]
    np.testing.assert_allclose(
        np.asarray(bn1.moving_mean), np.mean([a.mean(axis=(0, 1, 2)) for a in acts], axis=0),
        rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(bn1.moving_variance), np.mean([a.var(axis=(0, 1, 2)) for a in acts], axis=0),
        rtol=1e-3)
    # with one batch, inference mode normalises as training mode does on that batch
    recalibrate_batchnorm(model, batches[:1])
    np.testing.assert_allclose(np.asarray(model(batches[0])),
                               np.asarray(model(batches[0], training=True)), atol=2e-3)


def test_random_network_activations_keep_their_scale():
    """A random-weight Fast-SCNN's features shrink by orders of magnitude with BN's initial
    statistics; recalibrated, its fusion features are of order one."""
    size = (64, 128)
    model = tfseg.build_model("fastscnn", 5, input_shape=(*size, 3))
    probe = keras.Model(model.inputs, model.get_layer("fastscnn_fusion_low_conv").output)
    x = np.random.default_rng(0).standard_normal((1, *size, 3)).astype("float32")
    before = float(np.abs(np.asarray(probe(x))).mean())
    assert recalibrate_batchnorm(model, [x]) == len(batchnorm_layers(model)) > 20
    after = float(np.abs(np.asarray(probe(x))).mean())
    assert before < 1e-4 and after > 1e-2, (before, after)


def test_frozen_layers_keep_their_statistics_and_bad_batches_are_refused():
    model = _model()
    model.get_layer("bn1").trainable = False
    x = np.ones((1, 8, 12, 3), "float32")
    assert recalibrate_batchnorm(model, [x]) == 1
    np.testing.assert_array_equal(np.asarray(model.get_layer("bn1").moving_mean), 0.0)
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_batchnorm(model, [])
    before = [np.asarray(w).copy() for w in model.get_layer("bn2").weights]
    with pytest.raises(ValueError, match=r"batch 1 has shape \(1, 9, 12, 3\)"):
        recalibrate_batchnorm(model, [x, np.ones((1, 9, 12, 3), "float32")])
    for w, b in zip(model.get_layer("bn2").weights, before):
        np.testing.assert_array_equal(np.asarray(w), b)
