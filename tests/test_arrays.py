"""``tfseg.arrays.ArrayPool``: the output arrays the LiteRT and OpenVINO runners write into are
handed out again only once nothing outside the pool references them."""

import numpy as np
import pytest

from tfseg.arrays import ArrayPool


def _in_larger_allocation(shape, dtype):
    """A view into a larger buffer, as LiteRT's aligned outputs are."""
    raw = np.empty(int(np.prod(shape)) + 16, dtype)
    return raw[16:].reshape(shape)


@pytest.mark.parametrize("allocate", [None, _in_larger_allocation], ids=["own", "view"])
def test_pool_reuses_only_arrays_nobody_holds(allocate):
    pool = ArrayPool(size=3, allocate=allocate)
    first = pool.get((2, 3))
    address = first.ctypes.data
    del first
    again = pool.get((2, 3))
    assert again.ctypes.data == address  # dropped: reused
    held = {"array": again, "view": pool.get((2, 3))[1:], "buffer": memoryview(pool.get((2, 3)))}
    fresh = pool.get((2, 3))  # each of the three is referenced in some form: a fourth array
    for what, ref in held.items():
        assert not np.shares_memory(fresh, np.asarray(ref)), what
    assert pool.get((3, 2)).shape == (3, 2) and pool.get((2, 3), np.int32).dtype == np.int32
    assert len(pool._entries) == 3  # the oldest ones were left to their holders
