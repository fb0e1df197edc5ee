"""tfseg.bench as a library: sizes, per-runtime latency rows, the table and the plot."""

import os

import numpy as np

from tfseg.arrays import pad_to_stride, padded_size
from tfseg.bench import measure, report


def test_sizes_sweep_and_padding():
    sizes = measure.parse_sizes(["sweep", "512x1024"])
    assert sizes[:3] == [(360, 640), (720, 1280), (1080, 1920)] and len(sizes) == 6
    assert padded_size((360, 640), 32) == (384, 640)
    assert padded_size((1080, 1920), 32) == (1088, 1920)



def test_pad_to_stride_pads_bottom_right_with_the_value():
    label = np.ones((5, 7), np.int32)
    out = pad_to_stride(label, 4, 255)
    assert out.shape == (8, 8) and (out[:5, :7] == 1).all() and (out[5:] == 255).all()
    assert pad_to_stride(np.zeros((8, 8, 3)), 4).shape == (8, 8, 3)


def test_model_targets():
    from tfseg.registry import DECODERS, ENCODERS, MODELS

    assert measure.model_targets("ssn", "vgg16") == [("ssn", "vgg16")]
    assert measure.model_targets("ssn", "vgg16", model_path="m.keras") == [(None, None)]
    pairs = measure.model_targets("ssn", "vgg16", pairs=True)
    assert len(pairs) == len(DECODERS.names()) * len(ENCODERS.names())
    every = measure.model_targets("ssn", "vgg16", every=True)
    assert every == pairs + [(m, None) for m in MODELS.names()]


def test_measure_every_cpu_runtime(tmp_path):
    from tfseg.export_lib.openvino_export import bf16_supported

    runtimes = ["keras", "keras_bf16", "tflite", "tflite_int8", "onnxruntime", "onnxruntime_int8",
                "openvino", "openvino_int8", "tensorrt"]  # fmt: skip
    if bf16_supported():  # else test_openvino_bf16_runtime_is_unavailable_without_bf16_units
        runtimes.insert(-2, "openvino_bf16")
    lines = []
    row = measure.measure(
        "skipnet", "mobilenet", 5, (50, 100), runtimes=runtimes, warmup=1, runs=2,
        encoder_kwargs={"alpha": 0.25}, threads=1, peak_gflops=10.0, log=lines.append,
    )  # fmt: skip
    assert row["input_size"] == "64x128" and row["requested_size"] == "50x100" and row["padded"]
    assert row["params"] > 0 and row["gflops"] > 0 and row["bn_statistics"] == "calibration inputs"
    for runtime in runtimes[:-1]:
        stats = row[runtime]
        assert stats["runs"] == 2 and stats["median_ms"] > 0
        assert abs(stats["fps"] - 1e3 / stats["median_ms"]) < 1e-6
        assert stats["fraction_of_matmul"] == stats["gflops_per_s"] / 10.0
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert row["tensorrt"] == {"skipped": "tensorrt not installed"}
    assert lines == [report.format_line(row, r) for r in runtimes]
    timed = runtimes[:-1]
    assert row["fastest"] == min(timed, key=lambda r: row[r]["median_ms"])
    table = report.format_rows([row])
    assert f"fastest: {row['fastest']}" in table
    assert "tflite_int8" in table and "64x128*" in table and "padded up" in table
    path = str(tmp_path / "fps.png")
    report.plot_fps([row], path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 1000


def test_measure_a_saved_dynamic_model_with_mixed_int8(tmp_path):
    """``--model_path`` with a model saved at dynamic H/W (as tfseg.train saves them), and the
    ``tflite_int8_mixed`` runtime (int8 with the class-score layers in float)."""
    import keras

    import tfseg

    keras.utils.set_random_seed(1)
    path = str(tmp_path / "dyn.keras")
    tfseg.build_model(
        "skipnet", 5, encoder="mobilenet", input_shape=(None, None, 3),
        encoder_kwargs={"alpha": 0.25},
    ).save(path)  # fmt: skip
    row = measure.measure(
        None, None, 5, (64, 128), runtimes=["tflite_int8", "tflite_int8_mixed"], warmup=1,
        runs=2, threads=1, model_path=path,
    )  # fmt: skip
    assert row["input_size"] == "64x128" and row["gflops"] > 0
    for runtime in ("tflite_int8", "tflite_int8_mixed"):
        assert row[runtime]["runs"] == 2 and row[runtime]["median_ms"] > 0


def test_a_new_network_gets_bn_statistics_of_the_calibration_inputs():
    """A random-weight network is timed with BN statistics measured on the calibration inputs
    (one batch of the four), unless ``bn_statistics=False``; a model file keeps its own."""
    import keras

    from tfseg.bench.runtimes import calibration_inputs

    args = ("fastscnn", None, 5, (64, 128), None, None)
    model, size = measure._model_at(*args, True)
    bn = model.get_layer("fastscnn_ltd_conv_bn")
    conv = keras.Model(model.inputs, model.get_layer("fastscnn_ltd_conv_conv").output)
    acts = np.asarray(conv(np.concatenate(calibration_inputs(size))))
    np.testing.assert_allclose(np.asarray(bn.moving_mean), acts.mean(axis=(0, 1, 2)),
                               rtol=1e-3, atol=1e-5)
    model, _ = measure._model_at(*args, False)
    assert not np.asarray(model.get_layer("fastscnn_ltd_conv_bn").moving_mean).any()
    # only int8 graphs depend on the ranges: a float-only run keeps BN's initial statistics
    row = measure.measure("fastscnn", None, 5, (64, 128), runtimes=["tflite"], warmup=1, runs=1)
    assert row["bn_statistics"] == "initial"


def test_json_documents_keep_their_keys():
    doc = report.results_json([{"model": "m"}], threads=2, peak=None, device="cpu")
    keys = ["cpu_count", "threads", "matmul", "results", "backend", "device"]
    assert list(doc) == keys and doc["threads"] == 2 and doc["backend"] == "tensorflow"
    doc = report.kernels_json([], threads=None, peak={"best": 1.0}, int8_cpu_flags=["avx_vnni"])
    assert list(doc) == ["cpu_count", "threads", "matmul", "int8_cpu_flags", "kernels"]


def test_unknown_runtime_is_named():
    import pytest

    from tfseg.bench.runtimes import AUTO_RUNTIMES, expand_runtimes, make_runner

    assert expand_runtimes(["keras", "auto", "tflite"]) == ["keras", *AUTO_RUNTIMES]
    with pytest.raises(ValueError, match="'tflite_int4'"):
        expand_runtimes(["auto", "tflite_int4"])

    with pytest.raises(ValueError, match="'tpu'"):
        make_runner("tpu", None, (32, 32), workdir=None, cache={})


def test_openvino_bf16_runtime_is_unavailable_without_bf16_units(monkeypatch):
    """``openvino_bf16`` on a CPU without AVX-512 BF16 / AMX would time float32 under a bf16 name:
    the runtime reports itself unavailable instead (the table shows why)."""
    import pytest

    from tfseg.bench.runtimes import RuntimeUnavailable, make_runner
    from tfseg.export_lib import openvino_export as ovx

    monkeypatch.setattr(ovx, "bf16_supported", lambda: False)
    with pytest.raises(RuntimeUnavailable, match="no bfloat16 units"):
        make_runner("openvino_bf16", None, (32, 32), workdir=None, cache={})
