"""Label tables: raw label value -> train id, class names and colours.

Every dataset is described by a :class:`LabelTable`: a 256-entry lookup table (LUT) from the raw
value stored in a label PNG to a train id (``0..num_classes-1``) or the ignore label 255, a
256-entry mask of the raw values that may legally appear in a label file, and the train classes'
names and colours.

* Cityscapes: built from ``cityscapesscripts.helpers.labels`` (labelIds 0..33; the 19 classes with a
  train id are kept, every other id, e.g. ego vehicle or static, maps to 255). The license plate has
  labelId -1, i.e. 255 in a uint8 file, which is accepted and ignored.
  ``CITYSCAPES_TRAIN_ID_TO_LABEL_ID`` turns predictions back into official labelIds.
* CamVid (SegNet's 11-class version): raw 0..10 are the classes, 11 is void (ignored).
* Mapillary Vistas v1.2: 66 raw labels; those with ``"evaluate": false`` in ``config.json``
  (only "unlabeled", id 65, in v1.2) are ignored, the others get consecutive train ids.
"""

import colorsys
import dataclasses
import json
import os

import numpy as np
from cityscapesscripts.helpers import labels as _cs

IGNORE_LABEL = 255


@dataclasses.dataclass(frozen=True, eq=False)
class LabelTable:
    """Raw label value -> train id table of one dataset.

    ``lut``: uint8 (256,), raw value -> train id or ``IGNORE_LABEL``.
    ``valid``: bool (256,), raw values that may appear in a label file (others are an error).
    """

    name: str
    class_names: list
    colors: list
    lut: np.ndarray
    valid: np.ndarray

    @property
    def num_classes(self):
        return len(self.class_names)


