"""Timing on every Keras backend (issue 20, item 2): ``tfseg.bench.backends``, the benchmark's
batches and training steps, and ``tools/gpu_benchmark.py`` run as if TensorFlow were not
installed, on the CPU builds of JAX and PyTorch."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfseg.bench import measure as measure_module
from tfseg.bench.runtimes import RuntimeUnavailable, make_runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "gpu_benchmark.py")


def test_batch_and_training_step_on_tensorflow():
    row = measure_module.measure(
        "skipnet", "mobilenet", 5, (32, 64), runtimes=["keras", "keras_train", "tflite"], batch=2,
        warmup=1, runs=2, encoder_kwargs={"alpha": 0.25},
    )  # fmt: skip
    assert row["batch"] == 2 and row["tflite"] == {"skipped": "batch 1 only"}
    for runtime in ("keras", "keras_train"):
        stats = row[runtime]
        assert stats["runs"] == 2 and stats["median_ms"] > 0
        assert stats["fps"] == pytest.approx(2 * 1e3 / stats["median_ms"])  # images, not calls
    # a training step counts as 3 forward passes of 2 images
    train = row["keras_train"]
    assert train["gflops_per_s"] == pytest.approx(3 * 2 * row["gflops"] / train["median_ms"] * 1e3)
    assert "fastest" not in row  # one inference runtime: nothing to choose from


def test_exported_runtimes_need_tensorflow_and_batch_one(monkeypatch):
    import keras

    with pytest.raises(RuntimeUnavailable, match="batch 1 only"):
        make_runner("onnxruntime", None, (32, 32), workdir=None, cache={}, batch=4)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeUnavailable, match="needs the TensorFlow backend"):
        make_runner("tflite_int8", None, (32, 32), workdir=None, cache={})


def test_benchmark_refuses_tensorflow_runtimes_on_another_backend(monkeypatch):
    from tfseg import benchmark

    monkeypatch.setattr(benchmark, "backend", lambda: "jax")
    benchmark._check_backend(["keras", "keras_bf16_train", "none"], kernels=False)
    with pytest.raises(ValueError, match=r"tflite, onnxruntime need the TensorFlow backend"):
        benchmark._check_backend(["keras", "tflite", "onnxruntime"], kernels=False)
    with pytest.raises(ValueError, match="--kernels"):
        benchmark._check_backend([], kernels=True)
    assert benchmark._batch_sizes(["1", "8"]) == [1, 8]
    with pytest.raises(ValueError, match="'0'"):
        benchmark._batch_sizes(["1", "0"])


def _tool(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, TOOL, f"--out={tmp_path}", "--forbid_tensorflow", "--sizes=32x64",
         "--warmup=1", "--runs=2", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "gpu_benchmark.json") as f:
        return json.load(f), proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_gpu_tool_on_jax_without_tensorflow(tmp_path):
    # one compilation: bf16 inference at batch 2 (fp32 inference and the training step are the
    # TensorFlow and torch tests'; Keras' JAX training step is tests/test_backends.py's; which
    # runtimes run at which batch: test_runtimes_per_batch)
    doc, _ = _tool(tmp_path, "--backend=jax", "--networks=fastscnn", "--batch_sizes=2",
                   "--precisions=bf16", "--no-train")
    assert doc["backend"] == "jax" and doc["device"].startswith("cpu (jax")
    assert "tensorflow" not in doc["versions"] and doc["versions"]["jax"]
    (row,) = doc["rows"]
    assert row["batch"] == 2 and not row.get("error")
    assert row["runtimes"] == ["keras_bf16"]
    assert all(row[k]["fps"] > 0 and row[k]["runs"] == 2 for k in row["runtimes"])
    table = (tmp_path / "gpu_benchmark.md").read_text()
    assert "| fastscnn | 32x64 |" in table and table.rstrip().endswith("| 358 |")  # the zoo's FPS


def test_runtimes_per_batch():
    """Inference per precision at every batch, the training step at the largest batch only."""
    spec = importlib.util.spec_from_file_location("gpu_benchmark", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args(["--out=x", "--batch_sizes=8,1", "--precisions=fp32,bf16"])
    assert args.batches == [1, 8]
    assert tool.runtimes_for(1, args) == ["keras", "keras_bf16"]
    assert tool.runtimes_for(8, args) == ["keras", "keras_bf16", "keras_train", "keras_bf16_train"]
    assert tool.runtimes_for(8, tool.parse_args(["--out=x", "--no-train"])) == [
        "keras", "keras_bf16"]  # fmt: skip
    assert tool.split_network("skipnet/mobilenet") == ("skipnet", "mobilenet")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_gpu_tool_on_torch_without_tensorflow(tmp_path):
    doc, _ = _tool(tmp_path, "--backend=torch", "--networks=fastscnn", "--batch_sizes=2",
                   "--precisions=fp32,fp16")
    (row,) = doc["rows"]
    assert doc["backend"] == "torch" and row["batch"] == 2
    assert row["runtimes"] == ["keras", "keras_fp16", "keras_train", "keras_fp16_train"]
    assert all(row[k]["fps"] > 0 for k in row["runtimes"]), row
    table = (tmp_path / "gpu_benchmark.md").read_text()
    assert "| fp16 training images/s, batch 2 |" in table
    # a second run into the same folder on the same device resumes: nothing is measured again
    again, out = _tool(tmp_path, "--backend=torch", "--networks=fastscnn", "--batch_sizes=2",
                       "--precisions=fp32,fp16")
    assert "1 rows already measured" in out and again["rows"] == doc["rows"]


def test_gpu_tool_rejects_bad_flags(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO}
    for bad, culprit in (("--networks=nonet", "nonet"), ("--batch_sizes=0", "--batch_sizes"),
                         ("--precisions=int4", "--precisions")):
        proc = subprocess.run([sys.executable, TOOL, f"--out={tmp_path / 'o'}", bad],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode != 0 and culprit in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "o" / "gpu_benchmark.json").exists()


def test_precision_copies_keep_float32_logits():
    import keras

    import tfseg
    from tfseg.bench.backends import train_runner, with_policy

    model = tfseg.build_model("skipnet", 3, encoder="mobilenet", input_shape=(32, 32, 3),
                              encoder_kwargs={"alpha": 0.25})
    half = with_policy(model, "mixed_float16")
    policies = {layer.name: layer.dtype_policy.name for layer in half.layers}
    assert policies["logits"] == "float32"  # the output layer keeps its policy
    assert "mixed_float16" in policies.values()
    x = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype("float32")
    assert keras.backend.standardize_dtype(half(x).dtype) == "float32"
    np.testing.assert_allclose(half(x), model(x), atol=0.05 * float(np.abs(model(x)).max()))
    step = train_runner(model, (32, 32), batch=1, precision="fp16")
    assert np.isfinite(step()) and np.isfinite(step())
