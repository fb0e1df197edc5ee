"""Each format end to end through ``run_export``: artifact written, verified against Keras,
report."""

import json
import os

import numpy as np
import pytest

import tfseg
from tfseg.export_lib import THRESHOLDS, ExportError, VerificationError, run_export

QUIET = {"log": lambda *_: None}


def _report(path):
    with open(path + ".report.json") as f:
        return json.load(f)


def test_saved_model_signatures_and_parity(export_options, tmp_path):
    import tensorflow as tf

    out = str(tmp_path / "sm")
    report = run_export(export_options(output=out, format="saved_model"), **QUIET)
    v = report["verification"]
    assert v["passed"] and v["argmax_agreement"] >= 0.999 and v["max_rel_logit_diff"] < 1e-4
    assert v["uint8_signature_agreement"] >= 0.999  # normalisation + padding inside the graph
    assert report["input_shape"] == [None, None, None, 3]  # generic target: dynamic
    assert report["saved_model"]["batchnorm_ops"] == 0  # folded: no rsqrt left
    assert len(report["batchnorm"]["folded"]) == report["batchnorm"]["batchnorm_layers"] > 0
    assert _report(out) == json.loads(json.dumps(report))
    loaded = tf.saved_model.load(out)
    assert set(loaded.signatures) == {"serving_default", "serving_uint8"}
    # the uint8 signature takes any size: pads to the stride inside the graph and crops back
    labels = loaded.signatures["serving_uint8"](images=tf.zeros((1, 50, 70, 3), tf.uint8))["labels"]
    assert labels.shape == (1, 50, 70) and labels.dtype == tf.int32


def test_saved_model_fixed_size(export_options, tmp_path):
    import tensorflow as tf

    out = str(tmp_path / "sm_fixed")
    run_export(
        export_options(output=out, format="saved_model", input_size=(64, 128), verify=False),
        **QUIET,
    )
    sig = tf.saved_model.load(out).signatures["serving_default"]
    assert sig.structured_input_signature[1]["images"].shape.as_list() == [None, 64, 128, 3]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tflite_parity(export_options, tmp_path, precision):
    out = str(tmp_path / f"m_{precision}.tflite")
    report = run_export(
        export_options(output=out, format="tflite", precision=precision, input_size=(64, 128)),
        **QUIET,
    )
    v = report["verification"]
    assert v["passed"], v["failures"]
    assert v["argmax_agreement"] >= THRESHOLDS[precision]["min_argmax_agreement"]
    ops = report["tflite"]["op_types"]
    # built-ins only; BN folded by the converter and by tfseg: no MUL / RSQRT left; the
    # transposed convolutions run as sub-pixel convolutions (CONV_2D + DEPTH_TO_SPACE)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE"} <= set(ops)
    assert not {"MUL", "RSQRT", "TRANSPOSE_CONV"} & set(ops)
    assert len(report["rewrites"]["subpixel_deconvs"]) == 3
    if precision == "int8":
        assert ops.get("QUANTIZE") == 1 and ops.get("DEQUANTIZE") == 1  # int8 inside, float edges
    if precision == "fp32":
        assert v["max_rel_logit_diff"] < 1e-4
    assert os.path.getsize(out) == report["artifact_bytes"]


@pytest.mark.parametrize("target,size", [("generic", None), ("tx2", (64, 128))])
def test_onnx_parity_and_report(export_options, tmp_path, target, size):
    import onnx

    out = str(tmp_path / f"m_{target}.onnx")
    report = run_export(
        export_options(output=out, format="onnx", target=target, input_size=size), **QUIET
    )
    v = report["verification"]
    assert v["passed"] and v["max_rel_logit_diff"] < 1e-4
    info = report["onnx"]
    assert info["opset"] == (13 if target == "tx2" else 17)
    assert info["batchnorm_like_nodes"] == 0 and "BatchNormalization" not in info["op_types"]
    model = onnx.load(out)
    dims = [d.dim_value or None for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ([1, 64, 128, 3] if target == "tx2" else [None, None, None, 3])
    assert [o.name for o in model.graph.output] == ["logits"]
    if target == "tx2":
        assert "Mul" not in info["op_types"]  # depthwise BN folded (tf2onnx alone leaves a Mul)
        # the x8 upsampling as Conv + DepthToSpace, the two x2 ones stay ConvTranspose
        assert info["op_types"]["DepthToSpace"] == 1 and info["op_types"]["ConvTranspose"] == 2


def test_verification_failure_publishes_nothing(export_options, tmp_path, monkeypatch):
    out = str(tmp_path / "strict.tflite")
    monkeypatch.setitem(THRESHOLDS, "fp32", {**THRESHOLDS["fp32"], "min_argmax_agreement": 1.01})
    with pytest.raises(VerificationError, match="argmax agreement"):
        run_export(export_options(output=out, format="tflite", input_size=(64, 128)), **QUIET)
    assert not os.path.exists(out)
    report = _report(out)
    assert report["artifact_written"] is False and report["verification"]["passed"] is False
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".strict")]  # no temp left


