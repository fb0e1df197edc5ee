"""Class frequencies and ENet class weights of a dataset split.

ENet (Paszke et al., 2016) weights each class by ``w_c = 1 / ln(c + p_c)``, where ``p_c`` is the
class's share of the labelled (non-ignore) pixels of the training split and ``c`` (1.02) bounds the
weights to ``[1 / ln(1 + c), 1 / ln(c)]`` = about ``[1.45, 50.5]``. A class with no pixel gets the
largest weight.
"""

import numpy as np

from tfseg.data.core import DataError
from tfseg.data.files import bad_values, read_label, values_error


def class_pixel_counts(spec, split, max_images=None):
    """int64 (num_classes,) pixel counts of each train class over the split (ignore excluded)."""
    examples = spec.examples(split)
    if max_images is not None:
        examples = examples[: int(max_images)]
    counts = np.zeros(256, dtype=np.int64)
    for ex in examples:
        raw = read_label(ex.label)
        values = bad_values(raw, spec)
        if values:
            raise values_error(values, ex.label, spec)
        counts += np.bincount(spec.lut[raw].ravel(), minlength=256)
    return counts[: spec.num_classes]


def enet_weights(counts, c=1.02):
    """ENet weights and frequencies from per-class pixel counts: (weights, frequencies)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise DataError("no labelled pixels: cannot compute class frequencies")
    if c <= 1.0:
        raise DataError(f"ENet constant c must be > 1 (weights would be infinite), not {c}")
    freq = counts / total
    return 1.0 / np.log(c + freq), freq


def enet_class_weights(spec, split="train", c=1.02, max_images=None):
    """{"class_names": [...], "weights": [...], "frequencies": [...], "c": c, "num_images": n}."""
    counts = class_pixel_counts(spec, split, max_images)
    weights, freq = enet_weights(counts, c)
    n = len(spec.examples(split))
    return {
        "dataset": spec.name,
        "split": split,
        "c": float(c),
        "num_images": n if max_images is None else min(n, int(max_images)),
        "class_names": spec.class_names,
        "weights": [float(w) for w in weights],
        "frequencies": [float(f) for f in freq],
    }
