"""``tfseg.evaluate`` on exported CPU artifacts (LiteRT, OpenVINO): the deployed model scored on a
dataset, against the Keras model it came from; the artifact loader's refusals."""

import json
import os

import numpy as np
import pytest
from absl import flags
from export_helpers import randomize_batchnorm

import tfseg
from tfseg.export_lib import ExportError, run_export

QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def model19(tmp_path_factory):
    """A small 19-class model (the synthetic set's classes), saved."""
    import keras

    keras.utils.set_random_seed(3)
    model = tfseg.build_model("skipnet", 19, encoder="mobilenet", encoder_kwargs={"alpha": 0.25})
    path = str(tmp_path_factory.mktemp("eval_model") / "m19.keras")
    randomize_batchnorm(model, 3).save(path)
    return path


def _spec(tiny_data):
    from tfseg.data import get_dataset

    data_dir, options = tiny_data
    return get_dataset("synthetic", data_dir, **options)


def test_artifacts_score_as_the_keras_model(export_options, model19, tiny_data, tmp_path):
    from tfseg.evaluation import evaluate_artifact, evaluate_model
    from tfseg.export_lib.artifacts import artifact_format, open_artifact
    from tfseg.models.saving import load_model

    spec = _spec(tiny_data)
    want = evaluate_model(load_model(model19), spec, "val", verbose=False)
    for fmt, size, name in [("tflite", (64, 128), "m.tflite"), ("openvino", None, "m_openvino")]:
        out = str(tmp_path / name)
        run_export(export_options(model_path=model19, output=out, format=fmt, target="cpu"
                                  if size else "generic", input_size=size), **QUIET)  # fmt: skip
        assert artifact_format(out) == fmt
        artifact = open_artifact(out, threads=1)
        assert artifact.input_size == size and artifact.stride == 32
        assert artifact.precision == "fp32" and artifact.report["format"] == fmt
        got = evaluate_artifact(artifact, spec, "val", verbose=False)
        # the images are 64x128: the static artifact needs no resize; fp32 = the Keras scores
        assert got["num_images"] == want["num_images"] == 2
        cm, ref = np.array(got["confusion_matrix"]), np.array(want["confusion_matrix"])
        assert np.abs(cm - ref).sum() <= 0.002 * ref.sum(), fmt  # argmax ties may flip
        assert got["miou"] == pytest.approx(want["miou"], abs=2e-3)
        assert got["artifact"] == {"path": os.path.abspath(out), "format": fmt,
                                   "precision": "fp32",
                                   "input_size": list(size) if size else None}  # fmt: skip
    # tfseg.predict's writer on an image of another size: the dynamic IR pads it to the stride
    # and crops back, as the Keras path does
    from tfseg.evaluation import make_predict_fn, predict_image
    from tfseg.predict import ArtifactLabelWriter

    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    write = ArtifactLabelWriter(artifact)
    labels = write(image, "x", str(tmp_path))
    want = predict_image(make_predict_fn(load_model(model19)), image, 32)
    assert labels.shape == (50, 70) and write.num_classes == 19
    assert (labels == want).mean() > 0.99


def test_a_static_artifact_of_another_size_and_the_refusals(
    export_options, model19, model_path, tiny_data, tmp_path
):  # fmt: skip
    from tfseg import evaluate
    from tfseg.evaluation import evaluate_artifact
    from tfseg.export_lib.artifacts import open_artifact

    spec = _spec(tiny_data)
    out = str(tmp_path / "small.tflite")
    run_export(export_options(model_path=model19, output=out, format="tflite", target="cpu",
                              input_size=(32, 64), verify=False), **QUIET)  # fmt: skip
    got = evaluate_artifact(open_artifact(out), spec, "val", verbose=False,
                            save_predictions=str(tmp_path / "pred"))  # fmt: skip
    # each 64x128 image resized to 32x64 and the logits back: every labelled pixel counted
    assert got["num_images"] == 2 and 0.0 <= got["miou"] <= 1.0
    assert len(os.listdir(tmp_path / "pred")) >= 2
    assert sum(map(sum, got["confusion_matrix"])) > 0.9 * 2 * 64 * 128

    five = str(tmp_path / "five.tflite")  # the 5-class model: not the dataset's 19 classes
    run_export(export_options(output=five, format="tflite", target="cpu", input_size=(64, 128),
                              verify=False), **QUIET)  # fmt: skip
    with pytest.raises(ValueError, match="five.tflite predicts 5 classes .* has 19"):
        evaluate_artifact(open_artifact(five), spec, "val", verbose=False)

    with pytest.raises(FileNotFoundError, match="artifact not found: .*nothing.onnx"):
        open_artifact(str(tmp_path / "nothing.onnx"))
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(ExportError, match="cannot load the onnx artifact .*bad.onnx"):
        open_artifact(str(tmp_path / "bad.onnx"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(ExportError, match="not a CPU artifact .*folder"):
        open_artifact(str(tmp_path / "folder"))

    data_dir, options = tiny_data
    fv = flags.FlagValues()
    evaluate.define_flags(fv)
    fv(["evaluate", f"--model_path={out}", f"--data_dir={data_dir}", "--flip",
        f"--dataset_options={json.dumps(options)}"])  # fmt: skip
    with pytest.raises(ValueError, match="--flip need.* a .keras model"):
        evaluate.evaluate_artifact(fv)
    fv["flip"].value = False
    result, title = evaluate.evaluate_artifact(fv)
    assert result["num_images"] == 2 and title.startswith("tflite fp32 artifact (32x64) ")
