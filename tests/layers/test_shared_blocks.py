"""The shared zoo blocks of ``tfseg.layers``: exact forms against direct ones, shapes, configs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.layers.blocks import act, conv_bn_prelu, deconv_bn_act, prelu
from tfseg.layers.downsample import conv_pool_downsample, strided_depthwise
from tfseg.layers.factorized import factorized_conv
from tfseg.layers.init import torch_depthwise_init, torch_init
from tfseg.layers.misc import ChannelMean, ChannelSplit
from tfseg.layers.resize import bilinear_downsample

RNG = np.random.default_rng(0)


def _x(shape):
    return RNG.normal(size=shape).astype("float32")


@pytest.mark.parametrize("alignment,dilation", [("tf", 1), ("tf", 2), ("tf", 4),
                                                ("torch", 1), ("torch", 2), ("torch", 8)])
def test_strided_depthwise_equals_dilated_conv_then_subsample(alignment, dilation):
    inputs = keras.Input((16, 24, 5))
    exact = keras.Model(
        inputs, strided_depthwise(inputs, dilation=dilation, alignment=alignment, name="s")
    )
    direct = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=dilation, use_bias=False)
    direct.build((None, 16, 24, 5))
    direct.set_weights(exact.get_layer("s").get_weights())
    x = _x((2, 16, 24, 5))
    phase = 1 if alignment == "tf" else 0
    want = np.asarray(direct(x))[:, phase::2, phase::2]
    got = np.asarray(exact(x))
    assert got.shape == (2, 8, 12, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_strided_depthwise_tf_dilation1_is_keras_stride2():
    inputs = keras.Input((16, 24, 5))
    exact = keras.Model(inputs, strided_depthwise(inputs, alignment="tf", name="s"))
    direct = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)
    direct.build((None, 16, 24, 5))
    direct.set_weights(exact.get_layer("s").get_weights())
    x = _x((1, 16, 24, 5))
    np.testing.assert_allclose(np.asarray(exact(x)), np.asarray(direct(x)), atol=1e-6)


def test_strided_depthwise_rejects_odd_dilation_and_unknown_alignment():
    inputs = keras.Input((16, 16, 4))
    with pytest.raises(ValueError, match="even"):
        strided_depthwise(inputs, dilation=3, name="s")
    with pytest.raises(ValueError, match="alignment"):
        strided_depthwise(inputs, alignment="caffe", name="s")


@pytest.mark.parametrize("depthwise", [False, True])
def test_factorized_conv_equals_the_full_kxk_of_the_outer_product(depthwise):
    # Without anything between them, Kx1 then 1xK (depthwise: per channel) is the KxK convolution
    # whose kernel is their product, away from the border (where the intermediate map's zero
    # padding cuts off taps the KxK form still sees).
    inputs = keras.Input((12, 12, 4))
    y = factorized_conv(inputs, None, 3, dilation=2, depthwise=depthwise, bn=False, name="f")
    model = keras.Model(inputs, y)
    k1 = model.get_layer("f_3x1").get_weights()[0]  # (3, 1, Cin, Cout) or (3, 1, C, 1)
    k2 = model.get_layer("f_1x3").get_weights()[0]
    if depthwise:
        full = np.einsum("icx,jcx->ijcx", k1[:, 0], k2[0])  # (3, 3, C, 1)
        direct = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, use_bias=False)
    else:
        full = np.einsum("iab,jbc->ijac", k1[:, 0], k2[0])  # (3, 3, Cin, Cout)
        direct = keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2, use_bias=False)
    direct.build((None, 12, 12, 4))
    direct.set_weights([full])
    x = _x((2, 12, 12, 4))
    # Interior only: at the border, zero padding between the two convolutions differs.
    np.testing.assert_allclose(
        np.asarray(model(x))[:, 2:-2, 2:-2], np.asarray(direct(x))[:, 2:-2, 2:-2],
        rtol=1e-4, atol=1e-4,
    )


def test_factorized_conv_layers_names_and_options():
    inputs = keras.Input((8, 8, 6))
    y = factorized_conv(
        inputs, 10, 5, first="1xk", bn_between=True, activation_between="prelu",
        activation="relu", use_bias=(True, False), kernel_initializer=torch_init,
        names={"conv2": "custom"}, name="f",
    )
    model = keras.Model(inputs, y)
    names = [layer.name for layer in model.layers[1:]]
    assert names == ["f_1x5", "f_1x5_bn", "f_1x5_prelu", "custom", "f_5x1_bn", "f_5x1_relu"]
    assert model.get_layer("f_1x5").kernel.shape == (1, 5, 6, 10)
    assert model.get_layer("f_1x5").use_bias and not model.get_layer("custom").use_bias
    assert model.get_layer("f_1x5_prelu").get_weights()[0].shape == (1, 1, 1)
    assert model.output.shape == (None, 8, 8, 10)
    with pytest.raises(ValueError, match="roles"):
        factorized_conv(inputs, names={"conv3": "x"}, name="g")
    with pytest.raises(ValueError, match="depthwise"):
        factorized_conv(inputs, 12, depthwise=True, name="g")


@pytest.mark.parametrize("normalize,pool_size", [("branch", 3), ("concat", 2)])
def test_conv_pool_downsample(normalize, pool_size):
    inputs = keras.Input((16, 16, 3))
    y = conv_pool_downsample(
        inputs, 16, activation="prelu", pool_size=pool_size, normalize=normalize, name="d"
    )
    model = keras.Model(inputs, y)
    assert model.output.shape == (None, 8, 8, 16)
    conv = "d_conv_conv" if normalize == "branch" else "d_conv"
    assert model.get_layer(conv).kernel.shape == (3, 3, 3, 13)
    x = _x((1, 16, 16, 3))
    pool = keras.layers.MaxPooling2D(pool_size, strides=2, padding="same")(x)
    got = np.asarray(model(x, training=False))
    if normalize == "branch":  # the pooled channels pass unchanged
        np.testing.assert_allclose(got[..., 13:], np.asarray(pool), atol=1e-6)
    with pytest.raises(ValueError, match="exceed"):
        conv_pool_downsample(inputs, 3, name="e")


def test_deconv_bn_act_and_prelu():
    inputs = keras.Input((4, 6, 8))
    model = keras.Model(inputs, deconv_bn_act(inputs, 5, activation="prelu", name="u"))
    assert model.output.shape == (None, 8, 12, 5)
    assert [layer.name for layer in model.layers[1:]] == ["u_deconv", "u_bn", "u_prelu"]
    p = model.get_layer("u_prelu")
    np.testing.assert_allclose(p.get_weights()[0], np.full((1, 1, 1), 0.25))
    x = keras.Input((4, 4, 2))
    assert act(x, None, name="none") is x
    m = keras.Model(x, conv_bn_prelu(prelu(x, name="p"), 3, 1, name="c"))
    assert [layer.name for layer in m.layers[1:]] == ["p", "c_conv", "c_bn", "c_prelu"]


def test_torch_initialisers_bounds():
    k = np.asarray(torch_init()((3, 3, 16, 8)))
    assert np.abs(k).max() <= 1 / np.sqrt(9 * 16) + 1e-7
    assert np.abs(k).max() > 0.8 / np.sqrt(9 * 16)
    d = np.asarray(torch_depthwise_init((3, 1))((3, 1, 32, 1)))
    assert np.abs(d).max() <= 1 / np.sqrt(3) + 1e-7 and np.abs(d).max() > 0.8 / np.sqrt(3)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_bilinear_downsample_equals_tf_image_resize(factor):
    x = _x((1, 24, 48, 3))
    inputs = keras.Input((24, 48, 3))
    model = keras.Model(inputs, bilinear_downsample(inputs, factor, name="b"))
    want = tf.image.resize(x, (24 // factor, 48 // factor), "bilinear", antialias=False)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(want), atol=1e-5)


def test_channel_split_and_mean_shapes_and_config_round_trip(tmp_path):
    inputs = keras.Input((4, 4, 6))
    a, b, c = ChannelSplit(3, name="split")(inputs)
    m = ChannelMean(name="mean")(inputs)
    model = keras.Model(inputs, [a, c, m])
    x = _x((2, 4, 4, 6))
    ya, yc, ym = (np.asarray(t) for t in model(x))
    np.testing.assert_array_equal(ya, x[..., :2])
    np.testing.assert_array_equal(yc, x[..., 4:])
    np.testing.assert_allclose(ym, x.mean(-1, keepdims=True), atol=1e-6)
    for layer in (model.get_layer("split"), model.get_layer("mean")):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: registered
    for want, got in zip(model(x), loaded(x)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want))
    with pytest.raises(ValueError, match="equal parts"):
        ChannelSplit(4)(inputs)


def test_exportable_group_normalization_equals_keras_and_round_trips():
    from tfseg.layers import ExportableGroupNormalization

    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 7, 64)).astype("float32")
    ours = ExportableGroupNormalization(groups=32, epsilon=1e-5)
    theirs = keras.layers.GroupNormalization(groups=32, epsilon=1e-5)
    ours.build(x.shape), theirs.build(x.shape)
    gamma = np.linspace(0.5, 1.5, 64).astype("float32")
    beta = np.linspace(-1.0, 1.0, 64).astype("float32")
    ours.set_weights([gamma, beta]), theirs.set_weights([gamma, beta])
    np.testing.assert_allclose(ours(x), theirs(x), atol=2e-6)
    again = keras.layers.deserialize(keras.layers.serialize(ours))
    assert type(again) is ExportableGroupNormalization and again.get_config() == ours.get_config()


def test_subsampled_pointwise_conv_equals_the_strided_conv_and_trains():
    """Same function as a strided 1x1 ``Conv2D`` (odd and even sizes, both paddings), and a
    training step through the shape whose direct form crashes TF's oneDNN backward (8 channels,
    128x128, stride 2)."""
    from tfseg.layers import SubsampledPointwiseConv2D

    rng = np.random.default_rng(0)
    for size, padding in ((9, "valid"), (10, "same"), (7, "same")):
        x = rng.normal(size=(2, size, size + 1, 8)).astype("float32")
        ours = SubsampledPointwiseConv2D(6, 1, strides=2, padding=padding)
        direct = keras.layers.Conv2D(6, 1, strides=2, padding=padding)
        ours.build(x.shape), direct.build(x.shape)
        direct.set_weights(ours.get_weights())
        np.testing.assert_allclose(ours(x), direct(x), atol=1e-6)
    with pytest.raises(ValueError, match="1x1"):
        SubsampledPointwiseConv2D(6, 3, strides=2)
    inputs = keras.Input((128, 128, 8))
    model = keras.Model(inputs, SubsampledPointwiseConv2D(48, 1, strides=2)(inputs))
    model.compile(optimizer="adam", loss="mse")
    x = rng.random((4, 128, 128, 8)).astype("float32")
    losses = [model.train_on_batch(x, np.zeros((4, 64, 64, 48), "float32")) for _ in range(3)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
