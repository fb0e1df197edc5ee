"""int8 ONNX (onnxruntime QDQ) and ``--format=auto --target=cpu``: the guard, the choice, the
files, the errors."""

import json
import os

import pytest

from tfseg.export_lib import THRESHOLDS, ExportError, VerificationError, run_export
from tfseg.export_lib.auto import (
    CANDIDATES,
    EXTENSIONS,
    candidates_for,
    output_stem,
    run_auto,
)

QUIET = {"log": lambda *_: None}


def test_onnx_int8_is_qdq_and_passes_the_int8_guard(export_options, tmp_path):
    import onnx

    out = str(tmp_path / "m_int8.onnx")
    report = run_export(
        export_options(output=out, format="onnx", precision="int8", target="cpu",
                       input_size=(64, 128)), **QUIET
    )  # fmt: skip
    v = report["verification"]
    assert v["passed"] and v["argmax_agreement"] >= THRESHOLDS["int8"]["min_argmax_agreement"]
    info = report["onnx"]["int8"]
    assert info["calibration_images"] == 4 and info["weights"] == "int8, per output channel"
    graph = onnx.load(out).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") == info["quantize_linear_nodes"] > 5
    assert "DequantizeLinear" in ops and "Conv" in ops
    # float edges: the same input/output contract as the fp32 export
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == [
        "logits"
    ]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # the convolution weights are stored as int8 initializers (QDQ)
    int8 = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and t.dims]
    assert len(int8) >= ops.count("Conv") > 0
    assert info["float_nodes"] == []  # SkipNet's logits come from a transposed convolution


@pytest.mark.parametrize("nhwc", [True, False])
def test_onnx_int8_final_resize_stays_float(nhwc):
    """The Resize that makes the logits (the last op, or before the transpose to NHWC) is left
    out of quantization: it takes the dequantized low-resolution scores, and the full-size
    logits are never rounded to 8 bits."""
    import keras
    import numpy as np
    import onnx

    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx
    from tfseg.export_lib.pipeline import rewrites
    from tfseg.layers.resize import BilinearUpsample

    inp = keras.Input((32, 64, 3))
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(4, 1, name="scores")(x)
    model = keras.Model(inp, keras.layers.Activation("linear", name="logits")(
        BilinearUpsample(4, name="final_up")(x)))
    copy = inference_model(model, **rewrites("onnx"))[0]
    proto = convert_onnx(copy, opset=17, input_shape=(1, 32, 64), nhwc_upsamplings=nhwc)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 32, 64, 3)).astype(np.float32) for _ in range(4)]
    info = {}
    content = quantize_onnx(proto, xs, info=info)
    graph = onnx.load_from_string(content).graph
    producer = {o: n for n in graph.node for o in n.output}
    node = producer["logits"]
    while node.op_type == "Transpose":
        node = producer[node.input[0]]
    assert node.op_type == "Resize" and info["float_nodes"] == [node.name]
    assert producer[node.input[0]].op_type == "DequantizeLinear"
    assert [n.op_type for n in graph.node].count("QuantizeLinear") >= 2  # the rest is int8
    got, want = OnnxRunner(content)(xs[0]), np.asarray(model(xs[0]))
    assert np.abs(got - want).mean() < 0.05 * np.abs(want).mean()


def test_onnx_int8_rewrites_multiplier_depthwise_and_average_pools():
    """The int8 ONNX export copy (``rewrites("onnx", "int8")``) writes a depthwise convolution
    with a channel multiplier as a 0/1 1x1 convolution + a multiplier-1 depthwise one and the
    average poolings as depthwise convolutions of constant weights (onnxruntime's int8 kernels
    for both are several times slower than fp32); the fp32 export keeps them. The rewritten
    graph computes the same function (fp32 ONNX of it against Keras), and its int8 version stays
    close to Keras."""
    import keras
    import numpy as np
    import onnx

    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx
    from tfseg.export_lib.pipeline import rewrites

    inp = keras.Input((32, 64, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    a = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                                     activation="relu", name="dw_x2")(x)
    b = keras.layers.AveragePooling2D(2, name="avg_valid")(x)
    b = keras.layers.Conv2D(16, 1, name="b_proj")(b)
    c = keras.layers.AveragePooling2D(3, strides=1, padding="same", name="avg_same")(a)
    y = keras.layers.Add(name="add")([a, b, c])
    model = keras.Model(inp, keras.layers.Conv2D(5, 1, name="logits")(y))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 32, 64, 3)).astype(np.float32) for _ in range(4)]
    want = np.asarray(model(xs[0]))

    def graph_of(precision):
        copy = inference_model(model, **rewrites("onnx", precision))[0]
        return convert_onnx(copy, opset=17, input_shape=(1, 32, 64))

    def grouped(proto):
        shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}
        return [(next(a.i for a in n.attribute if a.name == "group"), shapes[n.input[1]])
                for n in proto.graph.node if n.op_type == "Conv"
                and any(a.name == "group" and a.i > 1 for a in n.attribute)]

    fp32 = graph_of("fp32")
    assert [n.op_type for n in fp32.graph.node].count("AveragePool") == 2
    assert any(w[0] == 2 * group for group, w in grouped(fp32))  # multiplier 2 kept
    int8_copy = graph_of("int8")
    assert "AveragePool" not in [n.op_type for n in int8_copy.graph.node]
    assert all(w[0] == group and w[1] == 1 for group, w in grouped(int8_copy))
    assert len(grouped(int8_copy)) == 3  # the multiplier-1 depthwise and the two pools
    np.testing.assert_allclose(OnnxRunner(int8_copy)(xs[0]), want, atol=1e-4)
    content = quantize_onnx(int8_copy, xs)
    ops = [n.op_type for n in onnx.load_from_string(content).graph.node]
    assert "AveragePool" not in ops and "QuantizeLinear" in ops
    got = OnnxRunner(content)(xs[0])
    assert np.abs(got - want).mean() < 0.05 * np.abs(want).mean()


