"""--qat: the fake-quant copy of a model (int8 per-channel kernels, 8-bit activations), its
training step, checkpoint round trip, the plain model.keras it leaves, and the flag checks."""

import json

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from tiny_run import tiny_config

import tfseg
from tfseg import train as train_prog
from tfseg.config import ModelConfig
from tfseg.models.saving import load_model
from tfseg.training.qat import (
    FakeQuant,
    QuantizedKernel,
    is_quantized,
    quantize_kernel,
    quantize_model,
    strip_quantization,
)

BUILDS = {
    "skipnet_mobilenet": lambda classes=5: tfseg.build_model(
        "skipnet", classes, encoder="mobilenet", encoder_kwargs={"alpha": 0.25}
    ),
    "fastscnn": lambda: tfseg.build_model("fastscnn", 5),
}


def _images(seed=0, shape=(2, 64, 64, 3)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_kernels_round_to_int8_per_output_channel():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 4, 6)).astype("float32")
    q = np.asarray(quantize_kernel(w, -1))
    scale = np.abs(w).max(axis=(0, 1, 2)) / 127.0
    levels = q / scale  # integers in [-127, 127]
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert np.abs(np.round(levels)).max() == 127
    assert np.all(np.abs(q - w) <= scale / 2 + 1e-6)
    # the BN-folded kernel w * s rounds to the rounded kernel times s (what the docstring relies on)
    s = rng.uniform(-3, 3, size=6).astype("float32")
    np.testing.assert_allclose(np.asarray(quantize_kernel(w * s, -1)), q * s, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_fake_quant_model_matches_float_within_8_bit_error(name):
    model = BUILDS[name]()
    qat, info = quantize_model(model)
    assert info["quantized_kernels"] > 0 and info["activation_quantizers"] > 0
    assert info["unquantized_kernels"] == []
    x = _images()
    qat(x, training=True)  # sets the activation ranges from this batch
    ref = np.asarray(model(x, training=False))
    out = np.asarray(qat(x, training=False))
    err = np.abs(out - ref).max()
    spread = ref.max() - ref.min()
    assert 0 < err < 0.1 * spread, (err, spread)  # rounded, but only by a few 8-bit steps
    assert (out.argmax(-1) == ref.argmax(-1)).mean() > 0.9
    # a convolution followed by its BN gets no quantiser of its own; the BN+ReLU output has one
    names = {layer.name for layer in qat.layers}
    if name == "skipnet_mobilenet":
        assert "mobilenet_conv1_relu_fq" in names
        assert "mobilenet_conv1_fq" not in names and "mobilenet_conv1_bn_fq" not in names
    plain = strip_quantization(qat)
    assert [layer.name for layer in plain.layers] == [layer.name for layer in model.layers]
    assert not is_quantized(plain)
    np.testing.assert_array_equal(np.asarray(plain(x, training=False)), ref)


def test_training_step_moves_weights_not_batchnorm_and_checkpoint_round_trips(tmp_path):
    model = BUILDS["skipnet_mobilenet"]()
    qat, _ = quantize_model(model)
    kernel = model.get_layer("mobilenet_conv1").kernel
    bn = model.get_layer("mobilenet_conv1_bn")
    before = np.array(kernel), np.array(bn.moving_mean), np.array(bn.gamma)
    x = _images(1)
    labels = np.random.default_rng(2).integers(0, 5, size=x.shape[:3])
    with tf.GradientTape() as tape:  # one eager SGD step (compiling fit's step costs ~10 s)
        logits = qat(x, training=True)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        )
    grads = tape.gradient(loss, qat.trainable_variables)
    assert all(g is not None for g in grads)
    for v, g in zip(qat.trainable_variables, grads):
        v.assign_sub(1.0 * g)
    assert np.abs(np.array(kernel) - before[0]).max() > 0  # gradient reached the float kernel
    np.testing.assert_array_equal(np.array(bn.moving_mean), before[1])  # BN frozen
    np.testing.assert_array_equal(np.array(bn.gamma), before[2])
    fq = qat.get_layer("mobilenet_conv1_relu_fq")
    assert float(fq.range_max) > 0 and float(fq.range_min) == 0.0  # after a ReLU
    path = tmp_path / "qat.keras"
    qat.save(path)  # what checkpoints/last.keras of a --qat run holds
    loaded = load_model(str(path))
    assert any(isinstance(layer, QuantizedKernel) for layer in loaded.layers)
    assert float(loaded.get_layer("mobilenet_conv1_relu_fq").range_max) == float(fq.range_max)
    np.testing.assert_allclose(
        np.asarray(loaded(x, training=False)), np.asarray(qat(x, training=False)), atol=1e-5
    )
    with pytest.raises(ValueError, match="already has fake-quant layers"):
        quantize_model(qat)


SYNTH = {"num_train": 8, "num_val": 1, "height": 64, "width": 64, "seed": 3}


@pytest.mark.slow  # a whole tiny run (fit, validation, model.keras): 102 s, loaded 2 cores
def test_qat_run_writes_a_plain_model_and_records_qat(tmp_path):
    from tfseg.training import train

    init = BUILDS["skipnet_mobilenet"](19)  # the synthetic scenes' classes
    init_path = tmp_path / "trained.keras"
    init.save(init_path)
    model = ModelConfig(
        name="skipnet", encoder="mobilenet", encoder_kwargs={"alpha": 0.25},
        init_model=str(init_path),
    )
    config = tiny_config(
        tmp_path, "qat", 1, SYNTH, model=model, qat=True, learning_rate=1e-4, resume=False
    )
    metrics = train(config)
    assert metrics["qat"]["quantized_kernels"] > 0
    assert "best_val_miou_fake_quant" in metrics["qat"]
    saved = load_model(str(tmp_path / "qat" / "model.keras"))
    assert not any(isinstance(layer, (FakeQuant, QuantizedKernel)) for layer in saved.layers)
    assert [layer.name for layer in saved.layers] == [layer.name for layer in init.layers]
    assert all(layer.trainable for layer in saved.layers)
    written = json.loads((tmp_path / "qat" / "config.json").read_text())
    assert written["train"]["qat"] is True


def _parse(argv):
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train", "--flagfile=configs/quickstart.cfg", *argv])
    return fv


def test_qat_without_a_trained_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--qat fine-tunes a trained model.*--init_model"):
        train_prog.config_from_flags(_parse(["--qat"]))
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        train_prog.config_from_flags(_parse(["--qat", f"--init_model={tmp_path}/missing.keras"]))
    path = tmp_path / "m.keras"
    path.write_bytes(b"")
    config = train_prog.config_from_flags(_parse(["--qat", f"--init_model={path}"]))
    assert config.train.qat and config.model.init_model == str(path)
