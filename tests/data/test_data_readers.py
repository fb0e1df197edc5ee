"""Dataset readers on fixture trees, label tables and the LUT remap through the pipeline."""

import json
import os

import numpy as np
import pytest

from tfseg.data import DataError, get_dataset, list_datasets, make_eval_dataset
from tfseg.data.labels import (
    CITYSCAPES_CLASS_NAMES,
    CITYSCAPES_COLORS,
    CITYSCAPES_LABEL_ID_TO_TRAIN_ID,
    CITYSCAPES_TRAIN_ID_TO_LABEL_ID,
)


def _eval_labels(spec, split):
    """Train-id labels as the pipeline yields them, cropped back to the file size."""
    out = {}
    examples = spec.examples(split)
    for _, label, index in make_eval_dataset(spec, split, stride=1):
        out[examples[int(index[0])].label] = label.numpy()[0]
    return out


def test_list_datasets():
    assert list_datasets() == ["camvid", "cityscapes", "folder", "mapillary", "synthetic"]


def test_cityscapes_table():
    lut = CITYSCAPES_LABEL_ID_TO_TRAIN_ID
    assert lut.shape == (256,)
    assert [lut[7], lut[8], lut[11], lut[23], lut[24], lut[26], lut[33]] == [
        0,
        1,
        2,
        10,
        11,
        13,
        18,
    ]
    assert lut[0] == lut[1] == lut[4] == lut[9] == lut[34] == 255
    assert len(CITYSCAPES_CLASS_NAMES) == len(CITYSCAPES_COLORS) == 19
    assert CITYSCAPES_CLASS_NAMES[0] == "road" and CITYSCAPES_COLORS[0] == (128, 64, 128)
    # train id -> label id -> train id is the identity for the 19 classes
    assert all(lut[CITYSCAPES_TRAIN_ID_TO_LABEL_ID[t]] == t for t in range(19))
    assert CITYSCAPES_TRAIN_ID_TO_LABEL_ID[255] == 0


def test_cityscapes_reader_and_lut(tmp_path, trees):
    labels = trees.cityscapes(str(tmp_path))
    spec = get_dataset("cityscapes", str(tmp_path))
    assert spec.name == "cityscapes" and spec.num_classes == 19 and spec.ignore_label == 255
    assert spec.class_names == CITYSCAPES_CLASS_NAMES
    train = spec.examples("train")
    assert [e.id for e in train] == [
        "aachen_000000_000019",
        "aachen_000001_000019",
        "bochum_000000_000019",
    ]
    assert [e.city for e in train] == ["aachen", "aachen", "bochum"]
    assert all(e.instance and e.instance.endswith("_gtFine_instanceIds.png") for e in train)
    assert train[0].image.endswith(os.path.join("aachen", "aachen_000000_000019_leftImg8bit.png"))
    for path, got in _eval_labels(spec, "val").items():
        np.testing.assert_array_equal(got, CITYSCAPES_LABEL_ID_TO_TRAIN_ID[labels[path]])
        assert set(np.unique(got)) == {0, 1, 2, 13, 18, 255}


def test_camvid_reader(tmp_path, trees):
    trees.camvid(str(tmp_path))
    spec = get_dataset("camvid", str(tmp_path))
    assert spec.num_classes == 11 and spec.class_names[0] == "Sky" and len(spec.colors) == 11
    assert spec.lut[11] == 255 and list(spec.lut[:11]) == list(range(11))
    ex = spec.examples("test")
    assert len(ex) == 2 and ex[0].label == os.path.join(
        str(tmp_path), "testannot", "0001TP_0000.png"
    )
    from PIL import Image

    for path, got in _eval_labels(spec, "train").items():
        raw = np.asarray(Image.open(path))
        np.testing.assert_array_equal(got, np.where(raw == 11, 255, raw))


def test_mapillary_config_and_palette_labels(tmp_path, trees):
    trees.mapillary(str(tmp_path))
    spec = get_dataset("mapillary", str(tmp_path))
    assert spec.class_names == ["Road", "Sky", "Car"]
    assert spec.colors == [(128, 64, 128), (70, 130, 180), (0, 0, 142)]
    assert spec.lut[3] == 255  # "evaluate": false
    assert [e.id for e in spec.examples("train")] == ["keyt0", "keyt1"]
    assert spec.examples("val")[0].image.endswith(os.path.join("validation", "images", "keyv0.jpg"))
    from PIL import Image

    for path, got in _eval_labels(spec, "val").items():
        raw = np.asarray(Image.open(path))  # palette indices, not colours
        np.testing.assert_array_equal(got, np.where(raw == 3, 255, raw))


def test_mapillary_without_config(tmp_path, trees):
    trees.mapillary(str(tmp_path), config=False)
    spec = get_dataset("mapillary", str(tmp_path))
    assert spec.num_classes == 65 and spec.lut[65] == 255 and spec.lut[64] == 64
    assert spec.valid[65] and not spec.valid[66]


def test_folder_classes_json_and_flat_layout(tmp_path, trees):
    masks = trees.folder(str(tmp_path), flat=True)
    spec = get_dataset("folder", str(tmp_path))
    assert spec.class_names == ["c0", "c1", "c2"] and len(spec.colors) == 3
    assert [e.id for e in spec.examples("train")] == ["im0", "im1", "im2"]
    for path, got in _eval_labels(spec, "train").items():
        np.testing.assert_array_equal(got, masks[os.path.basename(path)[:-4]])


def test_folder_dict_classes_and_num_classes(tmp_path, trees):
    names = {"names": ["a", "b", "c"], "colors": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}
    trees.folder(str(tmp_path / "d"), split="val", classes=names)
    spec = get_dataset("folder", str(tmp_path / "d"), num_classes=3)
    assert spec.colors == [(1, 2, 3), (4, 5, 6), (7, 8, 9)] and len(spec.examples("val")) == 3
    trees.folder(str(tmp_path / "n"), classes=None, num_classes=4)
    spec = get_dataset("folder", str(tmp_path / "n"), num_classes=4)
    assert spec.class_names == ["class_0", "class_1", "class_2", "class_3"]


def test_folder_id_map_and_ignore_label(tmp_path, trees):
    root = str(tmp_path)
    masks = trees.folder(root, num_classes=5, classes=["x", "y"], ignore=0)
    with open(tmp_path / "ids.json", "w") as f:
        json.dump({"3": 0, "4": 1, "2": 255}, f)
    spec = get_dataset("folder", root, id_map="ids.json", ignore_label=0)  # relative to data_dir
    assert spec.num_classes == 2
    lut = np.full(256, 255)
    lut[3], lut[4] = 0, 1
    for path, got in _eval_labels(spec, "train").items():
        np.testing.assert_array_equal(got, lut[masks[os.path.basename(path)[:-4]]])


def test_unknown_dataset_and_option(tmp_path):
    with pytest.raises(
        DataError, match="unknown dataset 'kitti'; choose one of: camvid, cityscapes"
    ):
        get_dataset("kitti", str(tmp_path))
    with pytest.raises(DataError, match="does not accept option.*colour.*accepted: annotation"):
        get_dataset("cityscapes", str(tmp_path), colour=1)