def test_input_size_not_divisible_by_stride(export_options, tmp_path):
    out = str(tmp_path / "m.tflite")
    with pytest.raises(
        ExportError, match=r"not divisible by the model's stride 32; use e\.g\. 96x128"
    ):
        run_export(export_options(output=out, format="tflite", input_size=(70, 100)), **QUIET)
    assert not os.listdir(tmp_path)


def test_jetson_target_needs_static_size(export_options, tmp_path):
    with pytest.raises(ExportError, match="--target=xavier needs a static input size"):
        run_export(
            export_options(output=str(tmp_path / "m.onnx"), format="onnx", target="xavier"), **QUIET
        )


def test_missing_dataset_is_a_clear_error(export_options, tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        run_export(
            export_options(
                output=str(tmp_path / "m.onnx"), format="onnx", dataset="cityscapes",
                data_dir=str(tmp_path / "nowhere"), dataset_options={},
            ),
            **QUIET,
        )  # fmt: skip
    assert not os.path.exists(tmp_path / "m.onnx")


def test_runners_agree_on_a_batch(export_options, tmp_path):
    """The in-memory runners used by --verify and the benchmark give the Keras logits."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite
    from tfseg.models.saving import load_model

    model = load_model(export_options().model_path)
    folded, _ = inference_model(model)
    x = np.random.default_rng(0).standard_normal((1, 64, 128, 3)).astype(np.float32)
    ref = np.asarray(model(x))
    dynamic = LiteRTRunner(convert_tflite(folded, input_size=(None, None)))
    np.testing.assert_allclose(dynamic(x), ref, atol=1e-4 * np.abs(ref).max())
    big = np.concatenate([x, x], axis=2)  # resized on the fly
    assert dynamic(big).shape == (1, 64, 256, 5)
    assert not dynamic.direct  # a dynamic-size model runs on the Interpreter


def test_litert_runner_writes_outputs_in_place(export_options):
    """A static-size model runs through LiteRT's CompiledModel with its outputs bound to numpy
    arrays: the Interpreter's logits exactly; an array returned, or a view of it, is never
    written again while referenced; a dropped one is written again (no new allocation)."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite
    from tfseg.models.saving import load_model

    folded, _ = inference_model(load_model(export_options().model_path))
    content = convert_tflite(folded, input_size=(64, 128))
    direct, plain = LiteRTRunner(content, threads=1), LiteRTRunner(content, direct=False)
    assert direct.direct and not plain.direct
    xs = np.random.default_rng(0).standard_normal((2, 1, 64, 128, 3)).astype(np.float32)
    want = [plain(x) for x in xs]
    first = direct(xs[0])
    view = direct(xs[1])[0, :3]  # only a view of the second array is kept
    np.testing.assert_array_equal(first, want[0])
    for _ in range(3):
        assert not np.array_equal(direct(xs[1]), want[0])
    np.testing.assert_array_equal(first, want[0])
    np.testing.assert_array_equal(view, want[1][0, :3])
    address = first.ctypes.data
    del first
    again = direct(xs[1])
    assert again.ctypes.data == address
    np.testing.assert_array_equal(again, want[1])
    assert direct.outputs(xs[0])["logits"].shape == (1, 64, 128, 5)


def test_tflite_int8_with_float_score_layers(export_options, tmp_path):
    """``--int8_float_layers=scores``: the class-score layers compute in float, the rest in int8."""
    import keras

    from tfseg.export_lib.tflite import LiteRTRunner, float_layer_names

    out = str(tmp_path / "mixed.tflite")
    report = run_export(
        export_options(output=out, format="tflite", precision="int8", input_size=(64, 128),
                       int8_float_layers="scores"),
        **QUIET,
    )  # fmt: skip
    v = report["verification"]
    assert v["passed"], v["failures"]
    info = report["tflite"]
    # SkipNet's score path: the 1x1 score convolutions, the x2 / x8 upsamplings, the fusing adds
    layers = info["int8_float_layers"]
    assert {"skipnet_score_p5", "skipnet_score_p4", "skipnet_score_p3", "skipnet_fuse_p4"} <= set(
        layers
    )
    assert not [n for n in layers if n.startswith("mobilenet_")]  # the encoder stays int8
    # float ops are exactly the score path's: convolutions (score and sub-pixel upsampling), adds,
    # depth-to-space; the depthwise encoder convolutions are all int8
    float_ops = info["float_ops"]
    assert float_ops.get("CONV_2D", 0) >= 3 and "ADD" in float_ops
    assert "DEPTHWISE_CONV_2D" not in float_ops
    ops = info["op_types"]
    assert ops["QUANTIZE"] >= 1 and ops["DEQUANTIZE"] >= 1
    # the full-int8 export of the same model has no float computation
    full = run_export(
        export_options(output=str(tmp_path / "full.tflite"), format="tflite", precision="int8",
                       input_size=(64, 128)),
        **QUIET,
    )  # fmt: skip
    assert full["tflite"]["float_ops"] == {} and full["tflite"]["int8_float_layers"] == []
    # the float score path brings the artifact closer to Keras than full int8 does
    assert v["mean_abs_logit_diff"] <= full["verification"]["mean_abs_logit_diff"]
    # the selection on the saved model: the same names as the report's
    model = keras.models.load_model(export_options().model_path, compile=False)
    assert set(float_layer_names(model, "scores")) == set(layers)
    assert LiteRTRunner(out)(np.zeros((1, 64, 128, 3), np.float32)).shape == (1, 64, 128, 5)


def test_score_layers_skip_encoder_layers_with_as_many_channels():
    """With 64 classes, ResNet18's 64-channel layers are not class scores: their consumers lead
    elsewhere. UNet's classifier, its upsampling and the output resize are."""
    from tfseg.export_lib.tflite import score_layers

    model = tfseg.build_model("unet", 64, encoder="resnet18", input_shape=(64, 128, 3))
    picked = score_layers(model)
    assert not [n for n in picked if n.startswith("resnet18_")]
    assert picked[-3:] == ["unet_score", "unet_up_out", "logits"]
    model = tfseg.build_model("unet", 19, encoder="resnet18", input_shape=(64, 128, 3))
    assert score_layers(model) == ["unet_score", "unet_up_out", "logits"]


def test_int8_float_layers_bad_values(export_options, tmp_path):
    from tfseg.export_lib.tflite import float_layer_names

    out = str(tmp_path / "m.tflite")
    with pytest.raises(ExportError, match="'no_such_layer\\*' matches no layer"):
        run_export(
            export_options(output=out, format="tflite", precision="int8", input_size=(64, 128),
                           int8_float_layers="skipnet_score_*,no_such_layer*"),
            **QUIET,
        )  # fmt: skip
    with pytest.raises(
        ExportError, match="--int8_float_layers is for --format=tflite or onnx with --precision"
    ):
        run_export(
            export_options(output=out, format="tflite", precision="fp16", input_size=(64, 128),
                           int8_float_layers="scores"),
            **QUIET,
        )  # fmt: skip
    assert not os.listdir(tmp_path)
    import keras

    model = keras.models.load_model(export_options().model_path, compile=False)
    assert float_layer_names(model, "") == []
    picked = float_layer_names(model, "skipnet_score_p5, skipnet_score_*")
    scores = {layer.name for layer in model.layers if layer.name.startswith("skipnet_score_")}
    assert picked[0] == "skipnet_score_p5" and len(picked) == len(set(picked))  # in order, once
    assert set(picked) == scores and len(scores) >= 3
