"""ERFNet, ENet and ESPNet with their own decoders and with the iGUM head (SSN Table 1
baselines)."""

import functools
import os

import keras
import numpy as np
import pytest

import tfseg
from tfseg.flops import count_params
from tfseg.models import model_stride
from tfseg.models.enet import MaxUnpool2D, PoolSwitches

NETWORKS = ("erfnet", "enet", "espnet")
DECODERS = ("original", "igum")


@functools.cache
def _model(name, decoder):
    keras.utils.set_random_seed(0)
    return tfseg.build_model(name, 19, decoder=decoder)


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("decoder", DECODERS)
def test_logits_at_input_size_for_any_multiple_of_8(name, decoder):
    model = _model(name, decoder)
    assert model_stride(model) == 8
    rng = np.random.default_rng(0)
    for h, w in ((64, 128), (40, 56)):
        x = rng.normal(size=(1, h, w, 3)).astype("float32")
        y = np.asarray(model(x, training=False))
        assert y.shape == (1, h, w, 19) and np.isfinite(y).all()


@pytest.mark.parametrize("name", NETWORKS)
def test_igum_replaces_the_decoder(name):
    original, igum = _model(name, "original"), _model(name, "igum")
    names = {layer.name for layer in igum.layers}
    assert f"{name}_igum_sampler" in names and f"{name}_igum_offsets_conv" in names
    assert count_params(igum) < count_params(original)


@pytest.mark.parametrize(
    "name,decoder", [("erfnet", "igum"), ("enet", "original"), ("espnet", "original")]
)
def test_train_step_changes_weights(name, decoder):
    # One eager SGD step (tracing a train step of these graphs costs minutes on 2 busy cores).
    model = _model(name, decoder)
    from tfseg.losses import make_loss

    model.compile(optimizer=keras.optimizers.SGD(1e-2), loss=make_loss("ce"), run_eagerly=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 32, 64, 3)).astype("float32")
    y = rng.integers(0, 19, size=(2, 32, 64)).astype("int32")
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    # Every convolution kernel, decoder / iGUM head included, gets a gradient. (Biases followed by
    # BN get none, by construction.)
    unchanged = [
        w.path
        for b, w in zip(before, model.trainable_weights)
        if w.path.endswith("kernel") and np.allclose(b, w.numpy())
    ]
    assert not unchanged


def test_max_unpool_puts_values_back_at_the_first_maximum():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(2, 4, 6, 3)).astype("float32")  # many ties
    switches = np.asarray(PoolSwitches()(x))
    pooled = x.reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4))
    out = np.asarray(MaxUnpool2D()([pooled * 10.0, switches]))
    expected = np.zeros_like(x)
    for b, i, j, c in np.ndindex(2, 2, 3, 3):
        window = x[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c].reshape(-1)
        k = int(np.argmax(window))  # numpy, like PyTorch's indices: first maximum
        assert switches[b, i, j, c] == k
        expected[b, 2 * i + k // 2, 2 * j + k % 2, c] = 10.0 * window[k]
    np.testing.assert_array_equal(out, expected)


def test_enet_tflite_export_parity():
    """ENet (max-unpooling) converts to TFLite built-ins with BN folded and matches Keras."""
    from tfseg.export_lib import inference_model
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite, tflite_op_types

    model = _model("enet", "original")
    rng = np.random.default_rng(3)
    for layer in model.layers:  # non-trivial BN statistics, so that folding is really tested
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, g.shape).astype("float32"),
                    rng.normal(0, 0.1, b.shape).astype("float32"),
                    rng.normal(0, 0.1, m.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, v.shape).astype("float32"),
                ]
            )
    folded, info = inference_model(model)
    # Only the initial block's BN (after a concatenation) stays a separate op.
    assert list(info["unfolded"]) == ["enet_initial_bn"], info["unfolded"]
    content = convert_tflite(folded, input_size=(64, 128))
    ops = tflite_op_types(content)
    assert "MAX_POOL_2D" in ops and "TRANSPOSE_CONV" in ops
    x = rng.normal(size=(1, 64, 128, 3)).astype("float32")
    reference = np.asarray(model(x, training=False))
    got = LiteRTRunner(content, threads=1)(x)
    assert got.shape == reference.shape
    assert np.max(np.abs(got - reference)) <= 1e-3 * max(1.0, np.max(np.abs(reference)))
    assert np.mean(np.argmax(got, -1) == np.argmax(reference, -1)) > 0.999


def test_bad_arguments_name_the_culprit():
    with pytest.raises(ValueError, match="unknown decoder 'gum2'.*original, igum"):
        tfseg.build_model("erfnet", 19, decoder="gum2")
    with pytest.raises(TypeError, match="offset_scale"):
        tfseg.build_model("enet", 19, offset_scale=2.0)
    with pytest.raises(ValueError, match="num_classes >= 5"):
        tfseg.build_model("espnet", 3)
    with pytest.raises(ValueError, match="multiple of the model's stride 8"):
        tfseg.build_model("enet", 19, input_shape=(60, 128, 3))


def test_table1_markdown_reports_the_igum_speedup():
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "table1.py")
    spec = importlib.util.spec_from_file_location("tfseg_experiments_table1", path)
    table1 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table1)
    rows = [
        {"network": "enet", "decoder": "original", "params": 366152, "gflops": 8.15,
         "keras": {"median_ms": 30.0}, "train": {"val_miou": 0.25}},
        {"network": "enet", "decoder": "igum", "params": 329979, "gflops": 6.4,
         "keras": {"median_ms": 20.0}, "train": {"val_miou": 0.3}},
    ]  # fmt: skip
    lines = table1.format_markdown(rows, ["keras"]).splitlines()
    assert lines[0].split(" | ")[-2:] == ["val mIoU (synthetic)", "paper mIoU / FPS |"]
    assert "| enet | igum | 329,979 | 6.40 | 20 | 1.50x | 30.0 | 55.7 / 137 |" == lines[3]
    with pytest.raises(ValueError, match="unknown decoder"):
        table1.check_choices(["gum"], table1.DECODERS, "decoder(s)")
