"""Array helpers shared by the programs: padding an image (and its label map) to a model's stride,
and parsing an ``HxW`` size. No TensorFlow here: the benchmark imports it on every Keras backend.

Models need input sizes that are multiples of their stride (``tfseg.models.stride_of``); evaluation,
prediction, export samples and benchmarks pad at the bottom and right and crop the outputs back.
(``tfseg/deploy`` keeps its own copy: it must run on a Jetson without tfseg.)
"""

import numpy as np


def padded_size(size, stride):
    """``size`` (H, W) rounded up to a multiple of ``stride`` in each dimension."""
    return tuple(-(-int(d) // stride) * stride for d in size)


def pad_to_stride(array, stride, value=0):
    """Pad an HxW[xC] ``array`` at the bottom and right with ``value`` to a multiple of ``stride``
    (the array itself when it fits)."""
    h, w = array.shape[:2]
    ph, pw = -h % stride, -w % stride
    if not (ph or pw):
        return array
    widths = ((0, ph), (0, pw)) + ((0, 0),) * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)


def parse_size(text, what="size"):
    """Parse ``"HxW"`` (or a single ``"S"`` for a square) into ``(H, W)`` positive ints."""
    try:
        parts = [int(p) for p in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise ValueError(
            f"{what} must look like HxW with positive integers (e.g. 512x1024), got {text!r}"
        )
    return tuple(parts)
