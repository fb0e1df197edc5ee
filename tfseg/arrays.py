"""Array helpers shared by the programs: padding an image (and its label map) to a model's stride,
parsing an ``HxW`` size, and the pool of output arrays that the LiteRT and OpenVINO runners write
into. No TensorFlow here: the benchmark imports it on every Keras backend.

Models need input sizes that are multiples of their stride (``tfseg.models.stride_of``); evaluation,
prediction, export samples and benchmarks pad at the bottom and right and crop the outputs back.
(``tfseg/deploy`` keeps its own copy: it must run on a Jetson without tfseg.)
"""

import sys

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


class ArrayPool:
    """Output arrays that a runtime writes into, reused once their caller has let go of them.

    ``get(shape)`` returns a pooled array that nothing outside the pool references (not the
    array, a view of it, a ``memoryview`` or ``torch.from_numpy`` of it: each holds a reference to
    the array or to the allocation it is a view of, which ``sys.getrefcount`` sees), else a new
    one from ``allocate(shape, dtype)`` (default ``np.empty``; a view into a larger allocation,
    such as an aligned one, works too). At most ``size`` are kept; an older one is left to
    whoever holds it. Reusing spares the page faults of a fresh 40 MB allocation per call
    (512x1024x19 float32 logits), which is most of what copying the logits out of a runtime
    costs (docs/results.md: LiteRT's and OpenVINO's in-place logits).
    """

    def __init__(self, size=4, allocate=None):
        self.size = size
        self._allocate = allocate or (lambda shape, dtype: np.empty(shape, dtype))
        # [array, its base, their reference counts while only the pool holds them]
        self._entries = []

    @staticmethod
    def _counts(entry):
        """Reference counts of the entry's array and base, always taken the same way (from the
        entry alone), so that a free array gives the counts recorded when it was made."""
        return (sys.getrefcount(entry[0]),
                0 if entry[1] is None else sys.getrefcount(entry[1]))

    def get(self, shape, dtype=np.float32):
        shape, dtype = tuple(shape), np.dtype(dtype)
        for entry in self._entries:
            if (entry[0].shape == shape and entry[0].dtype == dtype
                    and self._counts(entry) == entry[2]):
                return entry[0]
        array = self._allocate(shape, dtype)
        entry = [array, array.base, None]
        del array
        entry[2] = self._counts(entry)
        self._entries.append(entry)
        if len(self._entries) > self.size:
            self._entries.pop(0)
        return entry[0]
