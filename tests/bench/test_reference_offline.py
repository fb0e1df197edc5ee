"""experiments/reference_offline.py: pack (with TensorFlow) on the fake reference checkout of
test_reference_compare, then time the pack in a process that has no TensorFlow."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import app, flags

pytest.importorskip("torch")
pytest.importorskip("onnx")

from tests.bench.test_reference_compare import (  # noqa: E402
    _fake_reference,
    experiment_module,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "experiments", "reference_offline.py")


@pytest.fixture(scope="module")
def script():
    yield from experiment_module("reference_offline")


def _strip_and_redraw(script, tmp_path, op, weight, outputs):
    """A one-node ONNX model ``y = op(x, w)`` stripped of ``weight`` and restored with redrawn
    values: (the stripped file's path, its record, the redrawn weight, the restored copy)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node(op, ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, weight.shape[0]])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, outputs])],
        [numpy_helper.from_array(weight, "w")])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = str(tmp_path / "m.onnx")
    (removed,) = script.strip_onnx(model.SerializeToString(), path)
    os.mkdir(tmp_path / "r")
    copy = script.restore_weights(path, [removed], str(tmp_path / "r"))
    redrawn = numpy_helper.to_array(onnx.load(copy).graph.initializer[0])
    return path, removed, redrawn, copy


def test_stripped_weights_are_redrawn_with_their_statistics(script, tmp_path):
    import onnxruntime as ort

    w = np.random.default_rng(1).normal(0.3, 2.0, (64, 8)).astype("float32")
    path, removed, redrawn, copy = _strip_and_redraw(script, tmp_path, "MatMul", w, 8)
    assert os.path.getsize(path) < w.nbytes
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "r"]  # no weights file beside the model
    assert removed["name"] == "w" and removed["length"] == w.nbytes and removed["shape"] == [64, 8]
    assert removed["mean"] == pytest.approx(w.mean()) and removed["std"] == pytest.approx(w.std())
    assert redrawn.shape == (64, 8) and abs(redrawn.mean() - 0.3) < 0.3
    assert abs(redrawn.std() - 2.0) < 0.3
    session = ort.InferenceSession(copy, providers=["CPUExecutionProvider"])
    x = np.ones((1, 64), "float32")
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ redrawn, rtol=1e-5, atol=1e-4)


def test_redrawn_weights_keep_their_range(script, tmp_path):
    """An int8 QDQ file's per-channel scales are positive: redrawn, they must stay so (a normal
    draw of their mean and deviation alone would give some negative ones)."""
    scale = np.abs(np.random.default_rng(2).normal(0, 1, (512,))).astype("float32") + 1e-3
    _, removed, redrawn, _ = _strip_and_redraw(script, tmp_path, "Mul", scale, 512)
    assert removed["min"] == pytest.approx(scale.min()) and removed["max"] == scale.max()
    assert redrawn.min() >= scale.min() and redrawn.max() <= scale.max()
    assert len(np.unique(redrawn)) > 256  # drawn, not a constant


def test_stripped_ir_keeps_its_small_constants_and_redraws_the_weights(script, tmp_path):
    """An OpenVINO IR travels as its graph, its small constants (a reshape's target shape must
    survive exactly) and the statistics of its weights, and runs again once restored. The int8
    weights are NNCF's form (int8 constant -> Convert -> Multiply by a per-channel scale): the
    pack test below packs only the fp32 IR, as NNCF's quantization would double its time."""
    ov = pytest.importorskip("openvino")
    from openvino import opset13 as ops

    rng = np.random.default_rng(3)
    w = rng.normal(-0.5, 1.5, (64, 16)).astype("float32")
    q = rng.integers(-100, 90, (16, 64)).astype("int8")
    scale = np.full((1, 64), 0.01, "float32")  # 256 bytes: kept
    x = ops.parameter([1, 64], np.float32, name="x")
    q_weights = ops.multiply(ops.convert(ops.constant(q), np.float32), ops.constant(scale))
    h = ops.matmul(ops.matmul(x, ops.constant(w), False, False), q_weights, False, False)
    y = ops.reshape(h, ops.constant(np.array([8, 8], np.int64)), False)
    xml = str(tmp_path / "m.xml")
    ov.save_model(ov.Model([y], [x]), xml, compress_to_fp16=False)
    spec = script.strip_ir(xml)
    assert sorted(os.listdir(tmp_path)) == ["m.kept", "m.xml"]  # no .bin travels
    removed = {t["dtype"]: t for t in spec["removed"]}
    assert set(removed) == {"float32", "int8"} and removed["float32"]["shape"] == [64, 16]
    assert removed["float32"]["mean"] == pytest.approx(w.mean())
    assert removed["float32"]["std"] == pytest.approx(w.std())
    assert (removed["int8"]["low"], removed["int8"]["high"]) == (q.min(), q.max())
    assert sorted(k["length"] for k in spec["kept"]) == [16, 256]  # shape and scales, verbatim
    os.mkdir(tmp_path / "r")
    copy = script.restore_ir(xml, spec, str(tmp_path / "r"))
    assert os.path.getsize(copy[:-4] + ".bin") == spec["bin_bytes"]
    model = ov.Core().read_model(copy)
    consts = {str(op.get_output_element_type(0)): op.get_data() for op in model.get_ops()
              if op.get_type_name() == "Constant"}
    redrawn, q2 = consts["<Type: 'float32'>"], consts["<Type: 'int8_t'>"]
    assert redrawn.shape == (64, 16) and q2.shape == (16, 64)
    assert abs(redrawn.mean() + 0.5) < 0.2 and abs(redrawn.std() - 1.5) < 0.2
    assert redrawn.min() >= w.min() and redrawn.max() <= w.max()
    assert q2.min() >= q.min() and q2.max() <= q.max() and len(np.unique(q2)) > 100
    np.testing.assert_array_equal(consts["<Type: 'int64_t'>"], [8, 8])
    run = script.runner("openvino", copy, 1)
    xs = np.ones((1, 64), "float32")
    want = (xs @ redrawn @ (q2.astype("float32") * 0.01)).reshape(8, 8)
    np.testing.assert_allclose(run(xs), want, rtol=1e-4, atol=1e-3)


