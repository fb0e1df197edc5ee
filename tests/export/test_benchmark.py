"""tfseg.benchmark as a library: sizes, per-runtime latency rows, the table and the plot."""

import os

from tfseg import benchmark


def test_sizes_sweep_and_padding():
    sizes = benchmark.parse_sizes(["sweep", "512x1024"])
    assert sizes[:3] == [(360, 640), (720, 1280), (1080, 1920)] and len(sizes) == 6
    assert benchmark.padded((360, 640)) == (384, 640)
    assert benchmark.padded((1080, 1920)) == (1088, 1920)


def test_measure_every_cpu_runtime(tmp_path):
    runtimes = ["keras", "tflite", "tflite_int8", "onnxruntime", "tensorrt"]
    row = benchmark.measure(
        "skipnet", "mobilenet", 5, (50, 100), runtimes=runtimes, warmup=1, runs=2,
        encoder_kwargs={"alpha": 0.25}, threads=1, peak_gflops=10.0,
    )  # fmt: skip
    assert row["input_size"] == "64x128" and row["requested_size"] == "50x100" and row["padded"]
    assert row["params"] > 0 and row["gflops"] > 0
    for runtime in runtimes[:-1]:
        stats = row[runtime]
        assert stats["runs"] == 2 and stats["median_ms"] > 0
        assert abs(stats["fps"] - 1e3 / stats["median_ms"]) < 1e-6
        assert stats["fraction_of_matmul"] == stats["gflops_per_s"] / 10.0
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert row["tensorrt"] == {"skipped": "tensorrt not installed"}
    table = benchmark.format_rows([row])
    assert "tflite_int8" in table and "64x128*" in table and "padded up" in table
    path = str(tmp_path / "fps.png")
    benchmark.plot_fps([row], path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 1000


def test_kernels_fp32_against_int8():
    from tfseg.export_lib import kernels

    layers = (("tiny 3x3", "conv3x3", 8, 16, 8, 16), ("tiny dw", "dw3x3", 8, 16, 8, 8))
    rows = kernels.measure_kernels(layers, threads=1, warmup=1, runs=2)
    assert [r["kernel"] for r in rows] == ["tiny 3x3", "tiny dw"]
    assert rows[0]["macs"] == 8 * 16 * 9 * 8 * 16 and rows[1]["macs"] == 8 * 16 * 9 * 8
    for r in rows:
        for p in ("fp32", "int8"):
            assert r[p]["median_ms"] > 0
            assert abs(r[p]["gmacs"] - r["macs"] / r[p]["median_ms"] / 1e6) < 1e-9
        assert abs(r["int8_speedup"] - r["fp32"]["median_ms"] / r["int8"]["median_ms"]) < 1e-9
        assert "x" in kernels.format_kernel_row(r)


def test_kernel_int8_artifact_has_int8_ends_and_matches_fp32():
    """The int8 layer is full-integer (int8 in and out, no float conversion timed) and computes
    the same convolution as the fp32 one, up to quantisation error."""
    import numpy as np

    from tfseg.export_lib import kernels
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
            it.set_tensor(i["index"], np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8))
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
    import pytest

    from tfseg.export_lib import kernels

    with pytest.raises(ValueError, match="'conv5x5'"):
        kernels.kernel_macs("conv5x5", 1, 1, 1, 1)


def test_measure_a_saved_dynamic_model_with_mixed_int8(tmp_path):
    """``--model_path`` with a model saved at dynamic H/W (as tfseg.train saves them), and the
    ``tflite_int8_mixed`` runtime (int8 with the class-score layers in float)."""
    from export_helpers import small_model

    path = str(tmp_path / "dyn.keras")
    small_model().save(path)
    row = benchmark.measure(
        None, None, 5, (64, 128), runtimes=["tflite_int8", "tflite_int8_mixed"], warmup=1,
        runs=2, threads=1, model_path=path,
    )  # fmt: skip
    assert row["input_size"] == "64x128" and row["gflops"] > 0
    for runtime in ("tflite_int8", "tflite_int8_mixed"):
        assert row[runtime]["runs"] == 2 and row[runtime]["median_ms"] > 0
