"""Fixture trees for the data tests: tiny Cityscapes / CamVid / Mapillary / folder datasets."""

import json
import os
import types

import numpy as np
import pytest
from PIL import Image


def write_png(path, array, mode=None, palette=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = (
        Image.fromarray(np.asarray(array), mode=mode)
        if mode
        else Image.fromarray(np.asarray(array))
    )
    if palette is not None:
        im.putpalette(palette)
    im.save(path)
    return path


def random_image(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_cityscapes(root, cities=None, size=(16, 32), values=(7, 8, 11, 26, 1, 33), seed=0):
    """Cityscapes tree whose labels hold ``values`` in vertical stripes; returns {path: label}."""
    cities = cities or {"train": {"aachen": 2, "bochum": 1}, "val": {"frankfurt": 2}}
    rng = np.random.default_rng(seed)
    h, w = size
    labels = {}
    for split, per_city in cities.items():
        for city, n in per_city.items():
            for k in range(n):
                ident = f"{city}_{k:06d}_000019"
                write_png(
                    os.path.join(root, "leftImg8bit", split, city, f"{ident}_leftImg8bit.png"),
                    random_image(rng, h, w),
                )
                lab = np.asarray(values, np.uint8)[(np.arange(w) + k) % len(values)]
                lab = np.broadcast_to(lab, (h, w)).copy()
                gt = os.path.join(root, "gtFine", split, city, f"{ident}_gtFine_")
                labels[write_png(gt + "labelIds.png", lab)] = lab
                write_png(gt + "instanceIds.png", lab.astype(np.uint16))
    return labels


def make_camvid(root, splits=("train", "val", "test"), n=2, size=(12, 20), seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    for split in splits:
        for k in range(n):
            name = f"0001TP_{k:04d}.png"
            write_png(os.path.join(root, split, name), random_image(rng, h, w))
            write_png(
                os.path.join(root, f"{split}annot", name),
                rng.integers(0, 12, (h, w), dtype=np.uint8),
            )


MAPILLARY_CONFIG = {
    "labels": [
        {
            "name": "construction--flat--road",
            "readable": "Road",
            "color": [128, 64, 128],
            "evaluate": True,
        },
        {"name": "nature--sky", "readable": "Sky", "color": [70, 130, 180], "evaluate": True},
        {"name": "object--car", "readable": "Car", "color": [0, 0, 142], "evaluate": True},
        {"name": "void--unlabeled", "readable": "Unlabeled", "color": [0, 0, 0], "evaluate": False},
    ]
}


def make_mapillary(root, config=True, n=2, size=(12, 20), seed=0):
    """Mapillary tree with palette label PNGs (indices = raw ids 0..3)."""
    rng = np.random.default_rng(seed)
    h, w = size
    if config:
        with open(os.path.join(root, "config.json"), "w") as f:
            json.dump(MAPILLARY_CONFIG, f)
    palette = [v for c in range(256) for v in ((c * 37) % 256, (c * 91) % 256, (c * 53) % 256)]
    for split in ("training", "validation"):
        for k in range(n):
            key = f"key{split[0]}{k}"
            Image.fromarray(random_image(rng, h, w)).save(
                os.path.join(_mkdir(root, split, "images"), f"{key}.jpg"), quality=95
            )
            lab = rng.integers(0, 4, (h, w), dtype=np.uint8)
            write_png(
                os.path.join(root, split, "labels", f"{key}.png"), lab, mode="P", palette=palette
            )


def make_folder(
    root,
    split="train",
    n=3,
    size=(10, 14),
    num_classes=3,
    classes=True,
    seed=0,
    ignore=255,
    flat=False,
):
    rng = np.random.default_rng(seed)
    h, w = size
    base = root if flat else os.path.join(root, split)
    if classes is True:
        with open(os.path.join(_mkdir(root), "classes.json"), "w") as f:
            json.dump([f"c{i}" for i in range(num_classes)], f)
    elif classes is not None:
        with open(os.path.join(_mkdir(root), "classes.json"), "w") as f:
            json.dump(classes, f)
    masks = {}
    for k in range(n):
        write_png(os.path.join(base, "images", f"im{k}.png"), random_image(rng, h, w))
        m = rng.integers(0, num_classes, (h, w), dtype=np.uint8)
        m[0, :] = ignore
        masks[f"im{k}"] = m
        write_png(os.path.join(base, "masks", f"im{k}.png"), m)
    return masks


def _mkdir(*parts):
    path = os.path.join(*parts)
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture
def trees():
    """Builders of fixture trees (test files cannot import conftest reliably)."""
    return types.SimpleNamespace(
        cityscapes=make_cityscapes,
        camvid=make_camvid,
        mapillary=make_mapillary,
        folder=make_folder,
        write_png=write_png,
        mapillary_config=MAPILLARY_CONFIG,
    )


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """A synthetic set at 64x128: 6 train + 3 val images (generated once per session)."""
    from tfseg.data import get_dataset

    root = str(tmp_path_factory.mktemp("synthetic") / "set")
    return get_dataset("synthetic", root, num_train=6, num_val=3, height=64, width=128, seed=0)
