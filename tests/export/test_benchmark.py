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
