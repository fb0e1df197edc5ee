"""Cityscapes reader (official layout).

::

    <data_dir>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <data_dir>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    <data_dir>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   (optional)

Label files hold official labelIds; the LUT maps them to the 19 train ids (everything else -> 255).
Options: ``annotation`` ("gtFine", or "gtCoarse" for the coarse set / train_extra).
``Example.id`` is ``<city>_<seq>_<frame>``, ``Example.city`` the city folder.
"""

import os

from tfseg.data.core import DataError, DatasetSpec, Example, require_dir, require_file
from tfseg.data.labels import cityscapes_table
from tfseg.registry import DATASETS

_SUFFIX = "_leftImg8bit.png"


def cityscapes_examples(root, split, annotation="gtFine"):
    """Examples of ``split`` under a Cityscapes-layout ``root``, sorted by city then id."""
    image_dir = os.path.join(root, "leftImg8bit", split)
    if not os.path.isdir(image_dir):
        raise DataError(f"no images found under {image_dir}: the directory does not exist")
    examples = []
    for city in sorted(os.listdir(image_dir)):
        city_dir = os.path.join(image_dir, city)
        if not os.path.isdir(city_dir):
            continue
        for name in sorted(os.listdir(city_dir)):
            if not name.endswith(_SUFFIX):
                continue
            ident = name[: -len(_SUFFIX)]
            ann_dir = os.path.join(root, annotation, split, city)
            image = os.path.join(city_dir, name)
            label = require_file(os.path.join(ann_dir, f"{ident}_{annotation}_labelIds.png"), image)
            instance = os.path.join(ann_dir, f"{ident}_{annotation}_instanceIds.png")
            examples.append(
                Example(image, label, instance if os.path.isfile(instance) else None, ident, city)
            )
    if not examples:
        raise DataError(f"no images found under {image_dir} (expected <city>/*{_SUFFIX})")
    return examples


@DATASETS.register("cityscapes", label_format="labelIds", has_instances=True)
def cityscapes(data_dir, *, annotation="gtFine"):
    """Cityscapes with the 19 train classes. ``annotation``: "gtFine" or "gtCoarse"."""
    if annotation not in ("gtFine", "gtCoarse"):
        raise DataError(f"cityscapes annotation must be 'gtFine' or 'gtCoarse', not {annotation!r}")
    require_dir(data_dir)
    return DatasetSpec(
        "cityscapes",
        data_dir,
        cityscapes_table(),
        lambda split: cityscapes_examples(data_dir, split, annotation),
        options={"annotation": annotation},
    )
