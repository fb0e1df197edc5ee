"""The model contract (tests/model_contract.py) for every decoder and every network outside the zoo
table (the zoo's networks, ENet, ERFNet and ESPNet among them, run it in test_zoo.py): small
encoders keep each case to a few seconds."""

import keras
import numpy as np
import pytest
from model_contract import FusedAdam, check_model_contract

CASES = [
    ("skipnet", {"encoder": "mobilenet", "encoder_kwargs": {"alpha": 0.25}}),
    ("skipnet", {"encoder": "resnet50"}),
    ("unet", {"encoder": "resnet18"}),
    ("unet", {"encoder": "vgg16"}),
    ("dilation", {"encoder": "mobilenet", "encoder_kwargs": {"alpha": 0.25}}),
    ("rgpnet", {"encoder": "resnet18", "widths": (8, 16, 32, 64)}),
    ("igum", {"encoder": "mobilenet", "encoder_kwargs": {"alpha": 0.25}}),
    ("gum", {"encoder": "mobilenet", "encoder_kwargs": {"alpha": 0.25}}),
    ("ssn", {}),
]


@pytest.mark.parametrize(
    "name,kwargs", CASES, ids=[f"{n}-{k.get('encoder', 'own')}" for n, k in CASES]
)
def test_model_contract(name, kwargs, tmp_path):
    check_model_contract(name, tmp_path, **kwargs)
    keras.backend.clear_session()


def test_fused_adam_is_keras_adam():
    """The contract's optimizer takes the steps Keras' Adam takes (same weights after three)."""
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 4, size=(2, 8, 8)).astype("int32")
    weights, initial = [], None
    for optimizer in (keras.optimizers.Adam(1e-2), FusedAdam(1e-2)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 3)),
                                  keras.layers.Conv2D(6, 3, activation="relu"),
                                  keras.layers.Conv2D(4, 1)])
        initial = [np.asarray(w) for w in model.trainable_variables]
        model.compile(optimizer=optimizer, run_eagerly=True,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for _ in range(3):
            model.train_on_batch(x, y[:, 1:-1, 1:-1])
        weights.append([np.asarray(w) for w in model.trainable_variables])
    for start, keras_w, fused_w in zip(initial, *weights):
        assert np.abs(keras_w - start).max() > 1e-3  # three steps of 1e-2 moved every tensor
        np.testing.assert_allclose(fused_w, keras_w, rtol=1e-5, atol=1e-6)
