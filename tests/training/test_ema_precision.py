"""The weight EMA (``--ema_decay``, ``--ema_ramp``) and mixed-precision training (``--precision``).

Unit checks of ``WeightEMA`` against the formula, then tiny training runs: with an EMA,
validation, ``best.keras`` and ``model.keras`` hold the averaged weights and ``last.keras`` the
trained ones, and ``--resume`` restores the average; a mixed run trains with float32 logits and
writes a float32 ``model.keras``.
"""

import dataclasses

import keras
import numpy as np
import pytest
from tiny_run import tiny_config

from tfseg.config import Config, TrainConfig
from tfseg.training.ema import WeightEMA

SYNTH = {"num_train": 8, "num_val": 1, "height": 64, "width": 64, "seed": 3}


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, x)


def test_ema_follows_the_formula():
    model = _tiny_model()
    start = [w.numpy().copy() for w in model.weights]
    ema = WeightEMA(model, 0.9, total_steps=10)
    assert len(ema.weights) == len(model.weights) == 6  # kernel, bias, gamma, beta, mean, var
    for w in model.weights:
        w.assign(w.numpy() + 1.0)
    ema.update(1)
    for avg, w0 in zip(ema.average, start):
        np.testing.assert_allclose(avg.numpy(), 0.9 * w0 + 0.1 * (w0 + 1.0), rtol=1e-6, atol=1e-6)
    with ema.swapped_in() as swapped:
        assert swapped is model
        np.testing.assert_allclose(model.weights[0].numpy(), ema.average[0].numpy())
    np.testing.assert_allclose(model.weights[0].numpy(), start[0] + 1.0)  # restored


def test_ramp_is_the_reference_schedule():
    ema = WeightEMA(_tiny_model(), 1.0, total_steps=200, ramp=True)
    assert [float(ema.decay_at(s)) for s in (0, 50, 200)] == pytest.approx([0.0, 0.25, 1.0])
    capped = WeightEMA(_tiny_model(), 0.5, total_steps=200, ramp=True)
    assert float(capped.decay_at(150)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ema_decay"):
        WeightEMA(_tiny_model(), 1.5, total_steps=10)


def test_save_and_load_round_trip(tmp_path):
    model = _tiny_model()
    ema = WeightEMA(model, 0.5, total_steps=10)
    for w in model.weights:
        w.assign(w.numpy() + 2.0)
    ema.update(1)
    ema.save(str(tmp_path / "ema.weights.h5"))
    other = WeightEMA(model, 0.5, total_steps=10)  # starts from the current weights
    other.load(str(tmp_path / "ema.weights.h5"))
    for a, b in zip(ema.average, other.average):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    with pytest.raises(FileNotFoundError, match="without --ema_decay"):
        other.load(str(tmp_path / "missing.weights.h5"))


def _config(tmp, run, epochs, **train):
    train.setdefault("learning_rate", 1e-2)
    return tiny_config(tmp, run, epochs, SYNTH, color_jitter=False, **train)


def _weights(path):
    from tfseg.models.saving import load_model

    return load_model(str(path)).get_weights()


@pytest.mark.slow
def test_ema_run_validates_saves_and_resumes_the_average(tmp_path):
    import shutil

    from tfseg.training import train

    ema = {"ema_decay": 0.5}
    train(_config(tmp_path, "run", 1, **ema))
    run = tmp_path / "run" / "checkpoints"
    assert (run / "ema.weights.h5").is_file()
    # the average is what validation, best.keras and model.keras see; last.keras is trained
    last, best = _weights(run / "last.keras"), _weights(run / "best.keras")
    assert any(not np.allclose(x, y) for x, y in zip(last, best))
    model = keras.models.load_model(str(run / "last.keras"))
    model.load_weights(str(run / "ema.weights.h5"))
    for x, y in zip(model.get_weights(), best):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
    # --resume restores the average: without its file the run refuses to continue
    shutil.copy(run / "ema.weights.h5", tmp_path / "ema.keep.weights.h5")
    (run / "ema.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="ema.weights.h5 is missing"):
        train(_config(tmp_path, "run", 2, **ema))
    shutil.copy(tmp_path / "ema.keep.weights.h5", run / "ema.weights.h5")
    resumed = train(_config(tmp_path, "run", 2, **ema))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    final = _weights(tmp_path / "run" / "model.keras")
    for x, y in zip(_weights(run / "best.keras"), final):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_run_writes_a_float32_model(tmp_path, precision):
    from tfseg.models.saving import load_model
    from tfseg.training import train

    metrics = train(_config(tmp_path, "run", 1, precision=precision))
    assert np.isfinite(metrics["history"][0]["loss"])
    from tfseg.training.model import load_checkpoint
    from tfseg.training.precision import dtype_policy

    with dtype_policy(precision):  # as a resumed run loads it
        last = load_checkpoint(str(tmp_path / "run/checkpoints/last.keras"))
    assert {layer.dtype_policy.name for layer in last.layers} >= {precision, "float32"}
    if precision == "mixed_float16":  # dynamic loss scaling, also after --resume
        assert isinstance(last.optimizer, keras.optimizers.LossScaleOptimizer)
    final = load_model(str(tmp_path / "run/model.keras"))
    assert {layer.dtype_policy.name for layer in final.layers} == {"float32"}
    assert final.count_params() == last.count_params()
    out = final(np.zeros((1, 64, 64, 3), "float32"))
    assert out.dtype == "float32" and np.all(np.isfinite(np.asarray(out)))
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_precision_and_ema_flags_are_checked():
    from absl import flags

    from tfseg import train as train_prog

    def parse(argv):
        fv = flags.FlagValues()
        train_prog.define_flags(fv)
        fv(["train", *argv])
        return train_prog.config_from_flags(fv)

    config = parse(["--precision=mixed_bfloat16", "--ema_decay=0.999"])
    assert (config.train.precision, config.train.ema_decay) == ("mixed_bfloat16", 0.999)
    assert Config.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="--ema_ramp needs --ema_decay"):
        parse(["--ema_ramp"])
    with pytest.raises(ValueError, match="--ema_decay=1"):
        parse(["--ema_decay=1"])
    with pytest.raises(flags.IllegalFlagValueError, match="precision"):
        parse(["--precision=float8"])
    assert dataclasses.replace(TrainConfig(), ema_decay=1.0, ema_ramp=True).ema_ramp
