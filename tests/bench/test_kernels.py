"""tfseg.bench.kernels: single convolution layers in LiteRT, fp32 against int8."""

import numpy as np
import pytest

from tfseg.bench import kernels, report


def test_kernels_fp32_against_int8():
    layers = (("tiny 3x3", "conv3x3", 8, 16, 8, 16), ("tiny dw", "dw3x3", 8, 16, 8, 8))
    lines = []
    rows = kernels.measure_kernels(layers, threads=1, warmup=1, runs=2, log=lines.append)
    assert [r["kernel"] for r in rows] == ["tiny 3x3", "tiny dw"]
    assert rows[0]["macs"] == 8 * 16 * 9 * 8 * 16 and rows[1]["macs"] == 8 * 16 * 9 * 8
    assert list(rows[0]) == ["kernel", "kind", "shape", "macs", "fp32", "int8", "int8_speedup"]
    assert rows[0]["shape"] == [8, 16, 8, 16]
    for r in rows:
        for p in ("fp32", "int8"):
            assert r[p]["median_ms"] > 0
            assert abs(r[p]["gmacs"] - r["macs"] / r[p]["median_ms"] / 1e6) < 1e-9
        assert abs(r["int8_speedup"] - r["fp32"]["median_ms"] / r["int8"]["median_ms"]) < 1e-9
        assert "x" in report.format_kernel_row(r)
    assert lines == [report.format_kernel_row(r) for r in rows]


def test_kernel_int8_artifact_has_int8_ends_and_matches_fp32():
    """The int8 layer is full-integer (int8 in and out, no float conversion timed) and computes
    the same convolution as the fp32 one, up to quantisation error."""
    from tfseg.export_lib.tflite import _interpreter

    model = kernels._layer_model("conv3x3", 8, 8, 4, 4, seed=0)
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((1, 8, 8, 4)).astype(np.float32) for _ in range(8)]
    x = calib[0]
    outs = {}
    for p in ("fp32", "int8"):
        it = _interpreter(kernels.convert_layer(model, p, calib), threads=1)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        if p == "int8":
            assert i["dtype"] == np.int8 and o["dtype"] == np.int8
            scale, zero = i["quantization"]
            it.set_tensor(
                i["index"], np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
            )
            it.invoke()
            oscale, ozero = o["quantization"]
            outs[p] = (it.get_tensor(o["index"]).astype(np.float32) - ozero) * oscale
        else:
            it.set_tensor(i["index"], x)
            it.invoke()
            outs[p] = it.get_tensor(o["index"])
    ref = outs["fp32"]
    assert np.allclose(ref, np.asarray(model(x)), atol=1e-4)
    assert np.abs(outs["int8"] - ref).max() < 0.05 * np.abs(ref).max()


def test_kernels_unknown_kind_is_named():
    with pytest.raises(ValueError, match="'conv5x5'"):
        kernels.kernel_macs("conv5x5", 1, 1, 1, 1)
