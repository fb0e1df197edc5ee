"""The model contract (tests/model_contract.py) for every decoder and every network outside the zoo
table (the zoo's networks, ENet, ERFNet and ESPNet among them, run it in test_zoo.py): small
encoders keep each case to a few seconds."""

import keras
import numpy as np
import pytest
from model_contract import _check_train_step, _seed_states, check_model_contract

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
    check_model_contract(name, tmp_path, **kwargs)  # with the any_size build
    keras.backend.clear_session()


def test_train_check_names_a_weight_no_gradient_reaches():
    """The contract's training check fails on a network whose gradient stops before a weight."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="cut_off")(inputs)
    x = keras.layers.Lambda(lambda t: keras.ops.stop_gradient(t))(x)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, name="head")(x))
    with pytest.raises(AssertionError, match="no gradient reaches.*cut_off"):
        _check_train_step(model, 3, (8, 8))


def test_train_check_passes_with_dropout():
    """Dropout draws the same masks in each of the check's forward passes (its generators are set
    back), so the loss it compares is a function of the weights alone."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Dropout(0.5, seed=1)(x)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))
    assert _seed_states(model)  # the dropout layer's generator is found
    before = [np.asarray(w) for w in model.trainable_variables]
    _check_train_step(model, 3, (8, 8))
    for start, after in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(np.asarray(after), start)  # the weights come back
