"""Every bad input raises DataError (or stops tf.data iteration) with the culprit in the message."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tfseg.data import (
    DataError,
    check_examples,
    get_dataset,
    make_eval_dataset,
    make_train_dataset,
)


def _iterate(spec, split="train"):
    for _ in make_eval_dataset(spec, split, stride=1):
        pass


@pytest.mark.parametrize("name", ["cityscapes", "camvid", "mapillary", "folder"])
def test_missing_data_dir(tmp_path, name):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match=f"data_dir {re.escape(missing)} does not exist"):
        get_dataset(name, missing, **({"num_classes": 2} if name == "folder" else {}))


def test_missing_and_empty_split(tmp_path, trees):
    trees.cityscapes(str(tmp_path))
    spec = get_dataset("cityscapes", str(tmp_path))
    with pytest.raises(DataError, match=r"no images found under .*leftImg8bit/test"):
        spec.examples("test")
    os.makedirs(tmp_path / "leftImg8bit" / "test" / "berlin")
    with pytest.raises(DataError, match=r"no images found under .*leftImg8bit/test"):
        spec.examples("test")
    trees.camvid(str(tmp_path / "cv"), splits=("train",))
    os.makedirs(tmp_path / "cv" / "val")
    with pytest.raises(DataError, match=r"no images found under .*cv/val$"):
        get_dataset("camvid", str(tmp_path / "cv")).examples("val")


def test_image_without_label(tmp_path, trees):
    trees.cityscapes(str(tmp_path))
    label = (
        tmp_path / "gtFine" / "val" / "frankfurt" / "frankfurt_000001_000019_gtFine_labelIds.png"
    )
    os.remove(label)
    with pytest.raises(
        DataError, match=f"label file {re.escape(str(label))} of image .*frankfurt_000001"
    ):
        get_dataset("cityscapes", str(tmp_path)).examples("val")
    trees.folder(str(tmp_path / "f"))
    os.remove(tmp_path / "f" / "train" / "masks" / "im1.png")
    with pytest.raises(
        DataError, match=r"image .*im1.png has no mask: .*masks/im1.png does not exist"
    ):
        get_dataset("folder", str(tmp_path / "f")).examples("train")


def _spec_with(tmp_path, trees):
    trees.cityscapes(str(tmp_path), cities={"train": {"aachen": 2}})
    spec = get_dataset("cityscapes", str(tmp_path))
    return spec, spec.examples("train")[1]


def test_corrupt_image(tmp_path, trees):
    spec, ex = _spec_with(tmp_path, trees)
    with open(ex.image, "wb") as f:
        f.write(b"this is not a png")
    with pytest.raises(DataError, match=f"cannot read image {re.escape(ex.image)}"):
        check_examples(spec, "train")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=f"image {re.escape(ex.image)} is empty or not"
    ):
        _iterate(spec)


def test_truncated_png(tmp_path, trees):
    spec, ex = _spec_with(tmp_path, trees)
    with open(ex.image, "rb") as f:
        data = f.read()
    with open(ex.image, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(DataError, match=re.escape(ex.image)):
        check_examples(spec, "train")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=f"{re.escape(ex.image)} is a truncated PNG"
    ):
        _iterate(spec)


def test_size_mismatch(tmp_path, trees):
    spec, ex = _spec_with(tmp_path, trees)
    trees.write_png(ex.label, np.full((8, 8), 7, np.uint8))
    pattern = f"image {re.escape(ex.image)} is 16x32 but its label {re.escape(ex.label)} is 8x8"
    with pytest.raises(DataError, match=pattern):
        check_examples(spec, "train")
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(ex.label)):
        _iterate(spec)


def test_label_values_outside_table(tmp_path, trees):
    spec, ex = _spec_with(tmp_path, trees)
    lab = np.full((16, 32), 7, np.uint8)
    lab[0, 0], lab[1, 1], lab[2, 2] = 77, 40, 40
    trees.write_png(ex.label, lab)
    message = f"label values [40, 77] in {ex.label} are not in the cityscapes label table"
    with pytest.raises(DataError, match=re.escape(message)):
        check_examples(spec, "train")
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        _iterate(spec)
    ds = make_train_dataset(spec, batch_size=1, crop_size=(8, 8), shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        for _ in ds:
            pass
    from tfseg.data import enet_class_weights

    with pytest.raises(DataError, match=re.escape(message)):
        enet_class_weights(spec, "train")


def test_rgb_label(tmp_path, trees):
    spec, ex = _spec_with(tmp_path, trees)
    trees.write_png(ex.label, np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(DataError, match=f"label {re.escape(ex.label)} has PIL mode 'RGB'"):
        check_examples(spec, "train")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=f"label {re.escape(ex.label)} has PIL mode 'RGB'"
    ):
        _iterate(spec)


def test_palette_label_in_a_grey_split(tmp_path, trees):
    """A palette PNG among grey ones is read by its indices, not its colours."""
    spec, ex = _spec_with(tmp_path, trees)
    lab = np.full((16, 32), 26, np.uint8)
    lab[:, :5] = 7
    palette = [v for c in range(256) for v in (255 - c, c, 3)]
    trees.write_png(ex.label, lab, mode="P", palette=palette)
    got = [
        label.numpy()[0]
        for _, label, i in make_eval_dataset(spec, "train", stride=1)
        if int(i[0]) == 1
    ]
    np.testing.assert_array_equal(got[0], np.where(lab == 7, 0, 13))


def test_check_examples_counts_and_lists_problems(tmp_path, trees):
    trees.cityscapes(str(tmp_path), cities={"train": {"aachen": 3}})
    spec = get_dataset("cityscapes", str(tmp_path))
    assert check_examples(spec, "train") == 3
    assert check_examples(spec, "train", max_files=1) == 1
    for ex in spec.examples("train")[:2]:
        trees.write_png(ex.label, np.full((16, 32), 50, np.uint8))
    with pytest.raises(
        DataError, match=r"2 problems in split 'train' of cityscapes:\n  label values \[50\]"
    ):
        check_examples(spec, "train")


def test_folder_configuration_errors(tmp_path, trees):
    root = tmp_path / "f"
    trees.folder(str(root), classes=None)
    with pytest.raises(DataError, match="has no classes.json; write one or pass the num_classes"):
        get_dataset("folder", str(root))
    (root / "classes.json").write_text('["a", "b"]')
    with pytest.raises(DataError, match="num_classes=3 but .*classes.json lists 2 classes"):
        get_dataset("folder", str(root), num_classes=3)
    (root / "classes.json").write_text('{"names": "road"}')
    with pytest.raises(DataError, match="must hold a non-empty list of class names"):
        get_dataset("folder", str(root))
    (root / "classes.json").write_text("[oops")
    with pytest.raises(DataError, match="classes.json is not valid JSON"):
        get_dataset("folder", str(root))
    (root / "classes.json").write_text('["a", "b", "c"]')
    with pytest.raises(DataError, match="ignore_label=1 collides with class ids 0..2"):
        get_dataset("folder", str(root), ignore_label=1)
    (root / "ids.json").write_text(json.dumps({"1": 7}))
    with pytest.raises(DataError, match=r"ids.json: train id 7 \(for raw id 1\) is outside 0..2"):
        get_dataset("folder", str(root), id_map=str(root / "ids.json"))
    with pytest.raises(DataError, match="cannot read id_map .*missing.json"):
        get_dataset("folder", str(root), id_map="missing.json")
    # values outside 0..num_classes-1 (and not the ignore label) are reported
    spec = get_dataset("folder", str(root), num_classes=3)
    ex = spec.examples("train")[0]
    trees.write_png(ex.label, np.full((10, 14), 9, np.uint8))
    with pytest.raises(DataError, match=r"label values \[9\] in .*im0.png are not in the folder"):
        check_examples(spec, "train")


def test_bad_mapillary_config(tmp_path, trees):
    trees.mapillary(str(tmp_path), config=False)
    (tmp_path / "config.json").write_text('{"labels": [{"readable": "x"}]}')
    with pytest.raises(DataError, match=r"config.json is not a Mapillary Vistas config"):
        get_dataset("mapillary", str(tmp_path))


def test_bad_pipeline_arguments(tmp_path, trees):
    spec, _ = _spec_with(tmp_path, trees)
    with pytest.raises(DataError, match="scale_range"):
        make_train_dataset(spec, batch_size=1, crop_size=(8, 8), scale_range=(2.0, 1.0))
    with pytest.raises(DataError, match="crop_size"):
        make_train_dataset(spec, batch_size=1, crop_size=(8, 0))
    with pytest.raises(DataError, match="stride >= 1"):
        make_eval_dataset(spec, "train", stride=0)
