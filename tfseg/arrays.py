"""Array helpers shared by the programs: padding an image (and its label map) to a model's stride.

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
