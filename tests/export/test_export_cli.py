"""``python -m tfseg.export`` as a user runs it: exit status, messages, files (3 subprocesses)."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.run(
        [sys.executable, "-m", "tfseg.export", *args],
        capture_output=True, text=True, check=False, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip


def test_onnx_for_tx2_with_verify(model_path, tiny_data, tmp_path):
    data_dir, options = tiny_data
    out = str(tmp_path / "model_tx2.onnx")
    result = _run(
        f"--model_path={model_path}", "--format=onnx", "--target=tx2", "--input_size=64x128",
        f"--output={out}", "--verify", "--verify_images=2", "--dataset=synthetic",
        f"--data_dir={data_dir}", f"--dataset_options={json.dumps(options)}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.exists(out) and "wrote" in result.stdout
    with open(out + ".report.json") as f:
        report = json.load(f)
    assert report["onnx"]["opset"] == 13 and report["input_shape"] == [1, 64, 128, 3]
    assert report["verification"]["passed"] and "Conv" in report["onnx"]["op_types"]


def test_size_not_divisible_by_stride_exits_1_and_writes_nothing(model_path, tmp_path):
    out = str(tmp_path / "m.tflite")
    result = _run(
        f"--model_path={model_path}", "--format=tflite", "--input_size=70x100", f"--output={out}"
    )
    assert result.returncode == 1
    assert "not divisible by the model's stride 32" in result.stderr
    assert os.listdir(tmp_path) == []


def test_tftrt_on_tf_without_tensorrt_points_to_onnx(model_path, tmp_path):
    out = str(tmp_path / "m_tftrt")
    result = _run(f"--model_path={model_path}", "--format=tftrt", f"--output={out}")
    assert result.returncode == 1
    assert "dropped TF-TRT" in result.stderr and "--format=onnx" in result.stderr
    assert os.listdir(tmp_path) == []
