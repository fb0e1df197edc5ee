"""``--format=openvino``: OpenVINO IR folders (fp32, bf16, NNCF int8) from the ONNX graph, verified
against Keras, written atomically; its runner; and its refusals."""

import os

import numpy as np
import pytest

from tfseg.export_lib import THRESHOLDS, ExportError, run_export

pytest.importorskip("openvino")

QUIET = {"log": lambda *_: None}


def _bf16_supported():
    from tfseg.export_lib.openvino_export import bf16_supported

    return bf16_supported()


@pytest.mark.parametrize("precision,size", [("fp32", None), ("bf16", None), ("int8", (64, 128))])
def test_openvino_parity_and_report(export_options, tmp_path, precision, size):
    from tfseg.export_lib.openvino_export import OpenVINORunner

    if precision == "bf16" and not _bf16_supported():
        pytest.skip("no bfloat16 units here (test_openvino_bf16_is_refused_without_...)")

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
    assert report["openvino"]["pool_concat_adds"] == 0  # SkipNet-MobileNet has no downsampler
    assert report["rewrites"]["shuffle_as_conv"] == []
    hint = "bf16" if precision == "bf16" else "f32"
    assert report["openvino"]["inference_precision_hint"].startswith(hint + " ")
    # the runner reads the precision stored in the IR; f32 is asked for explicitly, since OpenVINO
    # itself would run a float IR in bf16 on a CPU with bfloat16 units
    assert OpenVINORunner(out, threads=1).inference_precision == hint
    if precision in ("fp32", "bf16"):
        if precision == "fp32":
            assert v["max_rel_logit_diff"] < 1e-4
        else:  # bfloat16 rounds: not the fp32 result, but within its thresholds
            assert 1e-5 < v["max_rel_logit_diff"] <= THRESHOLDS["bf16"]["max_rel_logit_diff"]
            assert OpenVINORunner(out, threads=1, hint="f32").inference_precision == "f32"
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


def test_openvino_bf16_is_refused_without_bfloat16_units(export_options, tmp_path, monkeypatch):
    """On a CPU without AVX-512 BF16 / AMX, OpenVINO would run a bf16 hint in float32: the export
    refuses (as "not applicable", which --format=auto skips) instead of writing an unverified IR;
    and bf16 is OpenVINO's only."""
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.errors import NotApplicable

    monkeypatch.setattr(ovx, "bf16_supported", lambda: False)
    out = str(tmp_path / "m_openvino")
    with pytest.raises(NotApplicable, match="needs a CPU with bfloat16 units .*AVX-512 BF16"):
        run_export(export_options(output=out, format="openvino", precision="bf16"), **QUIET)
    with pytest.raises(ExportError, match="bf16 is OpenVINO's .* not --format=tflite"):
        run_export(export_options(output=str(tmp_path / "m.tflite"), format="tflite",
                                  precision="bf16", input_size=(64, 128)), **QUIET)  # fmt: skip
    assert not os.listdir(tmp_path)


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


def _downsamplers(channels):
    """A Keras model with downsamplers on a ``channels``-channel tensor (the 3-channel input
    itself, or a 1x1 convolution of it), each read by a 1x1
    convolution: ReLU on the convolution branch (LEDNet, AGLNet), ReLU6 (a Clip in ONNX) with
    the pool first, and BN + PReLU after the concatenation (ENet, ERFNet)."""
    import keras
    from export_helpers import randomize_batchnorm

    from tfseg.layers.downsample import conv_pool_downsample

    inp = keras.Input((16, 24, 3), batch_size=1)
    x = inp if channels == 3 else keras.layers.Conv2D(channels, 1, name="widen")(inp)
    a = conv_pool_downsample(x, 16, activation="relu", name="relu_branch")
    scaled = keras.layers.Rescaling(2.0, name="c6_scale")(x)  # a pool tf2onnx cannot share
    conv = keras.layers.Conv2D(13, 3, strides=2, padding="same", name="c6_conv")(scaled)
    conv = keras.layers.ReLU(6.0, name="c6_relu6")(conv)
    pool = keras.layers.MaxPooling2D(2, name="c6_pool")(scaled)
    b = keras.layers.Concatenate(name="c6_concat")([pool, conv])  # the pool first
    c = conv_pool_downsample(x, 16, pool_size=2, normalize="concat", activation="prelu",
                             name="after_concat")  # fmt: skip
    heads = [keras.layers.Conv2D(4, 1, name=f"head{i}")(t) for i, t in enumerate((a, b, c))]
    return randomize_batchnorm(keras.Model(inp, keras.layers.Concatenate(name="out")(heads)))


