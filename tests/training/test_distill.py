"""Knowledge distillation (``--teacher_model``): the three losses against numpy, the frozen teacher
(inference mode, no gradient, saved and loaded with the checkpoint), a tiny distilled run with
resume, and the errors raised before anything is written."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_run import tiny_config

from tfseg.training.distill import DistillationLoss, FrozenTeacher, attach_teacher

IGNORE = 255


def _log_softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _numpy_kd(kind, s, t, labels, temperature, pixels="labelled"):
    mask = labels != IGNORE if pixels == "labelled" else np.ones(labels.shape, bool)
    if kind == "kl":
        ls, lt = _log_softmax(s / temperature, -1), _log_softmax(t / temperature, -1)
        kl = (np.exp(lt) * (lt - ls)).sum(-1)
        return temperature**2 * kl[mask].sum() / max(mask.sum(), 1)
    if kind == "mse":
        return ((s - t) ** 2).mean(-1)[mask].sum() / max(mask.sum(), 1)
    n, _, _, c = s.shape
    total = 0.0
    for i in range(n):
        m = mask[i].reshape(-1)
        if not m.any():
            continue
        for k in range(c):
            ps = s[i, ..., k].reshape(-1)[m] / temperature
            pt = t[i, ..., k].reshape(-1)[m] / temperature
            ls, lt = _log_softmax(ps, 0), _log_softmax(pt, 0)
            total += (np.exp(lt) * (lt - ls)).sum()
    return temperature**2 * total / (n * c)


@pytest.mark.parametrize("kind", ["kl", "mse", "cwd"])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("pixels", ["labelled", "all"])
def test_losses_match_numpy(kind, temperature, pixels):
    """--kd_pixels=all counts the ignore pixels too, so an image without labels still teaches."""
    rng = np.random.default_rng(7)
    s = rng.normal(scale=3.0, size=(3, 5, 6, 4)).astype("float32")
    t = rng.normal(scale=3.0, size=(3, 5, 6, 4)).astype("float32")
    labels = rng.integers(0, 4, size=(3, 5, 6)).astype("int32")
    labels[rng.random(labels.shape) < 0.3] = IGNORE
    labels[2] = IGNORE  # an image without labelled pixels
    loss = DistillationLoss(kind, temperature, ignore_label=IGNORE, pixels=pixels)
    got = float(loss(labels, np.concatenate([s, t], axis=-1)))
    want = _numpy_kd(kind, s, t, labels, temperature, pixels)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    same = float(loss(labels, np.concatenate([s, s], axis=-1)))
    assert same == pytest.approx(0.0, abs=1e-5)


def test_bad_loss_options():
    with pytest.raises(ValueError, match="unknown --kd_loss 'l1'"):
        DistillationLoss("l1")
    with pytest.raises(ValueError, match="--kd_temperature"):
        DistillationLoss("kl", 0.0)
    with pytest.raises(ValueError, match="unknown --kd_pixels 'some'"):
        DistillationLoss("kl", pixels="some")


def _teacher(num_classes=3):
    """A small tfseg model as the teacher."""
    import tfseg

    return tfseg.build_model(
        "skipnet", num_classes, encoder="mobilenet", encoder_kwargs={"alpha": 0.25}
    )


def _dropout_teacher(num_classes=3):
    """Conv + BatchNorm + dropout: outputs differ between training and inference mode."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Conv2D(num_classes, 1)(x), name="teacher_net")


def test_teacher_is_frozen_in_inference_mode(tmp_path):
    import tfseg
    from tfseg.models import get_anatomy
    from tfseg.models.saving import load_model

    teacher = _dropout_teacher()
    student = tfseg.build_model("skipnet", 3, encoder="mobilenet", encoder_kwargs={"alpha": 0.25})
    model = attach_teacher(student, teacher)
    assert [n for n, _ in get_anatomy(model).outputs][-1] == "distill"
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    want = teacher(x, training=False).numpy()
    assert not np.allclose(teacher(x, training=True).numpy(), want)  # dropout is live in training
    for training in (True, False):
        pair = model(x, training=training)[-1].numpy()
        np.testing.assert_allclose(pair[..., 3:], want, rtol=1e-5, atol=1e-5)
    trainable = {id(w) for w in model.trainable_weights}
    assert not any(id(w) in trainable for w in teacher.weights)
    with tf.GradientTape() as tape:
        out = model(x, training=True)[-1]
    grads = tape.gradient(out, model.trainable_weights)
    assert any(g is not None for g in grads)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded(x)[-1].numpy(), model(x)[-1].numpy(), rtol=1e-5, atol=1e-5)


SYNTH = {"num_train": 8, "num_val": 1, "height": 64, "width": 64, "seed": 5}


def _config(tmp, teacher, epochs=1, run="student", **train):
    return tiny_config(tmp, run, epochs, SYNTH, teacher_model=teacher, **train)


@pytest.mark.slow
def test_distilled_run_trains_resumes_and_saves_the_student_only(tmp_path, capsys):
    from tfseg.models.saving import load_model, save_model_atomic
    from tfseg.training import train

    teacher_path = str(tmp_path / "teacher.keras")
    # as tfseg.train writes model.keras (its outputs a one-element list when read back)
    teacher = _teacher(19)
    save_model_atomic(teacher, teacher_path, include_optimizer=False)
    first = train(_config(tmp_path, teacher_path, kd_loss="cwd", kd_pixels="all"))
    # the plan counts the student's parameters and names the teacher's apart
    assert f"(+ a frozen teacher of {teacher.count_params():,})" in capsys.readouterr().out
    second = train(_config(tmp_path, teacher_path, epochs=2, kd_loss="cwd", kd_pixels="all"))
    assert second["history"][0] == first["history"][0] and len(second["history"]) == 2
    assert all(np.isfinite(h["loss"]) for h in second["history"])
    last = keras.models.load_model(str(tmp_path / "student/checkpoints/last.keras"))
    from tfseg.models import get_anatomy

    assert [kind for _, kind in get_anatomy(last).outputs] == ["logits", "distill"]
    assert any(isinstance(layer, FrozenTeacher) for layer in last.layers)
    final = load_model(str(tmp_path / "student/model.keras"))
    assert len(final.outputs) == 1
    assert not any(isinstance(layer, FrozenTeacher) for layer in final.layers)


def test_teacher_errors_come_before_anything_is_written(tmp_path):
    from tfseg.training import train

    wrong = str(tmp_path / "teacher3.keras")
    _teacher(3).save(wrong)
    with pytest.raises(ValueError, match="predicts 3 classes but the dataset has 19"):
        train(_config(tmp_path, wrong))
    assert not os.path.exists(tmp_path / "student")


def test_kd_flags_need_a_teacher():
    from absl import flags

    from tfseg import train as train_prog

    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train", "--kd_loss=mse"])
    with pytest.raises(ValueError, match="--kd_loss needs --teacher_model"):
        train_prog.config_from_flags(fv)
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train", "--kd_pixels=all"])
    with pytest.raises(ValueError, match="--kd_pixels needs --teacher_model"):
        train_prog.config_from_flags(fv)
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train", "--teacher_model=/nonexistent/t.keras"])
    with pytest.raises(FileNotFoundError, match="/nonexistent/t.keras"):
        train_prog.config_from_flags(fv)
