"""Zoo networks with auxiliary heads (``heads=("aux",)``): the auxiliary outputs' count and strides,
and the compiled training loss = main loss + sum_i w_i * (loss of aux_i on the nearest-resized
label), as ``tests/training/test_training_heads.py`` checks on a toy network."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.config import Config, DataConfig, LossConfig, ModelConfig, TrainConfig

# network: (input size, strides of its auxiliary outputs, their loss weights)
NETWORKS = {
    "bisenetv2": ((64, 128), (4, 8, 16, 32), (0.4, 0.3, 0.2, 0.1)),
    "ddrnet": ((64, 128), (8,), (0.4,)),
    "icnet": ((64, 128), (16, 8), (0.4, 0.6)),
}
CLASSES = 5


def _config(tmp, name, aux_weights):
    return Config(
        model=ModelConfig(name=name, encoder=None, heads=("aux",)),
        data=DataConfig(dataset="synthetic", data_dir=str(tmp / "data"), batch_size=2),
        train=TrainConfig(run_dir=str(tmp / "run"), epochs=1),
        loss=LossConfig(name="ohem", ohem_min_kept=100, aux_weights=aux_weights),
    )


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_aux_outputs_and_total_loss(name, tmp_path):
    from tfseg.losses import make_loss
    from tfseg.models import get_anatomy
    from tfseg.tasks import get_task
    from tfseg.tasks.semantic import targets_per_output
    from tfseg.training.model import build_from_config
    from tfseg.training.optimizer import compile_model

    (h, w), strides, weights = NETWORKS[name]
    config, task = _config(tmp_path, name, weights), get_task("semantic")
    keras.utils.set_random_seed(0)
    model = build_from_config(config, task, CLASSES)
    assert len(model.outputs) == 1 + len(strides)
    compile_model(model, task, config, types.SimpleNamespace(ignore_label=255), None, 10)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, h, w, 3)).astype("float32")
    y = rng.integers(0, CLASSES, (2, h, w)).astype("int32")
    y[:, :3] = 255
    outputs = [np.asarray(t) for t in model(x, training=False)]
    want = [(2, h, w, CLASSES)] + [(2, h // s, w // s, CLASSES) for s in strides]
    assert [o.shape for o in outputs] == want

    kinds = [kind for _, kind in get_anatomy(model).outputs]
    assert kinds == ["logits"] + ["aux"] * len(strides)
    batch = targets_per_output(tf.data.Dataset.from_tensors((x, y)), kinds)
    total = model.evaluate(batch, verbose=0, return_dict=True)["loss"]
    loss = make_loss("ohem", ignore_label=255, min_kept=100)
    expected = float(loss(y, outputs[0]))
    for s, wt, aux in zip(strides, weights, outputs[1:]):
        label = y[:, s // 2 :: s, s // 2 :: s]  # nearest neighbour, half-pixel centres
        side = float(loss(label, aux))
        assert side > 0
        expected += wt * side
    assert total == pytest.approx(expected, rel=1e-4)
    keras.backend.clear_session()
