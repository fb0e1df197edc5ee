"""Export of ``--task=instance`` models: both outputs (logits, instance centres) in every format.

The instance head's offset convolutions are zero-initialised (an untrained head outputs each pixel's
own position); the tests give them random weights so that the iterative bilinear sampling and the
nearest guided upsampling really move the centres, and compare the artifact with Keras.
"""

import json

import keras
import numpy as np
import pytest
from export_helpers import randomize_batchnorm

from tfseg.export_lib import ExportError, run_export
from tfseg.export_lib.graph import output_names

QUIET = {"log": lambda *_: None}
SIZE = (64, 128)


def _instance_model(name="skipnet", encoder="mobilenet", iterations=5, seed=3, **kw):
    from tfseg.instance.model import build_instance_model

    keras.utils.set_random_seed(seed)
    if encoder is not None:
        kw["encoder_kwargs"] = {"alpha": 0.25}
    model = build_instance_model(name, 19, encoder=encoder, iterations=iterations, **kw)
    randomize_batchnorm(model, seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name in ("instance_table_conv", "instance_up_offsets_conv"):
            kernel, bias = layer.get_weights()
            layer.set_weights(
                [
                    rng.normal(0, 0.3, kernel.shape).astype("float32"),
                    rng.normal(0, 0.3, bias.shape).astype("float32"),
                ]
            )
    return model


@pytest.fixture(scope="module")
def instance_model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("instance_model") / "inst.keras")
    _instance_model().save(path)
    return path


def test_output_names():
    model = _instance_model()
    assert output_names(model) == ["logits", "instance"]
    two = keras.Model(model.inputs, [model.outputs[0], model.outputs[0]])
    with pytest.raises(ExportError, match="2 outputs"):
        output_names(two)


@pytest.mark.parametrize(
    "fmt,target,suffix",
    [
        ("saved_model", "generic", ""),
        ("tflite", "generic", ".tflite"),
        ("onnx", "tx2", ".onnx"),
    ],
)
def test_instance_model_exports_both_outputs(
    export_options, instance_model_path, tmp_path, fmt, target, suffix
):
    from tfseg.models.saving import load_model

    out = str(tmp_path / f"inst{suffix}")
    report = run_export(
        export_options(
            model_path=instance_model_path,
            output=out,
            format=fmt,
            target=target,
            input_size=SIZE,
        ),
        **QUIET,
    )
    v = report["verification"]
    assert v["passed"], v["failures"]
    assert report["outputs"] == ["logits", "instance"]
    assert v["centre_agreement"] >= 0.999 and v["max_abs_centre_diff"] < 1.0
    assert v["argmax_agreement"] >= 0.999
    if fmt == "saved_model":
        assert v["uint8_signature_agreement"] >= 0.999

    # the artifact's centres equal the Keras model's on an image of the dataset
    model = load_model(instance_model_path)
    x = np.random.default_rng(0).normal(0, 1, (1, *SIZE, 3)).astype("float32")
    logits, centres = (np.asarray(t) for t in model(x, training=False))
    if fmt == "saved_model":
        from tfseg.export_lib.saved_model import SavedModelRunner

        runner = SavedModelRunner(out)
        assert runner.uint8_fn(images=np.zeros((1, *SIZE, 3), np.uint8))[
            "instance"
        ].shape == (
            1,
            *SIZE,
            2,
        )
    elif fmt == "tflite":
        from tfseg.export_lib.tflite import LiteRTRunner

        runner = LiteRTRunner(out)
    else:
        import onnx

        from tfseg.export_lib.onnx_export import OnnxRunner, check_onnx_model

        proto = onnx.load(out)
        assert sorted(o.name for o in proto.graph.output) == ["instance", "logits"]
        assert (
            check_onnx_model(proto, "tx2") == []
        )  # TensorRT 8.2's list, with the sampler
        assert "GridSample" not in {n.op_type for n in proto.graph.node}
        runner = OnnxRunner(proto)
    got = runner.outputs(x)
    assert set(got) == {"logits", "instance"}
    assert got["instance"].shape == centres.shape == (1, *SIZE, 2)
    assert np.abs(got["instance"] - centres).max() < 1e-2
    assert not np.allclose(
        centres[0, :, :, 1], np.arange(SIZE[1])[None, :]
    )  # the centres moved
    np.testing.assert_allclose(runner(x), logits, atol=1e-3 * np.abs(logits).max())
    with open(out + ".report.json") as f:
        assert json.load(f)["verification"]["centre_agreement"] == v["centre_agreement"]


def test_broken_instance_artifact_fails_verification(
    export_options, instance_model_path, tmp_path, monkeypatch
):
    """Centres off by 3 px fail --verify, and nothing is published at --output."""
    from tfseg.export_lib import VerificationError, onnx_export

    original = onnx_export.OnnxRunner.outputs

    def shifted(self, x, names=None):
        out = original(self, x, names)
        if "instance" in out:
            out["instance"] = out["instance"] + 3.0
        return out

    monkeypatch.setattr(onnx_export.OnnxRunner, "outputs", shifted)
    out = str(tmp_path / "broken.onnx")
    with pytest.raises(VerificationError, match="instance centres agree"):
        run_export(
            export_options(
                model_path=instance_model_path,
                output=out,
                format="onnx",
                input_size=SIZE,
            ),
            **QUIET,
        )
    import os

    assert not os.path.exists(out)
    with open(out + ".report.json") as f:
        report = json.load(f)
    assert (
        report["artifact_written"] is False
        and report["verification"]["centre_agreement"] == 0.0
    )


@pytest.mark.slow
def test_ssn_instance_exports_for_tx2(export_options, tmp_path):
    """The paper's network with its instance module: ONNX for TensorRT 8.2 and TFLite built-ins."""
    path = str(tmp_path / "ssn_inst.keras")
    _instance_model("ssn", None, iterations=3).save(path)  # t=30 in docs/instance.md; 3 here
    for fmt, target, suffix in (
        ("onnx", "tx2", ".onnx"),
        ("tflite", "generic", ".tflite"),
    ):
        report = run_export(
            export_options(
                model_path=path,
                output=str(tmp_path / f"ssn{suffix}"),
                format=fmt,
                target=target,
                input_size=SIZE,
            ),
            **QUIET,
        )
        v = report["verification"]
        assert v["passed"] and v["centre_agreement"] >= 0.999, v
        ops = report["onnx" if fmt == "onnx" else "tflite"]["op_types"]
        assert ("Gather" if fmt == "onnx" else "GATHER") in ops


def test_int8_tflite_of_an_instance_model_is_refused(
    export_options, instance_model_path, tmp_path
):
    import os

    out = str(tmp_path / "inst_int8.tflite")
    with pytest.raises(ExportError, match="int8 cannot carry the instance output"):
        run_export(
            export_options(
                model_path=instance_model_path,
                output=out,
                format="tflite",
                precision="int8",
                input_size=SIZE,
            ),
            **QUIET,
        )
    assert not os.path.exists(out) and not os.path.exists(out + ".report.json")