def test_openvino_runner_writes_outputs_into_arrays_the_caller_keeps():
    """Static float32 outputs are written into pooled arrays bound to the request: a result the
    caller holds (or a view of it) is never written again, a dropped one is reused; a model
    with a dynamic output shape gets copies."""
    import openvino as ov
    from openvino import opset13 as ops

    from tfseg.export_lib.openvino_export import OpenVINORunner

    def doubling(shape):
        x = ops.parameter(shape, np.float32, name="images")
        y = ops.multiply(x, ops.constant(np.float32(2)))
        y.output(0).get_tensor().set_names({"logits"})
        return OpenVINORunner(ov.Model([y], [x]), threads=1)

    a = np.arange(72, dtype=np.float32).reshape(1, 4, 6, 3)
    runner = doubling([1, 4, 6, 3])
    first = runner(a)
    view = runner(a + 1)[0, :2]  # only a view of the second result is kept
    third = runner.outputs(a + 2)["logits"]
    np.testing.assert_array_equal(first, 2 * a)
    np.testing.assert_array_equal(view, 2 * (a + 1)[0, :2])
    np.testing.assert_array_equal(third, 2 * (a + 2))
    assert not np.shares_memory(first, third) and not np.shares_memory(view, third)
    seen = set()
    for k in range(4):  # each result dropped at once: the pool hands the same arrays out again
        seen.add(runner(a + k).ctypes.data)
    assert len(seen) <= 2
    dynamic = doubling([1, -1, -1, 3])
    assert dynamic._shapes is None
    np.testing.assert_array_equal(dynamic(a), 2 * a)


def test_pool_concat_adds_are_exact_and_reach_openvino():
    """The downsamplers on the 3-channel input become Add(act(Conv with zero channels), 1x1
    placement of the pool): no Concat left, the same values in onnxruntime, and OpenVINO's
    conversion applies it (``info``) and matches Keras; on a wider input nothing changes."""
    import onnxruntime as ort

    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.onnx_layout import pool_concat_adds

    model = inference_model_of(_downsamplers(3))
    xs = np.random.default_rng(1).standard_normal((1, 16, 24, 3)).astype("float32")
    proto = convert_onnx(model, opset=17, input_shape=(1, 16, 24), nhwc_upsamplings=False)
    plain = proto.SerializeToString()
    assert pool_concat_adds(proto) == 3
    concats = [n.name for n in proto.graph.node if n.op_type == "Concat"]
    assert len(concats) == 1 and "/out_" in concats[0], concats  # only the heads' concatenation

    def run(content):
        session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
        return session.run(None, {"images": xs})[0]

    want = np.asarray(model(xs))
    np.testing.assert_allclose(run(plain), want, atol=1e-5)
    np.testing.assert_allclose(run(proto.SerializeToString()), run(plain), atol=1e-6)
    info = {}
    compiled = ovx.OpenVINORunner(ovx.from_onnx(
        convert_onnx(model, opset=17, input_shape=(1, 16, 24), nhwc_upsamplings=False),
        info=info))  # fmt: skip
    assert info["pool_concat_adds"] == 3
    np.testing.assert_allclose(compiled(xs), want, atol=1e-4)

    wide = inference_model_of(_downsamplers(8))
    assert pool_concat_adds(
        convert_onnx(wide, opset=17, input_shape=(1, 16, 24), nhwc_upsamplings=False)) == 0


def inference_model_of(model):
    from tfseg.export_lib import inference_model

    return inference_model(model)[0]