def make_table(name, class_names, colors, mapping, valid_values):
    """Build a ``LabelTable`` from a {raw value: train id} dict and the accepted raw values."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    valid = np.zeros(256, dtype=bool)
    for raw, train_id in mapping.items():
        lut[int(raw)] = int(train_id)
    for raw in valid_values:
        valid[int(raw)] = True
    valid[np.flatnonzero(lut != IGNORE_LABEL)] = True
    lut.setflags(write=False)
    valid.setflags(write=False)
    return LabelTable(
        name, list(class_names), [tuple(int(v) for v in c) for c in colors], lut, valid
    )


def generic_colors(n, seed=12345):
    """``n`` distinct, deterministic colours (golden-ratio hues, alternating lightness)."""
    colors = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        light = (0.45, 0.6, 0.35)[i % 3]
        sat = (0.85, 0.6)[(i // 3) % 2]
        r, g, b = colorsys.hls_to_rgb(h, light, sat)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return colors


# --------------------------------------------------------------------------------------------------
# Cityscapes
# --------------------------------------------------------------------------------------------------

_CS_TRAIN = sorted(
    (lab for lab in _cs.labels if 0 <= lab.trainId < 19), key=lambda lab: lab.trainId
)
CITYSCAPES_CLASS_NAMES = [lab.name for lab in _CS_TRAIN]
CITYSCAPES_COLORS = [tuple(lab.color) for lab in _CS_TRAIN]

# labelId (as stored in *_gtFine_labelIds.png) -> trainId / 255.
CITYSCAPES_LABEL_ID_TO_TRAIN_ID = np.full(256, IGNORE_LABEL, dtype=np.uint8)
for _lab in _cs.labels:
    if _lab.id >= 0 and 0 <= _lab.trainId < 19:
        CITYSCAPES_LABEL_ID_TO_TRAIN_ID[_lab.id] = _lab.trainId
CITYSCAPES_LABEL_ID_TO_TRAIN_ID.setflags(write=False)

# trainId -> labelId, 256 entries (255 and anything else -> 0 "unlabeled"), for official PNGs.
CITYSCAPES_TRAIN_ID_TO_LABEL_ID = np.zeros(256, dtype=np.uint8)
for _lab in _CS_TRAIN:
    CITYSCAPES_TRAIN_ID_TO_LABEL_ID[_lab.trainId] = _lab.id
CITYSCAPES_TRAIN_ID_TO_LABEL_ID.setflags(write=False)

# labelId -> colour of the official *_gtFine_color.png.
CITYSCAPES_LABEL_ID_COLORS = np.zeros((256, 3), dtype=np.uint8)
for _lab in _cs.labels:
    if _lab.id >= 0:
        CITYSCAPES_LABEL_ID_COLORS[_lab.id] = _lab.color
CITYSCAPES_LABEL_ID_COLORS.setflags(write=False)

# labelIds of classes annotated per instance (instanceIds = labelId * 1000 + k).
CITYSCAPES_INSTANCE_LABEL_IDS = tuple(lab.id for lab in _cs.labels if lab.hasInstances)
# name -> labelId, e.g. CITYSCAPES_LABEL_IDS["car"] == 26.
CITYSCAPES_LABEL_IDS = {lab.name: lab.id for lab in _cs.labels}


def cityscapes_table():
    valid = [lab.id % 256 for lab in _cs.labels]  # -1 (license plate) is 255 in a uint8 file
    mapping = {i: int(t) for i, t in enumerate(CITYSCAPES_LABEL_ID_TO_TRAIN_ID) if t != 255}
    return make_table("cityscapes", CITYSCAPES_CLASS_NAMES, CITYSCAPES_COLORS, mapping, valid)


# --------------------------------------------------------------------------------------------------
# CamVid (SegNet layout: 11 classes, raw 11 = void)
# --------------------------------------------------------------------------------------------------

CAMVID_CLASS_NAMES = [
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
]
CAMVID_COLORS = [
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
]
CAMVID_VOID = 11


def camvid_table():
    mapping = {i: i for i in range(len(CAMVID_CLASS_NAMES))}
    return make_table("camvid", CAMVID_CLASS_NAMES, CAMVID_COLORS, mapping, [CAMVID_VOID])


# --------------------------------------------------------------------------------------------------
# Mapillary Vistas v1.2 (65 classes + unlabeled)
# --------------------------------------------------------------------------------------------------

MAPILLARY_NUM_RAW = 66  # raw ids 0..65; 65 = unlabeled

# Mapillary Vistas v1.2 labels 0..64 in config.json order (65 = "void--unlabeled" is ignored):
# (machine name, readable name).
MAPILLARY_V12_CLASSES = [
    ("animal--bird", "Bird"),
    ("animal--ground-animal", "Ground Animal"),
    ("construction--barrier--curb", "Curb"),
    ("construction--barrier--fence", "Fence"),
    ("construction--barrier--guard-rail", "Guard Rail"),
    ("construction--barrier--other-barrier", "Barrier"),
    ("construction--barrier--wall", "Wall"),
    ("construction--flat--bike-lane", "Bike Lane"),
    ("construction--flat--crosswalk-plain", "Crosswalk - Plain"),
    ("construction--flat--curb-cut", "Curb Cut"),
    ("construction--flat--parking", "Parking"),
    ("construction--flat--pedestrian-area", "Pedestrian Area"),
    ("construction--flat--rail-track", "Rail Track"),
    ("construction--flat--road", "Road"),
    ("construction--flat--service-lane", "Service Lane"),
    ("construction--flat--sidewalk", "Sidewalk"),
    ("construction--structure--bridge", "Bridge"),
    ("construction--structure--building", "Building"),
    ("construction--structure--tunnel", "Tunnel"),
    ("human--person", "Person"),
    ("human--rider--bicyclist", "Bicyclist"),
    ("human--rider--motorcyclist", "Motorcyclist"),
    ("human--rider--other-rider", "Other Rider"),
    ("marking--crosswalk-zebra", "Lane Marking - Crosswalk"),
    ("marking--general", "Lane Marking - General"),
    ("nature--mountain", "Mountain"),
    ("nature--sand", "Sand"),
    ("nature--sky", "Sky"),
    ("nature--snow", "Snow"),
    ("nature--terrain", "Terrain"),
    ("nature--vegetation", "Vegetation"),
    ("nature--water", "Water"),
    ("object--banner", "Banner"),
    ("object--bench", "Bench"),
    ("object--bike-rack", "Bike Rack"),
    ("object--billboard", "Billboard"),
    ("object--catch-basin", "Catch Basin"),
    ("object--cctv-camera", "CCTV Camera"),
    ("object--fire-hydrant", "Fire Hydrant"),
    ("object--junction-box", "Junction Box"),
    ("object--mailbox", "Mailbox"),
    ("object--manhole", "Manhole"),
    ("object--phone-booth", "Phone Booth"),
    ("object--pothole", "Pothole"),
    ("object--street-light", "Street Light"),
    ("object--support--pole", "Pole"),
    ("object--support--traffic-sign-frame", "Traffic Sign Frame"),
    ("object--support--utility-pole", "Utility Pole"),
    ("object--traffic-light", "Traffic Light"),
    ("object--traffic-sign--back", "Traffic Sign (Back)"),
    ("object--traffic-sign--front", "Traffic Sign (Front)"),
    ("object--trash-can", "Trash Can"),
    ("object--vehicle--bicycle", "Bicycle"),
    ("object--vehicle--boat", "Boat"),
    ("object--vehicle--bus", "Bus"),
    ("object--vehicle--car", "Car"),
    ("object--vehicle--caravan", "Caravan"),
    ("object--vehicle--motorcycle", "Motorcycle"),
    ("object--vehicle--on-rails", "On Rails"),
    ("object--vehicle--other-vehicle", "Other Vehicle"),
    ("object--vehicle--trailer", "Trailer"),
    ("object--vehicle--truck", "Truck"),
    ("object--vehicle--wheeled-slow", "Wheeled Slow"),
    ("void--car-mount", "Car Mount"),
    ("void--ego-vehicle", "Ego Vehicle"),
]


def mapillary_table(root=None):
    """Mapillary table from ``<root>/config.json`` when present, generic names otherwise."""
    from tfseg.data.core import DataError

    path = os.path.join(root, "config.json") if root else None
    if path and os.path.isfile(path):
        try:
            with open(path) as f:
                entries = json.load(f)["labels"]
            names, colors, mapping = [], [], {}
            for raw, e in enumerate(entries):
                if not e.get("evaluate", True):
                    continue
                mapping[raw] = len(names)
                names.append(str(e.get("readable") or e["name"]))
                colors.append(tuple(e["color"]))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            raise DataError(
                f"{path} is not a Mapillary Vistas config ({{'labels': [{{'name', 'readable', "
                f"'color', 'evaluate'}}, ...]}}): {type(e).__name__}: {e}"
            ) from None
        if len(entries) > 256:
            raise DataError(f"{path} lists {len(entries)} labels; at most 256 fit in a uint8 PNG")
        return make_table("mapillary", names, colors, mapping, range(len(entries)))
    n = MAPILLARY_NUM_RAW - 1
    mapping = {i: i for i in range(n)}
    names = [f"class_{i}" for i in range(n)]
    return make_table("mapillary", names, generic_colors(n), mapping, [n])
