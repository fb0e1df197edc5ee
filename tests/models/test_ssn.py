"""SSN: LNB module structure, early downsampling, the ``ssn`` network, save/load and export
parity."""

import os
import sys

import keras
import numpy as np
import pytest

import tfseg
from tfseg.flops import count_params
from tfseg.layers.nonbt import downsampler_block, lnb_module
from tfseg.models import model_stride
from tfseg.models.ssn import STAGE2, STAGE3

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "export"))
from export_helpers import randomize_batchnorm  # noqa: E402

SIZE = (64, 128)


@pytest.fixture(scope="module")
def ssn_model():
    """SSN, 5 classes, dynamic H/W, random BN statistics and non-zero guidance offsets."""
    keras.utils.set_random_seed(0)
    model = randomize_batchnorm(tfseg.build_model("ssn", 5))
    conv = model.get_layer("ssn_igum_offsets_conv")
    conv.kernel.assign(np.random.default_rng(1).normal(0, 0.3, conv.kernel.shape))
    return model


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(2).standard_normal((1,) + SIZE + (3,)).astype("float32")


def test_lnb_module_structure(ssn_model):
    layers = {layer.name: layer for layer in ssn_model.layers}
    modules = STAGE2 + STAGE3
    assert len(modules) == 13
    for i, (dilation, _rate) in enumerate(modules, start=1):
        p = f"ssn_lnb{i}"
        convs = [layers[f"{p}_{k}"] for k in ("conv1x1a", "conv3x1", "conv1x3", "conv1x1b")]
        assert [tuple(c.kernel_size) for c in convs] == [(1, 1), (3, 1), (1, 3), (1, 1)]
        assert [tuple(c.dilation_rate) for c in convs] == [
            (1, 1), (dilation, 1), (1, dilation), (1, 1)
        ]  # fmt: skip
        assert not any(c.use_bias for c in convs), p
        width = 64 if i <= 5 else 128
        assert all(c.filters == width for c in convs)
        for k in ("act1", "act2", "act3", "out"):
            assert isinstance(layers[f"{p}_{k}"], keras.layers.PReLU), f"{p}_{k}"
        assert isinstance(layers[f"{p}_add"], keras.layers.Add)
        assert layers[f"{p}_dropout"].rate == pytest.approx(0.03 if i <= 5 else 0.3)
    assert [d for d, _ in STAGE3] == [2, 4, 8, 16, 2, 4, 8, 16]
    # Every convolution of the encoder is bias-free; only the two iGUM 1x1 heads have biases.
    with_bias = [
        layer.name
        for layer in ssn_model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.use_bias
    ]
    assert sorted(with_bias) == ["ssn_igum_logits", "ssn_igum_offsets_conv"]


def test_lnb_is_residual_and_downsampler_concatenates():
    x_in = keras.Input((8, 10, 6))
    y = lnb_module(x_in, dilation=2, dropout=0.1, name="m")
    model = keras.Model(x_in, y)
    assert model.output.shape == (None, 8, 10, 6)
    # Zero branch (last 1x1 kernel zero) and PReLU slopes zero: output = relu(x).
    model.get_layer("m_conv1x1b").kernel.assign(np.zeros((1, 1, 6, 6)))
    x = np.random.default_rng(0).standard_normal((2, 8, 10, 6)).astype("float32")
    np.testing.assert_allclose(model(x, training=False), np.maximum(x, 0), atol=1e-5)

    d_in = keras.Input((8, 10, 3))
    d = keras.Model(d_in, downsampler_block(d_in, 16, name="d"))
    assert d.output.shape == (None, 4, 5, 16)
    assert d.get_layer("d_conv").filters == 13 and d.get_layer("d_conv").strides == (2, 2)
    assert isinstance(d.get_layer("d_pool"), keras.layers.MaxPooling2D)
    with pytest.raises(ValueError, match="filters"):
        downsampler_block(d_in, 3, name="bad")
    with pytest.raises(ValueError, match="dropout"):
        lnb_module(x_in, dropout=1.5, name="bad")


def test_ssn_params_and_shape(ssn_model, image):
    # Parameters from the layout: per LNB 8*w^2 conv weights + 3 BN (2 trainable each) + 4 PReLU.
    lnb = lambda w: 8 * w * w + 3 * 2 * w + 4 * w  # noqa: E731
    down = lambda cin, cout: 9 * cin * (cout - cin) + 2 * cout + cout  # conv, BN, PReLU  # noqa: E731
    classes = 5
    expected = (
        down(3, 16) + down(16, 64) + 5 * lnb(64) + down(64, 128) + 8 * lnb(128)
        + 128 * classes + classes + 128 * 2 + 2
    )  # fmt: skip
    assert count_params(ssn_model) == expected
    assert model_stride(ssn_model) == 8
    assert ssn_model(image, training=False).shape == (1,) + SIZE + (5,)
    with pytest.raises(ValueError, match="stride 8"):
        tfseg.build_model("ssn", 5, input_shape=(60, 128, 3))


@pytest.mark.slow
def test_ssn_export_tflite_and_onnx_tx2(ssn_model, image):
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import (
        OnnxRunner,
        check_onnx_model,
        convert_onnx,
        onnx_op_types,
    )
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite, tflite_op_types

    reference = ssn_model(image, training=False).numpy()
    folded, info = inference_model(ssn_model)
    # The three downsampler BNs follow a concatenation and stay unfolded; the others fold.
    assert sorted(info["unfolded"]) == ["ssn_down1_bn", "ssn_down2_bn", "ssn_down3_bn"]

    content = convert_tflite(folded, input_size=SIZE)
    ops = tflite_op_types(content)
    assert ops["GATHER"] == 1 and ops["PRELU"] == 55
    np.testing.assert_allclose(LiteRTRunner(content)(image), reference, atol=2e-4)

    proto = convert_onnx(folded, opset=13, input_shape=(1,) + SIZE)
    assert check_onnx_model(proto, "tx2", [layer.name for layer in folded.layers]) == []
    ops = onnx_op_types(proto)
    assert ops["Gather"] == 1 and "GridSample" not in ops and "GatherND" not in ops
    np.testing.assert_allclose(OnnxRunner(proto)(image), reference, atol=2e-4)