def test_onnx_int8_keeps_downsampler_pool_and_concat_in_float():
    """``float_pool_concats=True``: ENet's / ERFNet's downsampler (a strided convolution and a
    max pooling of one input, concatenated) stays float in the int8 ONNX (``pool_concats``); a
    concatenation without a max-pooled input stays int8. The default quantizes it."""
    import keras
    import numpy as np
    import onnx

    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.onnx_int8 import pool_concats, quantize_onnx
    from tfseg.export_lib.pipeline import rewrites

    inp = keras.Input((32, 64, 3))
    x = keras.layers.Conv2D(13, 3, strides=2, padding="same", name="down_conv")(inp)
    p = keras.layers.MaxPooling2D(2, name="down_pool")(inp)
    x = keras.layers.ReLU(name="down_relu")(
        keras.layers.Concatenate(name="down_concat")([x, p]))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(x)
    b = keras.layers.Conv2D(8, 1, activation="relu", name="b")(x)
    y = keras.layers.Concatenate(name="plain_concat")([a, b])
    model = keras.Model(inp, keras.layers.Conv2D(5, 1, name="logits")(y))
    proto = convert_onnx(inference_model(model, **rewrites("onnx", "int8"))[0], opset=17,
                         input_shape=(1, 32, 64))
    names = pool_concats(proto)
    kinds = {n.name: n.op_type for n in proto.graph.node}
    assert sorted(kinds[n] for n in names) == ["Concat", "MaxPool"]
    assert all("down" in n for n in names)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 32, 64, 3)).astype(np.float32) for _ in range(4)]
    info = {}
    content = quantize_onnx(proto, xs, info=info, float_pool_concats=True)
    assert set(names) <= set(info["float_nodes"])
    graph = onnx.load_from_string(content).graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in graph.node:
        if n.op_type not in ("MaxPool", "Concat"):
            continue
        from_dq = [producer[i].op_type == "DequantizeLinear" for i in n.input if i in producer]
        if n.name in names and n.op_type == "MaxPool":  # float out, straight into the Concat
            assert [c.op_type for c in consumers[n.output[0]]] == ["Concat"]
        elif n.name in names:  # the float Concat reads the pool's float output
            assert not all(from_dq), n.name
        else:  # the plain concatenation: int8 in (dequantized inputs), int8 out
            assert from_dq and all(from_dq), n.name
            assert [c.op_type for c in consumers[n.output[0]]] == ["QuantizeLinear"]
    want = np.asarray(model(xs[0]))
    got = OnnxRunner(content)(xs[0])
    assert np.abs(got - want).mean() < 0.05 * np.abs(want).mean()
    off = {}
    quantize_onnx(proto, xs, info=off)
    assert not set(names) & set(off["float_nodes"])


