"""Generic folder dataset: your own images and single-channel class-id masks.

Layout::

    <data_dir>/classes.json                    optional: ["road", "car", ...] or
                                               {"names": [...], "colors": [[r, g, b], ...]}
    <data_dir>/<split>/images/<stem>.<png|jpg|jpeg|bmp>
    <data_dir>/<split>/masks/<stem>.png        grey ("L") or palette ("P") PNG of raw class ids

A flat layout with no split level, ``<data_dir>/images`` + ``<data_dir>/masks``, is accepted as
the "train" split (when ``<data_dir>/train`` does not exist). Every image needs a mask with the
same stem.

Options:

* ``num_classes``: needed when there is no ``classes.json`` (names are then ``class_0``...); when
  both are given they must agree.
* ``ignore_label`` (default 255): the raw mask value marking void pixels; it becomes 255 (the
  pipeline's ignore label). Without ``id_map``, raw values ``0..num_classes-1`` are the train ids
  and any other value in a mask is an error.
* ``id_map``: path to a JSON object ``{"raw id": train id, ...}`` (train id 255 = ignore); raw
  values not in the map are ignored. A relative path is looked up in the working directory, then in
  ``data_dir``.
"""

import json
import os

from tfseg.data.core import (
    DataError,
    DatasetSpec,
    Example,
    list_files,
    require_dir,
    stem,
)
from tfseg.data.labels import generic_colors, make_table
from tfseg.registry import DATASETS


def _read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror}") from None
    except ValueError as e:
        raise DataError(f"{what} {path} is not valid JSON: {e}") from None


def _classes(root, num_classes):
    path = os.path.join(root, "classes.json")
    names = colors = None
    if os.path.isfile(path):
        data = _read_json(path, "class file")
        if isinstance(data, dict):
            names, colors = data.get("names"), data.get("colors")
        else:
            names = data
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise DataError(
                f"{path} must hold a non-empty list of class names or "
                f'{{"names": [...], "colors": [...]}}'
            )
        if colors is not None and (
            len(colors) != len(names) or not all(len(c) == 3 for c in colors)
        ):
            raise DataError(f"{path}: 'colors' must hold one [r, g, b] per class ({len(names)})")
        if num_classes is not None and int(num_classes) != len(names):
            raise DataError(f"num_classes={num_classes} but {path} lists {len(names)} classes")
    elif num_classes is None:
        raise DataError(
            f"folder dataset {root} has no classes.json; write one or pass the num_classes option"
        )
    else:
        if not 1 <= int(num_classes) <= 255:
            raise DataError(f"num_classes must be in 1..255, not {num_classes}")
        names = [f"class_{i}" for i in range(int(num_classes))]
    return names, colors or generic_colors(len(names))


def _id_map(path, root, num_classes, ignore_label):
    if not os.path.isfile(path) and os.path.isfile(os.path.join(root, path)):
        path = os.path.join(root, path)  # relative to data_dir
    data = _read_json(path, "id_map")
    if not isinstance(data, dict):
        raise DataError(f"id_map {path} must be a JSON object {{raw_id: train_id}}")
    mapping = {}
    for raw, train_id in data.items():
        try:
            raw_i, train_i = int(raw), int(train_id)
        except (TypeError, ValueError):
            raise DataError(f"id_map {path}: entry {raw!r}: {train_id!r} is not integer") from None
        if not 0 <= raw_i <= 255:
            raise DataError(f"id_map {path}: raw id {raw_i} is outside 0..255")
        if not (0 <= train_i < num_classes or train_i == 255):
            raise DataError(
                f"id_map {path}: train id {train_i} (for raw id {raw_i}) is outside "
                f"0..{num_classes - 1} (or 255 to ignore)"
            )
        if train_i != 255:
            mapping[raw_i] = train_i
    mapping.pop(int(ignore_label), None)
    return mapping


def _examples(root, split):
    split_dir = os.path.join(root, split)
    if (
        not os.path.isdir(split_dir)
        and split == "train"
        and os.path.isdir(os.path.join(root, "images"))
    ):
        split_dir = root
    mask_dir = os.path.join(split_dir, "masks")
    examples = []
    for im in list_files(os.path.join(split_dir, "images")):
        mask = os.path.join(mask_dir, stem(im) + ".png")
        if not os.path.isfile(mask):
            raise DataError(f"image {im} has no mask: {mask} does not exist")
        examples.append(Example(im, mask, None, stem(im)))
    return examples


@DATASETS.register("folder", label_format="classIds", has_instances=False)
def folder(data_dir, *, num_classes=None, ignore_label=255, id_map=None):
    """Images and masks in plain folders (see the module docstring for the layout and options)."""
    require_dir(data_dir)
    if not 0 <= int(ignore_label) <= 255:
        raise DataError(f"ignore_label must be in 0..255, not {ignore_label}")
    names, colors = _classes(data_dir, num_classes)
    n = len(names)
    if id_map is not None:
        mapping = _id_map(os.fspath(id_map), data_dir, n, ignore_label)
        valid = range(256)
    else:
        if int(ignore_label) < n:
            raise DataError(
                f"ignore_label={ignore_label} collides with class ids 0..{n - 1}; use another "
                f"ignore_label or an id_map"
            )
        mapping = {i: i for i in range(n)}
        valid = [int(ignore_label)]
    table = make_table("folder", names, colors, mapping, valid)
    options = {"num_classes": num_classes, "ignore_label": ignore_label, "id_map": id_map}
    return DatasetSpec(
        "folder", data_dir, table, lambda split: _examples(data_dir, split), options=options
    )
