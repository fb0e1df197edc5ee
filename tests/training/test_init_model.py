"""--init_model: every weight copied from a .keras file of the same architecture; mismatches
named."""

import numpy as np
import pytest

import tfseg
from tfseg.training import TrainingError, init_from_model


def _tiny(num_classes):
    return tfseg.build_model(
        "skipnet", num_classes, encoder="mobilenet", encoder_kwargs={"alpha": 0.25}
    )


def test_init_model_copies_every_weight(tmp_path):
    source = _tiny(5)
    rng = np.random.default_rng(0)
    source.set_weights([rng.normal(size=w.shape).astype("float32") for w in source.weights])
    path = tmp_path / "source.keras"
    source.save(path)
    target = _tiny(5)
    n = init_from_model(target, str(path))
    assert n == len(source.weights)
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_init_model_names_the_mismatch(tmp_path):
    path = tmp_path / "source.keras"
    _tiny(5).save(path)
    with pytest.raises(TrainingError, match="shape mismatch: skipnet"):
        init_from_model(_tiny(7), str(path))
