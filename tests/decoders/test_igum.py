"""iGUM / GUM heads and decoders: shapes at odd sizes, zero offsets = bilinear, offset units,
errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfseg
from tfseg.decoders.igum import igum_head
from tfseg.layers.resize import upsample_bilinear
from tfseg.layers.sampler import GuidedUpsample, regular_grid, sample


def _head_model(guidance, h=5, w=7, factor=3, **kw):
    feats = keras.Input((h, w, 6))
    inputs = [feats]
    if guidance == "gum":
        guide = keras.Input((h * factor, w * factor, 4))  # guide_factor=1: guide at output size
        inputs.append(guide)
        kw.update(guide=guide, guide_factor=1)
    out = igum_head(feats, 4, factor=factor, name="head", guidance=guidance, **kw)
    return keras.Model(inputs if len(inputs) > 1 else feats, out)


@pytest.mark.parametrize("guidance", ["igum", "gum", "bilinear"])
def test_head_shapes_at_odd_sizes(guidance):
    model = _head_model(guidance)
    assert model.output.shape == (None, 15, 21, 4)
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((2,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    assert model(x if len(x) > 1 else x[0]).shape == (2, 15, 21, 4)


def test_zero_offsets_are_bilinear_and_offsets_are_source_pixels():
    model = _head_model("igum", offset_scale=2.0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 5, 7, 6)).astype("float32")
    logits_low = model.get_layer("head_logits")(x)
    # Fresh head: zero-initialised offsets, so the output is plain half-pixel bilinear upsampling.
    np.testing.assert_allclose(
        model(x).numpy(), upsample_bilinear(logits_low, 3).numpy(), atol=1e-5
    )
    # Constant offsets tanh(b) = (0.25, -0.5) units * offset_scale 2 = (0.5, -1.0) source pixels.
    conv = model.get_layer("head_offsets_conv")
    conv.bias.assign(np.arctanh([0.25, -0.5]).astype("float32"))
    expected = sample(logits_low, regular_grid(1, 5, 7, 15, 21) + np.array([0.5, -1.0], "float32"))
    np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=1e-5)


def test_offsets_receive_gradients():
    model = _head_model("igum")
    x = np.random.default_rng(2).standard_normal((1, 5, 7, 6)).astype("float32")
    target = np.random.default_rng(3).standard_normal((1, 15, 21, 4)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x) - target) ** 2)
    grads = tape.gradient(loss, model.get_layer("head_offsets_conv").trainable_weights)
    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize("decoder,reload", [("igum", True), ("gum", False)])
def test_decoders_build_and_reload(decoder, reload, tmp_path):
    keras.utils.set_random_seed(0)
    model = tfseg.build_model(decoder, 5, encoder="mobilenet", encoder_kwargs={"alpha": 0.25})
    assert model.name == f"{decoder}_mobilenet"
    for layer in model.layers:  # non-zero offsets, so reloading really exercises the sampler
        if layer.name.endswith("_offsets_conv"):
            layer.kernel.assign(np.random.default_rng(4).normal(0, 0.5, layer.kernel.shape))
    x = np.random.default_rng(5).standard_normal((1, 64, 96, 3)).astype("float32")
    y = model(x, training=False).numpy()
    assert y.shape == (1, 64, 96, 5)
    if reload:
        path = str(tmp_path / "m.keras")
        model.save(path)
        np.testing.assert_allclose(keras.models.load_model(path)(x, training=False), y, atol=1e-5)


def test_bad_arguments_raise():
    feats = keras.Input((4, 4, 3))
    with pytest.raises(ValueError, match="guidance"):
        igum_head(feats, 3, factor=2, name="h", guidance="spline")
    with pytest.raises(ValueError, match="guide"):
        igum_head(feats, 3, factor=2, name="h", guidance="gum")
    with pytest.raises(ValueError, match="guide_factor"):
        igum_head(feats, 3, factor=8, name="h", guidance="gum", guide=feats, guide_factor=3)
    with pytest.raises(ValueError, match="mode"):
        GuidedUpsample(mode="area")
