"""Reading images and label maps with PIL (outside tf.data), with errors that name the file.

Label files must hold class ids in one channel: 8-bit grey PNGs (mode "L", e.g. Cityscapes labelIds,
CamVid annotations) or palette PNGs (mode "P", e.g. Mapillary Vistas), whose pixel values are the
palette *indices*, i.e. the ids (the palette colours are ignored). 1-bit masks (mode "1") read as
0/1. Colour-coded RGB label images are rejected: convert them to id maps first.
"""

import numpy as np
from PIL import Image, UnidentifiedImageError

from tfseg.data.core import DataError

LABEL_MODES = ("L", "P", "1")


def open_image(path, what="image"):
    """PIL image of ``path``; DataError if missing or unreadable."""
    try:
        im = Image.open(path)
        im.load()
        return im
    except FileNotFoundError:
        raise DataError(f"{what} file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read {what} {path}: {e}") from None


def label_mode(path):
    """PIL mode of a label file (reads the header only)."""
    try:
        with Image.open(path) as im:
            return im.mode
    except FileNotFoundError:
        raise DataError(f"label file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read label {path}: {e}") from None


def check_label_mode(mode, path):
    if mode not in LABEL_MODES:
        raise DataError(
            f"label {path} has PIL mode {mode!r}; labels must be single-channel class-id PNGs "
            f"(grey 'L' or palette 'P'), not colour-coded or 16-bit images"
        )


def read_label(path):
    """Label file -> uint8 (H, W) array of raw ids."""
    im = open_image(path, "label")
    check_label_mode(im.mode, path)
    return np.asarray(im, dtype=np.uint8)


def read_image(path):
    """Image file -> uint8 (H, W, 3) RGB array."""
    return np.asarray(open_image(path).convert("RGB"))


def bad_values(label, spec):
    """Sorted raw values of ``label`` that are not in ``spec``'s label table."""
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    return [int(v) for v in present if not spec.valid[v]]


def values_error(values, path, spec):
    return DataError(f"label values {values} in {path} are not in the {spec.name} label table")
