"""experiments/winograd_conv.py: 3x3 convolutions by Winograd's F(2,3) / F(4,3) as OpenVINO graphs
against the direct convolution (issue 22)."""

import numpy as np
import pytest

pytest.importorskip("openvino")

from experiments import winograd_conv  # noqa: E402


def _correlate_same(x, w):
    """3x3 "same" correlation (C, H, W) x (Co, C, 3, 3) -> (Co, H, W), by shifted sums."""
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    y = np.zeros((w.shape[0], h, wd))
    for k in range(3):
        for j in range(3):
            y += np.einsum("oc,chw->ohw", w[:, :, k, j], xp[:, k:k + h, j:j + wd])
    return y


@pytest.mark.parametrize("m", [2, 4])
def test_numpy_algorithm_is_the_convolution(m):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 8, 12)), rng.standard_normal((5, 3, 3, 3))
    np.testing.assert_allclose(winograd_conv.winograd_reference(x, w, m), _correlate_same(x, w),
                               atol=1e-10)


def test_graph_forms_match_the_direct_convolution():
    from tfseg.export_lib.openvino_export import OpenVINORunner

    rng = np.random.default_rng(1)
    shape = (6, 8, 12)
    w = rng.standard_normal((6, 6, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    x = rng.standard_normal((1, *shape)).astype(np.float32)
    expected = np.maximum(_correlate_same(x[0], w) + b[:, None, None], 0)
    direct = OpenVINORunner(winograd_conv.direct_model(w, b, shape), threads=1)(x)[0]
    np.testing.assert_allclose(direct, expected, atol=1e-4)
    for m in (2, 4):
        got = OpenVINORunner(winograd_conv.winograd_model(w, b, shape, m), threads=1)(x)[0]
        np.testing.assert_allclose(got, expected, atol=1e-3, err_msg=f"F({m},3)")
    with pytest.raises(ValueError, match="multiples of 4"):
        winograd_conv.winograd_model(w, b, (6, 6, 12), 4)


def test_compare_shape_row_and_table():
    row = winograd_conv.compare_shape((8, 8, 8), threads=1, warmup=1, rounds=1)
    assert set(row["ms"]) == {"direct", "direct_int8", "wino2", "wino2_int8", "wino4",
                              "wino4_int8"}
    assert row["max_rel_err"]["direct"] == 0 and row["max_rel_err"]["wino2"] < 1e-4
    assert row["gmac"] == pytest.approx(8 * 8 * 9 * 64 / 1e9, rel=1e-2)
    table = winograd_conv.markdown([row])
    assert table.count("\n") == 2 and "| 8x8x8 |" in table
    with pytest.raises(ValueError, match="CxHxW"):
        winograd_conv.parse_shape("128x256")
