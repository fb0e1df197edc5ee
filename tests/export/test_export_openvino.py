"""``--format=openvino``: OpenVINO IR folders (fp32, NNCF int8) from the ONNX graph, verified
against Keras, written atomically; its runner; and its refusals."""

import os

import numpy as np
import pytest

from tfseg.export_lib import THRESHOLDS, ExportError, run_export

pytest.importorskip("openvino")

QUIET = {"log": lambda *_: None}


@pytest.mark.parametrize("precision,size", [("fp32", None), ("int8", (64, 128))])
def test_openvino_parity_and_report(export_options, tmp_path, precision, size):
    from tfseg.export_lib.openvino_export import OpenVINORunner

    out = str(tmp_path / f"m_{precision}_openvino")
    report = run_export(
        export_options(output=out, format="openvino", precision=precision, input_size=size),
        **QUIET,
    )
    v = report["verification"]
    assert v["passed"], v["failures"]
    assert v["argmax_agreement"] >= THRESHOLDS[precision]["min_argmax_agreement"]
    assert sorted(os.listdir(out)) == ["model.bin", "model.xml"]
    assert report["artifact_bytes"] == sum(os.path.getsize(os.path.join(out, f))
                                           for f in os.listdir(out))  # fmt: skip
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".m_")]  # no temp folder left
    ops = report["openvino"]["op_types"]
    assert "Convolution" in ops or "GroupConvolution" in ops
    assert report["openvino"]["graph_optimization"].startswith("onnxruntime ")
    if precision == "fp32":
        assert v["max_rel_logit_diff"] < 1e-4
        assert "FakeQuantize" not in ops and report["openvino"]["int8"] is None
        # dynamic H/W like the generic ONNX export: the runner takes another size
        logits = OpenVINORunner(out, threads=1)(np.zeros((1, 32, 64, 3), np.float32))
        assert logits.shape == (1, 32, 64, report["num_classes"])
    else:
        assert ops["FakeQuantize"] == report["openvino"]["int8"]["fake_quantize_nodes"] > 0
        assert report["openvino"]["int8"]["calibration_images"] == 4
        runner = OpenVINORunner(out, threads=1)
        x = np.random.default_rng(0).standard_normal((1, 64, 128, 3)).astype(np.float32)
        assert runner.outputs(x)["logits"].shape == (1, 64, 128, report["num_classes"])


def test_openvino_refusals(export_options, tmp_path):
    out = str(tmp_path / "m_openvino")
    with pytest.raises(ExportError, match="fp16 is not available for --format=openvino"):
        run_export(export_options(output=out, format="openvino", precision="fp16"), **QUIET)
    with pytest.raises(ExportError, match="x86 CPUs .* not --target=tx2"):
        run_export(export_options(output=out, format="openvino", target="tx2",
                                  input_size=(64, 128)), **QUIET)  # fmt: skip
    with pytest.raises(ExportError, match="needs a static --input_size"):
        run_export(export_options(output=out, format="openvino", precision="int8"), **QUIET)
    with pytest.raises(ExportError, match="--int8_float_layers is for"):
        run_export(export_options(output=out, format="openvino", precision="int8",
                                  input_size=(64, 128), int8_float_layers="scores"), **QUIET)
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".m_openvino")]


def test_openvino_runner_names_a_bad_folder(tmp_path):
    from tfseg.export_lib.openvino_export import OpenVINORunner

    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="not an OpenVINO IR folder .*empty"):
        OpenVINORunner(str(tmp_path / "empty"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.xml").write_text("<net/>")
    with pytest.raises(ExportError, match="without its weights file .*half"):
        OpenVINORunner(str(tmp_path / "half"))
    (tmp_path / "half" / "model.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ExportError, match="cannot read the OpenVINO IR .*half"):
        OpenVINORunner(str(tmp_path / "half"))


def _transposed_multiply(path):
    """An ONNX file as tf2onnx leaves a squeeze-excitation product: NCHW -> NHWC, a multiply by
    per-channel scales, NHWC -> NCHW, then a ReLU."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    scales = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 1, 1, 8)
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["x"], ["nhwc"], perm=[0, 2, 3, 1]),
            helper.make_node("Mul", ["nhwc", "scales"], ["scaled"]),
            helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
            helper.make_node("Relu", ["nchw"], ["y"]),
        ],
        "se",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 6])],
        [numpy_helper.from_array(scales, "scales")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return scales


def test_ort_basic_optimizations_remove_layout_transposes(tmp_path):
    import onnx
    import openvino as ov

    from tfseg.export_lib.openvino_export import ort_basic_optimized

    src, out = str(tmp_path / "in.onnx"), str(tmp_path / "out.onnx")
    scales = _transposed_multiply(src)
    info = {}
    assert ort_basic_optimized(src, out, info) == out
    assert info["graph_optimization"].startswith("onnxruntime ")
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert "Transpose" not in ops and "Mul" in ops, ops
    x = np.random.default_rng(0).standard_normal((1, 8, 4, 6)).astype(np.float32)
    want = np.maximum(x * scales.reshape(1, 8, 1, 1), 0)
    got = ov.Core().compile_model(ov.convert_model(out), "CPU")(x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_ort_basic_optimizations_fall_back_to_the_original(tmp_path):
    from tfseg.export_lib.openvino_export import ort_basic_optimized

    src = tmp_path / "broken.onnx"
    src.write_bytes(b"not an onnx file")
    info = {}
    assert ort_basic_optimized(str(src), str(tmp_path / "out.onnx"), info) == str(src)
    assert info["graph_optimization"].startswith("none (onnxruntime could not optimize it")
