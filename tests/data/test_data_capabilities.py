"""Dataset capabilities (label format, instance ids) come from the registration, not from names."""

import pytest

from tfseg.data import (
    LABEL_FORMATS,
    DataError,
    DatasetCapabilities,
    DatasetSpec,
    dataset_capabilities,
    get_dataset,
    list_datasets,
)
from tfseg.data import core as data_core
from tfseg.data.labels import cityscapes_table
from tfseg.registry import Registry

EXPECTED = {
    "cityscapes": ("labelIds", True),
    "synthetic": ("labelIds", True),
    "camvid": ("trainIds", False),
    "mapillary": ("trainIds", False),
    "folder": ("classIds", False),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_capabilities(name):
    caps = dataset_capabilities(name)
    assert (caps.label_format, caps.has_instances) == EXPECTED[name]
    assert caps.label_format in LABEL_FORMATS


def test_list_datasets_by_capability():
    assert list_datasets() == sorted(EXPECTED)
    assert list_datasets(has_instances=True) == ["cityscapes", "synthetic"]
    assert list_datasets(label_format="labelIds") == ["cityscapes", "synthetic"]
    assert list_datasets(label_format="trainIds", has_instances=False) == ["camvid", "mapillary"]
    with pytest.raises(TypeError, match="unknown dataset capabilities: colour"):
        list_datasets(colour=True)


def test_spec_carries_the_capabilities(tmp_path, trees):
    trees.cityscapes(str(tmp_path / "cs"))
    trees.camvid(str(tmp_path / "camvid"))
    cs = get_dataset("cityscapes", tmp_path / "cs")
    camvid = get_dataset("camvid", tmp_path / "camvid")
    assert (cs.label_format, cs.has_instances) == ("labelIds", True)
    assert (camvid.label_format, camvid.has_instances) == ("trainIds", False)
    assert cs.capabilities == DatasetCapabilities("labelIds", True)


def test_unregistered_spec_gets_defaults():
    spec = DatasetSpec("my_own", "/nowhere", cityscapes_table(), lambda split: [])
    assert spec.capabilities == DatasetCapabilities()
    assert (spec.label_format, spec.has_instances) == ("trainIds", False)


def test_unknown_dataset_and_bad_registration(monkeypatch):
    with pytest.raises(DataError, match="unknown dataset 'nope'; choose one of"):
        dataset_capabilities("nope")
    registry = Registry("dataset")
    registry.register("odd", label_format="rgb")(lambda data_dir: None)
    registry.register("plain")(lambda data_dir: None)
    monkeypatch.setattr(data_core, "DATASETS", registry)
    with pytest.raises(DataError, match="label_format='rgb'; choose one of: labelIds"):
        dataset_capabilities("odd")
    assert dataset_capabilities("plain") == DatasetCapabilities()


def test_consumers_follow_the_label_format(tmp_path, trees):
    """Category IoU and the Cityscapes palette for labelIds datasets only."""
    from tfseg.data.labels import CITYSCAPES_COLORS
    from tfseg.evaluation import cityscapes_categories
    from tfseg.predict import palette_for

    trees.cityscapes(str(tmp_path / "cs"))
    cs = get_dataset("cityscapes", tmp_path / "cs")
    other = DatasetSpec("my_own", "/nowhere", cityscapes_table(), lambda split: [])
    assert sorted(cityscapes_categories(cs)) == [
        "construction",
        "flat",
        "human",
        "nature",
        "object",
        "sky",
        "vehicle",
    ]
    assert cityscapes_categories(other) is None
    assert palette_for(5, "synthetic").tolist() == [list(c) for c in CITYSCAPES_COLORS]
    assert len(palette_for(5, "camvid")) == 5
