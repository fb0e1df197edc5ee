"""Training with extra heads: every output gets its loss by kind and weight (an ``aux`` output: the
semantic loss on the label resized to it, times its ``--aux_weights`` entry); ``model.keras`` keeps
the main logits only."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.config import Config, DataConfig, LossConfig, ModelConfig, TrainConfig
from tfseg.layers import BilinearUpsample
from tfseg.registry import MODELS

NET = "aux_test_net"
SYNTH = {"num_train": 4, "num_val": 2, "height": 64, "width": 128, "seed": 4}


def _aux_net(inputs, num_classes):
    """Logits at stride 1 (from stride 4) and one auxiliary output at stride 2."""
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="t_c1")(inputs)
    aux = keras.layers.Conv2D(num_classes, 1, name="t_aux")(x)
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="t_c2")(x)
    logits = keras.layers.Conv2D(num_classes, 1, name="t_score")(y)
    logits = BilinearUpsample(4, name="t_up")(logits)
    return {"logits": logits, "aux": [aux]}


@pytest.fixture(scope="module", autouse=True)
def aux_net():
    MODELS.register(NET, stride=4, heads=("aux",), features={2: "t_c1"})(_aux_net)
    yield NET
    MODELS.unregister(NET)


def _config(tmp, aux_weights=(0.4,), epochs=1):
    return Config(
        model=ModelConfig(name=NET, encoder=None, heads=("aux",)),
        data=DataConfig(
            dataset="synthetic", data_dir=str(tmp / "data"), dataset_options=SYNTH,
            crop_size=(32, 32), batch_size=2,
        ),
        train=TrainConfig(run_dir=str(tmp / "run"), epochs=epochs, resume=True),
        loss=LossConfig(name="ohem", ohem_min_kept=100, aux_weights=aux_weights),
    )  # fmt: skip


def test_total_loss_is_main_plus_weighted_aux(tmp_path):
    from tfseg.losses import make_loss
    from tfseg.tasks import get_task
    from tfseg.tasks.semantic import targets_per_output
    from tfseg.training.model import build_from_config
    from tfseg.training.optimizer import compile_model

    config, task = _config(tmp_path), get_task("semantic")
    keras.utils.set_random_seed(0)
    model = build_from_config(config, task, 5)
    assert [o.shape[1:] for o in model.outputs] == [(None, None, 5), (None, None, 5)]
    compile_model(model, task, config, types.SimpleNamespace(ignore_label=255), None, 10)
    # its slots exist before the first traced step (else that step is traced twice)
    assert model.optimizer.built
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 32, 48, 3)).astype("float32")
    y = rng.integers(0, 5, (2, 32, 48)).astype("int32")
    y[:, :5] = 255
    batch = tf.data.Dataset.from_tensors((x, y))  # one (image, label) batch, as the pipeline yields
    batch = targets_per_output(batch, ("logits", "aux"))
    total = model.evaluate(batch, verbose=0, return_dict=True)["loss"]
    logits, aux = model(x)
    loss = make_loss("ohem", ignore_label=255, min_kept=100)
    main, side = float(loss(y, logits)), float(loss(y[:, 1::2, 1::2], aux))
    assert aux.shape[1:3] == (16, 24) and side > 0
    assert total == pytest.approx(main + 0.4 * side, rel=1e-5)


def test_aux_weights_must_match_the_aux_outputs(tmp_path):
    from tfseg.tasks import get_task
    from tfseg.training.model import build_from_config

    config, task = _config(tmp_path, aux_weights=(0.4, 0.2)), get_task("semantic")
    model = build_from_config(config, task, 5)
    with pytest.raises(ValueError, match="2 values but the model has 1 auxiliary"):
        task.losses(config, model, ignore_label=255)


def test_trained_model_keeps_the_main_logits_only(tmp_path):
    from tfseg.models import get_anatomy
    from tfseg.models.saving import load_model
    from tfseg.training import train

    train(_config(tmp_path, epochs=1))
    metrics = train(_config(tmp_path, epochs=2))  # resumes: the aux loss comes back from last.keras
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    last = load_model(tmp_path / "run" / "checkpoints" / "last.keras", compile=True)
    assert len(last.outputs) == 2
    model = load_model(tmp_path / "run" / "model.keras")
    assert len(model.outputs) == 1 and model.outputs[0].shape[-1] == 19
    assert get_anatomy(model).outputs == (("logits", "logits"),)
    assert "t_aux" not in [layer.name for layer in model.layers]
    x = np.zeros((1, 32, 64, 3), "float32")
    want = last.predict(x, verbose=0)[0]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-5)
    assert metrics["params"] == model.count_params() < last.count_params()


def test_instance_task_with_aux_heads_orders_losses_targets_and_kept_outputs(tmp_path):
    """--task=instance --heads=aux: outputs logits, aux1, instance; losses and targets follow the
    output kinds; model.keras keeps logits and instance (weights and anatomy intact)."""
    import dataclasses

    from tfseg.config import InstanceConfig
    from tfseg.instance.module import InstanceCentreLoss
    from tfseg.losses import ResizedLabelLoss
    from tfseg.models import get_anatomy
    from tfseg.models.saving import load_model
    from tfseg.tasks import get_task, task_for_model
    from tfseg.tasks.semantic import targets_per_output

    config = dataclasses.replace(
        _config(tmp_path, aux_weights=(0.3,)),
        task="instance",
        instance=InstanceConfig(iterations=2, stride=2, loss_weight=0.7, semantic_loss_weight=0.9),
    )
    task = get_task("instance")
    model = task.build_model(config, 5)
    assert [kind for _, kind in get_anatomy(model).outputs] == ["logits", "aux", "instance"]
    losses = task.losses(config, model, ignore_label=255)
    assert [w for _, w in losses] == [0.9, 0.3, 0.7]
    assert isinstance(losses[1][0], ResizedLabelLoss)
    assert isinstance(losses[2][0], InstanceCentreLoss)
    label, centres = tf.zeros((1, 8, 8), tf.int32), tf.ones((1, 8, 8, 3))
    ds = tf.data.Dataset.from_tensors((tf.zeros((1, 8, 8, 3)), (label, centres)))
    _, targets = next(iter(targets_per_output(ds, ("logits", "aux", "instance"), ("instance",))))
    assert [t.shape.rank for t in targets] == [3, 3, 4]
    kept = task.final_model(model)
    assert [kind for _, kind in get_anatomy(kept).outputs] == ["logits", "instance"]
    x = np.random.default_rng(1).normal(size=(1, 32, 32, 3)).astype("float32")
    full, small = model.predict(x, verbose=0), kept.predict(x, verbose=0)
    np.testing.assert_allclose(small[0], full[0], atol=1e-5)
    np.testing.assert_allclose(small[1], full[2], atol=1e-4)
    kept.save(tmp_path / "kept.keras")
    again = load_model(tmp_path / "kept.keras")
    assert get_anatomy(again).outputs == (("logits", "logits"), ("instance", "instance"))
    assert task_for_model(again).name == "instance" and task_for_model(model).name == "instance"