def test_onnx_int8_float_downsamplers_option(export_options, tmp_path):
    """``--format=onnx --precision=int8 --int8_float_layers=downsamplers`` keeps the
    downsamplers' max pooling and concatenation in float (the report's ``float_nodes``); a model
    without them is refused (``NotApplicable``), and other values are bad options; nothing is
    written in either case."""
    import keras

    from tfseg.export_lib.errors import NotApplicable

    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(13, 3, strides=2, padding="same", name="down_conv")(inp)
    p = keras.layers.MaxPooling2D(2, name="down_pool")(inp)
    x = keras.layers.ReLU()(keras.layers.Concatenate(name="down_concat")([x, p]))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="body")(x)
    x = keras.layers.Conv2D(5, 1, name="scores")(x)
    y = keras.layers.UpSampling2D(2, interpolation="bilinear", name="up")(x)
    path = str(tmp_path / "down.keras")
    keras.Model(inp, keras.layers.Activation("linear", name="logits")(y)).save(path)
    out = tmp_path / "out"
    out.mkdir()
    report = run_export(
        export_options(model_path=path, output=str(out / "m.onnx"), format="onnx",
                       precision="int8", input_size=(64, 128), verify=False,
                       int8_float_layers="downsamplers"), **QUIET
    )  # fmt: skip
    floats = report["onnx"]["int8"]["float_nodes"]
    assert any("down_pool" in n for n in floats) and any("down_concat" in n for n in floats)
    assert sorted(os.listdir(out)) == ["m.onnx", "m.onnx.report.json"]
    with pytest.raises(NotApplicable, match="no max pooling that a concatenation reads"):
        run_export(export_options(output=str(out / "s.onnx"), format="onnx", precision="int8",
                                  input_size=(64, 128), int8_float_layers="downsamplers"),
                   **QUIET)  # fmt: skip
    with pytest.raises(ExportError, match="takes --int8_float_layers=downsamplers only"):
        run_export(export_options(output=str(out / "t.onnx"), format="onnx", precision="int8",
                                  input_size=(64, 128), int8_float_layers="scores"), **QUIET)
    assert sorted(os.listdir(out)) == ["m.onnx", "m.onnx.report.json"]


def test_onnx_int8_calibrates_one_image_at_a_time_to_the_same_ranges():
    """``quantize_onnx`` calibrates one image at a time (``CalibStridedMinMax``: MinMax holding all
    images' activations ran SegNet at 512x1024 out of 24 GB) and merges the ranges: the int8
    model is the one calibrated on all images at once, scales and zero points included, with
    the range of each tensor set by different images."""
    import tempfile

    import keras
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.onnx_int8 import _Reader, quantize_onnx

    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, name="logits")(x))
    proto = convert_onnx(model, opset=17, input_shape=(1, 16, 32))
    rng = np.random.default_rng(0)
    # one image sets the largest values, another the most negative ones
    xs = [g * rng.standard_normal((1, 16, 32, 3)).astype(np.float32) for g in (0.5, 3.0, 1.0, 2.0)]
    xs[2][0, 0, 0] = -40.0
    got = onnx.load_from_string(quantize_onnx(proto, xs, reduce_range=False))
    with tempfile.TemporaryDirectory() as work:
        src, dst = os.path.join(work, "fp32.onnx"), os.path.join(work, "int8.onnx")
        onnx.save(proto, src)
        reader = type("Reader", (_Reader, CalibrationDataReader), {})(
            proto.graph.input[0].name, xs
        )
        quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=False, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        want = onnx.load(dst)
    values = {t.name: numpy_helper.to_array(t) for t in want.graph.initializer}
    assert {t.name for t in got.graph.initializer} == set(values)
    for t in got.graph.initializer:
        np.testing.assert_array_equal(numpy_helper.to_array(t), values[t.name], err_msg=t.name)
    # and the ranges differ from any single image's
    single = onnx.load_from_string(quantize_onnx(proto, xs[1:2], reduce_range=False))
    scales = {t.name: numpy_helper.to_array(t) for t in single.graph.initializer
              if t.name.endswith("_scale")}
    assert any(not np.array_equal(scales[k], values[k]) for k in scales)


def test_onnx_int8_is_refused_for_tensorrt_targets(export_options, tmp_path):
    for target in ("tx2", "xavier"):
        with pytest.raises(ExportError, match="let TensorRT calibrate int8|does not support"):
            run_export(
                export_options(output=str(tmp_path / "m.onnx"), format="onnx", precision="int8",
                               target=target, input_size=(64, 128)), **QUIET
            )  # fmt: skip
    assert not os.listdir(tmp_path)


