"""The synthetic data set: determinism, content (classes, instances, void) and the on-disk set."""

import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from tfseg.data import DataError, generate_synthetic, render_scene
from tfseg.data.labels import (
    CITYSCAPES_INSTANCE_LABEL_IDS,
    CITYSCAPES_LABEL_ID_COLORS,
    CITYSCAPES_LABEL_ID_TO_TRAIN_ID,
)


@pytest.fixture(scope="module")
def scenes():
    return [render_scene((0, 0, i), 96, 192) for i in range(8)]


def test_render_is_deterministic():
    a = render_scene((3, 0, 1), 64, 128)
    b = render_scene((3, 0, 1), 64, 128)
    c = render_scene((4, 0, 1), 64, 128)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    assert a[0].tobytes() != c[0].tobytes()
    assert a[0].shape == (64, 128, 3) and a[0].dtype == np.uint8
    assert a[1].shape == (64, 128) and a[1].dtype == np.uint8


def test_class_coverage(scenes):
    present = set()
    for _, label, _ in scenes:
        present |= set(np.unique(CITYSCAPES_LABEL_ID_TO_TRAIN_ID[label]).tolist())
    present.discard(255)
    assert len(present) >= 10, sorted(present)
    assert {0, 1, 2, 5, 7, 8, 10, 11, 13} <= present  # road ... car are in every few images


def test_instances(scenes):
    counts = []
    for _, label, inst in scenes:
        ids = np.unique(inst)
        things = ids[ids >= 1000]
        counts.append(len(things))
        for i in things:
            assert i // 1000 in CITYSCAPES_INSTANCE_LABEL_IDS
            np.testing.assert_array_equal(label[inst == i], i // 1000)
        stuff = inst < 1000
        np.testing.assert_array_equal(inst[stuff], label[stuff])
        assert not np.isin(label[stuff], CITYSCAPES_INSTANCE_LABEL_IDS).any()
    assert np.mean(counts) >= 2


def test_void_maps_to_ignore(scenes):
    labels = np.stack([s[1] for s in scenes])
    void = np.isin(labels, [1, 4, 9])  # ego vehicle, static, parking
    assert void.any()
    assert (CITYSCAPES_LABEL_ID_TO_TRAIN_ID[labels[void]] == 255).all()


def test_images_are_textured(scenes):
    """Pixels of one class in one image are not a flat colour."""
    image, label, _ = scenes[0]
    for label_id in (7, 11, 21):  # road, building, vegetation
        pixels = image[label == label_id].astype(np.float32)
        if len(pixels) > 100:
            assert pixels.std(axis=0).mean() > 4.0


def test_generated_set_layout(tiny_synthetic):
    spec = tiny_synthetic
    assert spec.name == "synthetic" and spec.num_classes == 19
    train, val = spec.examples("train"), spec.examples("val")
    assert len(train) == 6 and len(val) == 3
    assert {e.city for e in train} == {"synth0"} and {e.city for e in val} == {"synth1"}
    assert train[0].id == "synth0_000000_000019"
    ex = val[0]
    assert os.path.isfile(ex.instance)
    image, label = np.asarray(Image.open(ex.image)), np.asarray(Image.open(ex.label))
    color = np.asarray(Image.open(ex.label.replace("_labelIds", "_color")))
    inst = np.asarray(Image.open(ex.instance))
    assert image.shape == (64, 128, 3) and label.shape == (64, 128) and inst.max() >= 1000
    np.testing.assert_array_equal(color, CITYSCAPES_LABEL_ID_COLORS[label])
    with open(os.path.join(spec.root, "synthetic.json")) as f:
        assert json.load(f)["num_train"] == 6


def test_same_parameters_same_bytes_and_reuse(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    kw = {"num_train": 2, "num_val": 1, "height": 48, "width": 96, "seed": 5, "verbose": False}
    generate_synthetic(a, **kw)
    generate_synthetic(b, **kw)
    files = sorted(
        os.path.relpath(p, a) for p in glob.glob(os.path.join(a, "**", "*.png"), recursive=True)
    )
    assert len(files) == 3 * 4
    for rel in files:
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel
    # a complete set is reused, not rewritten
    first = os.path.join(a, files[0])
    mtime = os.stat(first).st_mtime_ns
    generate_synthetic(a, **kw)
    assert os.stat(first).st_mtime_ns == mtime
    # other parameters: regenerated in place, no temporary directory left behind
    generate_synthetic(a, **{**kw, "seed": 6})
    with open(os.path.join(a, files[0]), "rb") as fa, open(os.path.join(b, files[0]), "rb") as fb:
        assert fa.read() != fb.read()
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_refuses_foreign_directory(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(DataError, match="not empty and holds no synthetic data set"):
        generate_synthetic(str(tmp_path), num_train=1, num_val=0, height=32, width=64)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    from tfseg.data.synthetic import writer

    calls = []

    def boom(root, split, index, params):
        calls.append(index)
        if index == 1:
            raise KeyboardInterrupt
        return original(root, split, index, params)

    original = writer._write_example
    monkeypatch.setattr(writer, "_write_example", boom)
    target = str(tmp_path / "set")
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(target, num_train=3, num_val=0, height=32, width=64, verbose=False)
    assert not os.path.exists(target)
    assert os.listdir(tmp_path) == []


def test_bad_parameters(tmp_path):
    with pytest.raises(DataError, match="height must be an integer >= 16"):
        generate_synthetic(str(tmp_path / "x"), height=8)