def test_pack_here_then_time_without_tensorflow(script, tmp_path):
    ref = _fake_reference(tmp_path / "ref")
    fv = flags.FlagValues()
    script.define_flags(fv)
    pack = tmp_path / "pack"
    # tfseg's fp32 ONNX is left out (--runtimes) to save its conversion: it takes the same strip /
    # redraw / onnxruntime path as the reference's ONNX and tfseg's int8 one; openvino_bf16 packs
    # the fp32 IR that openvino would
    openvino = importlib.util.find_spec("openvino") is not None
    ov_runtimes = ["openvino", "openvino_bf16"] if openvino else []  # one IR (int8: the test above)
    fv(["x", f"--pack={pack}", f"--reference_dir={ref}", "--networks=enet",
        "--input_size=64x128", "--num_classes=3", "--reference_exporter=torchscript",
        f"--runtimes={','.join(['onnxruntime_int8', 'tflite_int8', *ov_runtimes])}"])
    manifest = script.pack(fv)
    entry = manifest["networks"]["enet"]
    assert entry["tfseg_input_size"] == "64x128" and entry["bn_statistics"] is True
    assert set(entry["reasons"]) == {"onnxruntime", "openvino_int8",
                                     *({"openvino", "openvino_bf16"} - set(ov_runtimes))}
    assert set(entry["files"]) == {"reference_onnx", "onnxruntime_int8", "tflite_int8",
                                   *ov_runtimes}
    removed = entry["files"]["onnxruntime_int8"]["removed"]  # the weights did not travel
    assert "int8" in {t["dtype"] for t in removed}  # the QDQ file's quantized weights
    assert isinstance(entry["files"]["onnxruntime_int8"]["reduce_range"], bool)
    files = ["enet.reference.onnx", "enet.tfseg_int8.onnx", "enet.tfseg_int8.tflite",
             "manifest.json"]
    if openvino:  # graph and small constants; the weights' statistics are in the manifest
        assert entry["files"]["openvino_bf16"] == entry["files"]["openvino"]  # written once
        files += ["enet.tfseg_openvino.kept", "enet.tfseg_openvino.xml"]
    assert sorted(os.listdir(pack)) == sorted(files)
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("KERAS_BACKEND", None)
    probe = "import runpy,sys; sys.modules['tensorflow'] = None; sys.argv = sys.argv[1:]; " \
            "runpy.run_path(sys.argv[0], run_name='__main__')"  # importing TF would fail
    out = tmp_path / "zoo.md"
    proc = subprocess.run(
        [sys.executable, "-c", probe, SCRIPT, f"--time={pack}", f"--reference_dir={ref}",
         "--rounds=1", "--warmup=1", f"--json={tmp_path / 't.json'}", f"--out={out}"],
        capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert row["best"] in script.RUNTIMES and row["settle_s"] > 0
    assert row["bn_statistics"] is True  # the reference's eager model got them there too
    timed = {"reference_eager", "reference_onnx", "onnxruntime_int8", "tflite_int8",
             *ov_runtimes}
    if row["reasons"] == {"openvino_bf16": "no bfloat16 units on this CPU (AVX-512 BF16 or AMX)"}:
        timed.remove("openvino_bf16")
    else:  # what was not packed is no column, so has no note
        assert row["reasons"] == {}
    assert set(row["times_ms"]) == timed
    text = out.read_text()
    assert "<!-- reference-offline:start -->" in text and "| `enet` |" in text
    bad = subprocess.run([sys.executable, SCRIPT, f"--time={tmp_path}", f"--reference_dir={ref}"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0 and "manifest.json" in bad.stderr



def test_time_says_which_packed_file_did_not_travel(script, tmp_path):
    """tools/offline_trip.sh carries no int8 TFLite file: its note says so, not an OS error."""
    entry = {"reference": "enet", "reasons": {}, "tfseg_input_size": "32x64",
             "files": {"tflite_int8": {"file": "enet.tfseg_int8.tflite"}}}
    opts = type("Opts", (), {"num_classes": 3, "threads": 1, "warmup": 1, "rounds": 1})
    row = script.time_network("enet", entry, str(tmp_path), {}, {}, opts, (32, 64))
    assert row["reasons"]["tflite_int8"] == (
        "not carried (enet.tfseg_int8.tflite is not in the pack folder)")
    assert "not in the reference's model_hub" in row["reasons"]["reference_eager"]
    assert row["times_ms"] == {} and row["best"] is None


def test_pack_refuses_an_unknown_runtime(script, tmp_path):
    fv = flags.FlagValues()
    script.define_flags(fv)
    pack = tmp_path / "pack"
    fv(["x", f"--pack={pack}", f"--reference_dir={tmp_path}", "--networks=enet",
        "--runtimes=onnxruntime_int8,tflite_fp16"])
    with pytest.raises(app.UsageError, match=r"--runtimes: \['tflite_fp16'\]"):
        script.pack(fv)
    assert not pack.exists()  # refused before anything was read or written