def test_auto_publishes_the_fastest_passing_candidate(export_options, tmp_path):
    out = str(tmp_path / "deploy" / "model.tflite")  # an extension is replaced by the winner's
    report = run_auto(
        export_options(output=out, format="auto", target="cpu", precision="int8",
                       input_size=(64, 128)), warmup=1, runs=3, **QUIET
    )  # fmt: skip
    auto = report["auto"]
    stem = str(tmp_path / "deploy" / "model")
    with open(stem + ".auto.json") as f:
        assert json.load(f) == json.loads(json.dumps(auto))
    names = [c["candidate"] for c in auto["candidates"]]
    assert names == [c[0] for c in CANDIDATES]
    # SkipNet-MobileNet has no ENet / ERFNet downsampler: that candidate is skipped, not failed;
    # so is bf16 on a CPU without bfloat16 units
    skipped = {c["candidate"]: c for c in auto["candidates"] if c.get("not_applicable")}
    from tfseg.export_lib.openvino_export import bf16_supported

    assert set(skipped) == {"onnx_int8_downsamplers_float"} | (
        set() if bf16_supported() else {"openvino_bf16"})
    assert not any(c["passed"] for c in skipped.values())
    assert skipped["onnx_int8_downsamplers_float"]["reason"].startswith(
        "not applicable: --int8_float_layers=downsamplers")
    passed = [c for c in auto["candidates"] if c["passed"]]
    assert passed, auto
    fastest = min(passed, key=lambda c: c["latency"]["median_ms"])
    assert auto["chosen"] == fastest["candidate"] and fastest.get("chosen") is True
    for c in passed:  # every passing candidate was timed and met its precision's guard
        assert c["latency"]["runs"] == 3 and c["latency"]["median_ms"] > 0
        floor = THRESHOLDS[c["precision"]]["min_argmax_agreement"]
        assert c["verification"]["argmax_agreement"] >= floor
    ext = EXTENSIONS[fastest["format"]]  # .tflite, .onnx or the IR folder _openvino
    assert report["output"] == os.path.abspath(stem + ext) == auto["artifact"]
    assert report["precision"] == fastest["precision"] and report["format"] == fastest["format"]
    # only the winner, its report and the auto summary are left; no temporary folder
    assert sorted(os.listdir(tmp_path / "deploy")) == sorted(
        ["model" + ext, "model" + ext + ".report.json", "model.auto.json"]
    )
    with open(stem + ext + ".report.json") as f:
        assert json.load(f)["auto"]["chosen"] == fastest["candidate"]
    assert auto["cpu"] and "(" in auto["cpu"]  # the CPU and its flags, next to the timings


def test_auto_precision_floor_and_nothing_published_when_no_candidate_passes(
    export_options, tmp_path, monkeypatch
):
    assert [c[2] for c in candidates_for("fp32")] == ["fp32"] * 3
    assert [c[0] for c in candidates_for("bf16") if c[2] != "fp32"] == ["openvino_bf16"]
    assert len(candidates_for("int8")) == len(CANDIDATES)
    for p in ("fp32", "int8"):
        monkeypatch.setitem(THRESHOLDS, p, {**THRESHOLDS[p], "min_argmax_agreement": 1.01})
    out = str(tmp_path / "model")
    with pytest.raises(VerificationError, match="no candidate passed verification"):
        run_auto(
            export_options(output=out, format="auto", target="cpu", precision="fp32",
                           input_size=(64, 128)), warmup=0, runs=1, **QUIET
        )  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["model.auto.json"]
    with open(out + ".auto.json") as f:
        auto = json.load(f)
    assert auto["chosen"] is None and [c["precision"] for c in auto["candidates"]] == ["fp32"] * 3
    assert all(not c["passed"] and "argmax agreement" in c["reason"] for c in auto["candidates"])


def test_auto_bad_options(export_options, tmp_path):
    with pytest.raises(ExportError, match="--format=auto .* is for --target=cpu"):
        run_auto(export_options(output=str(tmp_path / "m"), format="auto", target="generic"))
    with pytest.raises(ExportError, match="tries int8 with the class-score layers"):
        run_auto(export_options(output=str(tmp_path / "m"), format="auto", target="cpu",
                                precision="int8", int8_float_layers="scores"))  # fmt: skip
    with pytest.raises(ExportError, match="needs a static input size"):
        run_auto(export_options(output=str(tmp_path / "m"), format="auto", target="cpu"), **QUIET)
    assert not os.listdir(tmp_path)
    assert output_stem("a/b.onnx") == "a/b" and output_stem("a/b.v2") == "a/b.v2"


def test_cli_auto_defaults_to_allowing_int8():
    from absl import flags

    from tfseg import export

    fv = flags.FlagValues()
    export.define_flags(fv)
    fv(["prog", "--model_path=m.keras", "--output=o", "--format=auto", "--target=cpu"])
    assert export.options_from_flags(fv).precision == "int8"
    fv = flags.FlagValues()
    export.define_flags(fv)
    fv(["prog", "--model_path=m.keras", "--output=o", "--format=auto", "--precision=fp32"])
    assert export.options_from_flags(fv).precision == "fp32"
    fv = flags.FlagValues()
    export.define_flags(fv)
    fv(["prog", "--model_path=m.keras", "--output=o.onnx", "--format=onnx"])
    assert export.options_from_flags(fv).precision == "fp32"
