"""Shared fixtures of the export tests: a tiny synthetic dataset and a small trained-looking
model."""

import pytest
from export_helpers import small_model

SIZE = (64, 128)
DATA_OPTIONS = {"num_train": 4, "num_val": 2, "height": SIZE[0], "width": SIZE[1]}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """``(data_dir, options)`` of a 4 + 2 image synthetic set at 64x128 (generated once)."""
    from tfseg.data import get_dataset

    root = str(tmp_path_factory.mktemp("export_data") / "synthetic")
    get_dataset("synthetic", root, **DATA_OPTIONS)
    return root, dict(DATA_OPTIONS)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """A saved SkipNet-MobileNet(alpha 0.25), 5 classes, dynamic H/W, random BN statistics."""
    path = str(tmp_path_factory.mktemp("export_model") / "small.keras")
    small_model().save(path)
    return path


@pytest.fixture
def export_options(model_path, tiny_data, tmp_path):
    """``make(**overrides) -> ExportOptions`` reading the tiny dataset, verifying on 2 images."""
    from tfseg.export_lib import ExportOptions

    data_dir, options = tiny_data

    def make(**kw):
        base = {
            "model_path": model_path,
            "output": str(tmp_path / "artifact"),
            "dataset": "synthetic",
            "data_dir": data_dir,
            "dataset_options": options,
            "verify": True,
            "verify_images": 2,
            "calibration_steps": 4,
        }
        base.update(kw)
        return ExportOptions(**base)

    return make
