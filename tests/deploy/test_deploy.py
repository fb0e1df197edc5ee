"""The standalone Jetson builder/runner: Python 3.6 syntax, no tfseg/TF imports, tfseg's
processing."""

import ast
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "tfseg", "deploy")
FILES = sorted(f for f in os.listdir(DEPLOY) if f.endswith(".py"))
# What the board has: the standard library, numpy, TensorRT, a CUDA binding, PIL / OpenCV
# (onnxruntime only for the desktop check).
ALLOWED = {"numpy", "tensorrt", "pycuda", "cuda", "cv2", "PIL", "onnxruntime", "common", "engine"}


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("name", FILES)
def test_python36_syntax_and_imports(name):
    with open(os.path.join(DEPLOY, name)) as f:
        src = f.read()
    tree = ast.parse(src, feature_version=(3, 6))
    stdlib = set(sys.stdlib_module_names)
    bad = sorted(m for m in set(_imports(tree)) if m not in stdlib and m not in ALLOWED)
    assert not bad, f"{name} imports {bad}"
    assert not {"tfseg", "tensorflow", "keras"} & set(_imports(tree))


def test_scripts_import_without_tfseg_or_tensorflow():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import common, engine, build_engine, run_engine; "
        "bad = [m for m in ('tensorflow', 'keras', 'tfseg', 'tensorrt') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, DEPLOY], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_constants_match_tfseg():
    from tfseg.data import MEAN, STD
    from tfseg.data.labels import CITYSCAPES_COLORS
    from tfseg.deploy import common

    np.testing.assert_array_equal(common.MEAN, MEAN)
    np.testing.assert_array_equal(common.STD, STD)
    np.testing.assert_array_equal(common.CITYSCAPES_COLORS, np.asarray(CITYSCAPES_COLORS, np.uint8))


def test_preprocessing_and_argmax_match_tfseg():
    import tensorflow as tf

    from tfseg.data import normalize
    from tfseg.deploy import common

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)  # not a multiple of the stride
    x = common.preprocess(image, stride=32)
    expected = np.pad(normalize(image), ((0, 14), (0, 26), (0, 0)))[None]  # as tfseg.predict pads
    assert x.dtype == np.float32 and x.shape == (1, 64, 96, 3)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_allclose(x[0, :50, :70], normalize(tf.constant(image)).numpy(), atol=1e-6)
    logits = rng.standard_normal((1, 64, 96, 5)).astype(np.float32)
    logits[0, 0, 0] = [1, 3, 3, 0, 0]  # a tie: the first maximum wins, as in tf.argmax
    labels = common.postprocess(logits, image.shape, stride=32)
    ref = tf.argmax(logits, axis=-1, output_type=tf.int32).numpy()[0, :50, :70]
    np.testing.assert_array_equal(labels, ref)
    assert labels[0, 0] == 1 and labels.shape == (50, 70)


def test_fixed_size_engine_resizes_and_maps_back():
    from tfseg.deploy import common

    image = np.zeros((100, 150, 3), np.uint8)
    x = common.preprocess(image, 32, input_size=(64, 128))
    assert x.shape == (1, 64, 128, 3)
    labels = common.postprocess(np.zeros((1, 64, 128, 4), np.float32), image.shape, 32, (64, 128))
    assert labels.shape == (100, 150)


def test_runner_picks_the_logits_of_an_instance_engine():
    """An engine exported from a --task=instance model has ``instance`` and ``logits`` outputs (in
    either order); the runner's label maps come from the logits."""
    from types import SimpleNamespace

    from tfseg.deploy import run_engine

    logits, centres = np.zeros((1, 8, 8, 5), np.float32), np.zeros((1, 8, 8, 2), np.float32)
    runner = SimpleNamespace(output_names=["instance", "logits"])
    assert run_engine._pick({"instance": centres, "logits": logits}, runner) is logits
    assert run_engine._pick({"out": logits}, SimpleNamespace(output_names=["out"])) is logits


def test_runner_on_onnx_matches_tfseg_predict(tmp_path):
    """run_engine's whole pipeline (onnxruntime backend) gives tfseg.predict's label maps."""
    import keras
    import onnx
    from PIL import Image

    import tfseg
    from tfseg.deploy import run_engine
    from tfseg.evaluation import make_predict_fn
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.predict import predict_image

    keras.utils.set_random_seed(0)
    model = tfseg.build_model("skipnet", 5, encoder="mobilenet", encoder_kwargs={"alpha": 0.25})
    folded, _ = inference_model(model, grouped_conv="native")
    onnx_path = str(tmp_path / "m.onnx")
    onnx.save(convert_onnx(folded, opset=17, input_shape=(1, None, None)), onnx_path)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    arrays = {"a": rng.integers(0, 256, (50, 70, 3), dtype=np.uint8),
              "b": rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)}  # fmt: skip
    for stem, arr in arrays.items():
        Image.fromarray(arr).save(images / f"{stem}.png")
    out = tmp_path / "out"
    summary = run_engine.run(onnx_path, str(images), str(out), warmup=1, runs=2)
    assert summary["frames"] == 2 and summary["inference"]["fps"] > 0
    predict = make_predict_fn(model)
    for stem, arr in arrays.items():
        labels = np.asarray(Image.open(out / f"{stem}_labels.png"))
        np.testing.assert_array_equal(labels, predict_image(predict, arr, 32))
        assert (out / f"{stem}_overlay.png").exists() and (out / f"{stem}_color.png").exists()
    assert run_engine.main(["--engine", onnx_path, "--input", str(tmp_path / "none")]) == 1


def test_builder_without_tensorrt_says_what_is_needed(tmp_path, capsys):
    from tfseg.deploy import build_engine

    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    code = build_engine.main(
        ["--onnx", str(tmp_path / "m.onnx"), "--engine", str(tmp_path / "m.engine")]
    )
    assert code == 1
    assert "TensorRT Python bindings are not installed" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "m.engine")
