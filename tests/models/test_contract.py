"""The model contract (tests/model_contract.py) for every decoder and every network outside the zoo
table (the zoo's networks, ENet, ERFNet and ESPNet among them, run it in test_zoo.py): small
encoders keep each case to a few seconds."""

import keras
import pytest
from model_contract import check_model_contract

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
