"""Mapillary Vistas v1.2 reader (65 classes; raw 65 "unlabeled" -> ignored).

::

    <data_dir>/config.json                                (optional: names, colours, "evaluate")
    <data_dir>/{training,validation}/images/<key>.jpg
    <data_dir>/{training,validation}/labels/<key>.png     (palette or grey PNG of raw class ids)
    <data_dir>/{training,validation}/instances/<key>.png  (optional)

Split names "train" and "val" are aliases of "training" and "validation"; "testing" has no labels.
"""

import os

from tfseg.data.core import (
    DatasetSpec,
    Example,
    list_files,
    require_dir,
    require_file,
    stem,
)
from tfseg.data.labels import mapillary_table
from tfseg.registry import DATASETS

SPLIT_DIRS = {"train": "training", "val": "validation", "test": "testing"}


def _examples(root, split):
    split_dir = os.path.join(root, SPLIT_DIRS.get(split, split))
    examples = []
    for im in list_files(os.path.join(split_dir, "images")):
        key = stem(im)
        label = require_file(os.path.join(split_dir, "labels", f"{key}.png"), im)
        instance = os.path.join(split_dir, "instances", f"{key}.png")
        examples.append(Example(im, label, instance if os.path.isfile(instance) else None, key))
    return examples


# Its instance PNGs are not in the Cityscapes instanceIds encoding that the instance task reads.
@DATASETS.register("mapillary", label_format="trainIds", has_instances=False)
def mapillary(data_dir):
    """Mapillary Vistas v1.2; names and colours from ``config.json`` when present."""
    require_dir(data_dir)
    table = mapillary_table(data_dir)
    return DatasetSpec("mapillary", data_dir, table, lambda split: _examples(data_dir, split))
