"""Learning-rate schedules (``tfseg.training.schedules``): values against direct formulas (PyTorch's
``OneCycleLR`` for ``onecycle``, Keras' ``PolynomialDecay`` for ``poly``), warm-up, and that the
schedule comes back with the optimizer of a saved model (what ``--resume`` relies on)."""

import math

import keras
import numpy as np
import pytest

from tfseg.training.schedules import LearningRate


def lr_at(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def onecycle_reference(step, base, total, pct_start, anneal="cos"):
    """PyTorch's OneCycleLR (div_factor 25, final_div_factor 1e4), written from its documented
    phases: [0, pct_start * total - 1] rising, [.., total - 1] falling."""
    start, end = base / 25.0, base / 25.0 / 1e4
    peak_at, last = pct_start * total - 1.0, total - 1.0

    def ann(a, b, pct):
        if anneal == "linear":
            return a + (b - a) * pct
        return b + (a - b) / 2.0 * (1.0 + math.cos(math.pi * pct))

    if step <= peak_at:
        return ann(start, base, step / peak_at)
    return ann(base, end, (step - peak_at) / (last - peak_at))


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_onecycle_follows_pytorch_onecyclelr(anneal):
    total, warm = 600, 30  # 3 warm-up epochs of 60
    schedule = LearningRate(0.01, total, kind="onecycle", warmup_steps=warm, anneal=anneal)
    steps = [0, 1, 10, 29, 30, 100, 300, 598, 599]
    want = [onecycle_reference(s, 0.01, total, warm / total, anneal) for s in steps]
    np.testing.assert_allclose(lr_at(schedule, steps), want, rtol=1e-5, atol=1e-9)  # float32
    # float32: rates are exact to ~1e-9 absolute
    assert float(schedule(0)) == pytest.approx(0.01 / 25, rel=1e-5)
    assert float(schedule(29)) == pytest.approx(0.01, rel=1e-5)
    assert float(schedule(599)) == pytest.approx(0.01 / 25 / 1e4, abs=1e-9)


def test_onecycle_without_warmup_is_the_reference_linear_policy():
    schedule = LearningRate(0.01, 101, kind="onecycle", warmup_steps=0, anneal="linear")
    np.testing.assert_allclose(lr_at(schedule, [0, 50, 100]), [0.01, 0.005 + 2e-8, 4e-8],
                               rtol=1e-4, atol=1e-9)


def test_poly_equals_keras_polynomial_decay():
    ours = LearningRate(5e-3, 150, kind="poly", power=0.9)
    keras_poly = keras.optimizers.schedules.PolynomialDecay(5e-3, 150, 0.0, power=0.9)
    steps = [0, 1, 75, 149, 150, 200]
    np.testing.assert_allclose(lr_at(ours, steps), lr_at(keras_poly, steps), rtol=1e-5,
                               atol=1e-12)


@pytest.mark.parametrize("kind", ["constant", "poly", "cosine", "linear"])
def test_linear_warmup_then_decay_over_the_remaining_steps(kind):
    schedule = LearningRate(1.0, 110, kind=kind, warmup_steps=10)
    lr = lr_at(schedule, range(111))
    np.testing.assert_allclose(lr[:10], np.arange(1, 11) / 10.0, rtol=1e-6)
    assert lr[10] == pytest.approx(1.0)
    if kind == "constant":
        assert np.all(lr[10:] == pytest.approx(1.0))
    else:
        assert np.all(np.diff(lr[10:]) <= 1e-7) and lr[110] == pytest.approx(0.0, abs=1e-6)
    if kind == "cosine":
        assert lr[60] == pytest.approx(0.5, abs=1e-6)  # half way through the decay


def test_the_schedule_survives_saving_with_the_optimizer(tmp_path):
    schedule = LearningRate(0.01, 600, kind="onecycle", warmup_steps=30)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4), loss="mse")
    model.fit(np.ones((8, 4)), np.zeros((8, 2)), batch_size=2, epochs=1, verbose=0)
    model.save(tmp_path / "last.keras")
    loaded = keras.models.load_model(tmp_path / "last.keras")
    lr = loaded.optimizer.learning_rate
    assert int(loaded.optimizer.iterations) == 4
    assert isinstance(loaded.optimizer._learning_rate, LearningRate)  # noqa: SLF001
    assert float(lr) == pytest.approx(float(schedule(4)))


def test_bad_settings_name_the_culprit():
    with pytest.raises(ValueError, match="unknown schedule 'cos'.*onecycle"):
        LearningRate(0.1, 10, kind="cos")
    with pytest.raises(ValueError, match="warmup_steps 20 must be in"):
        LearningRate(0.1, 10, warmup_steps=20)
