"""BatchNorm folding, op-name -> layer mapping, option checks, the verification judge."""

import keras
import numpy as np
import pytest
from export_helpers import randomize_batchnorm

import tfseg
from tfseg.export_lib import (
    ExportError,
    ExportOptions,
    check_options,
    inference_model,
    layer_for_op,
)
from tfseg.export_lib.pipeline import rewrites
from tfseg.export_lib.verify import judge


def _every_conv_kind():
    """Each foldable convolution type followed by BN, plus a BN that cannot be folded."""
    inp = keras.Input((16, 16, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inp)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(name="dw_bn")(x)
    x = keras.layers.SeparableConv2D(8, 3, padding="same", name="sep")(x)
    x = keras.layers.BatchNormalization(name="sep_bn")(x)
    x = keras.layers.Conv2D(8, 1, groups=2, name="gconv")(x)
    x = keras.layers.BatchNormalization(name="gconv_bn")(x)
    x = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="deconv")(x)
    y = keras.layers.BatchNormalization(name="deconv_bn")(x)
    z = keras.layers.Add(name="add")([y, y])
    z = keras.layers.BatchNormalization(name="after_add_bn")(z)
    return randomize_batchnorm(keras.Model(inp, z))


def test_folding_every_conv_kind():
    model = _every_conv_kind()
    folded, info = inference_model(model)
    assert info["folded"] == ["conv_bn", "deconv_bn", "dw_bn", "gconv_bn", "sep_bn"]
    assert list(info["unfolded"]) == ["after_add_bn"]
    assert "Add" in info["unfolded"]["after_add_bn"]
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 4)).astype(np.float32)
    ref = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(folded(x)), ref, atol=1e-4 * np.abs(ref).max())
    names = {layer.name: layer for layer in folded.layers}
    assert not isinstance(names["conv_bn"], keras.layers.BatchNormalization)
    assert names["conv"].use_bias and names["sep"].use_bias


@pytest.mark.parametrize(
    "encoder,kwargs", [("resnet18", {}), ("shufflenet", {"scale": 0.25}), ("vgg16", {})]
)
def test_folding_keeps_outputs_of_real_encoders(encoder, kwargs):
    model = randomize_batchnorm(
        tfseg.build_model(
            "unet", 5, encoder=encoder, input_shape=(64, 64, 3), encoder_kwargs=kwargs
        )
    )
    folded, info = inference_model(model)
    assert info["unfolded"] == {} and len(info["folded"]) == info["batchnorm_layers"]
    x = np.random.default_rng(0).standard_normal((1, 64, 64, 3)).astype(np.float32)
    ref = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(folded(x)), ref, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("stride", [2, 3, 4, 8])
def test_transposed_conv_as_subpixel_conv_is_exact(stride):
    """Kernel 2s: x2 as four 2x2 quadrant convolutions, other strides one 3x3 convolution; kernel
    2s - 1 (3x3/2 as in ADSCNet, ERFNet, LinkNet): one 2x2 convolution at x2, 3x3 above; kernel
    s, "valid" (ENet's fullconv): one 1x1 convolution; all exact. A dilated one stays (it is
    not executed: TensorFlow's own CPU kernels, which it uses instead of oneDNN's on a CPU without
    AVX-512 VNNI / BF16 / AMX such as a Zen 3, have no dilated transposed convolution)."""
    inp = keras.Input((None, None, 6))
    x = keras.layers.Conv2DTranspose(
        5, 2 * stride, strides=stride, padding="same", use_bias=False, name="up"
    )(inp)
    x = keras.layers.BatchNormalization(name="up_bn")(x)
    odd = keras.layers.Conv2DTranspose(4, 2 * stride - 1, strides=stride, padding="same",
                                       name="odd")(x)
    flat = keras.layers.Conv2DTranspose(3, stride, strides=stride, padding="valid",
                                        name="flat")(odd)
    kept = keras.layers.Conv2DTranspose(2, 3, strides=1, dilation_rate=2, padding="same",
                                        name="kept")(flat)
    model = randomize_batchnorm(keras.Model(inp, kept))
    rng = np.random.default_rng(stride)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            layer.set_weights(
                [rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
            )
    folded, info = inference_model(model, subpixel_min_stride=2)
    assert info["subpixel_deconvs"] == ["flat", "odd", "up"] and info["folded"] == ["up_bn"]
    kernels = [w.shape for w in folded.get_layer("up").get_weights()[:-1]]
    if stride == 2:  # only the non-zero taps: 2x2 windows, one phase each
        assert kernels == [(2, 2, 6, 5)] * 4
    else:
        assert kernels == [(3, 3, 6, stride * stride * 5)]
    n = stride * stride
    odd_window = (2, 2) if stride == 2 else (3, 3)  # 5x5/3 reaches rows q - 1 .. q + 1
    assert folded.get_layer("odd").get_weights()[0].shape == (*odd_window, 5, n * 4)
    assert folded.get_layer("flat").get_weights()[0].shape == (1, 1, 4, n * 3)
    x = rng.standard_normal((2, 7, 9, 6)).astype(np.float32)  # odd sizes: edges and phases
    model, folded = (keras.Model(m.input, m.get_layer("flat").output) for m in (model, folded))
    ref = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(folded(x)), ref, atol=1e-5 * np.abs(ref).max())
    _, info = inference_model(model, subpixel_min_stride=16)
    assert info["subpixel_deconvs"] == []
    _, info = inference_model(model, subpixel_min_stride=2, subpixel_any_kernel=False)
    assert info["subpixel_deconvs"] == ["up"]  # the rule before session 21, kept to compare
    if stride == 2:  # int8 LiteRT keeps the 3x3 form (rewrites("tflite", "int8"))
        three, _ = inference_model(model, **rewrites("tflite", "int8"))
        assert [w.shape for w in three.get_layer("up").get_weights()[:-1]] == [(3, 3, 6, 20)]
        np.testing.assert_allclose(np.asarray(three(x)), ref, atol=1e-5 * np.abs(ref).max())


def test_layer_for_op():
    names = ["mobilenet_conv_dw_1", "mobilenet_conv_dw_1_bn", "skipnet_up_p3", "odd_7"]
    assert layer_for_op("skipnet_mobilenet_1/mobilenet_conv_dw_1_1/depthwise", names) == (
        "mobilenet_conv_dw_1"
    )
    assert (
        layer_for_op("m_1/mobilenet_conv_dw_1_bn_1/batchnorm/mul_1", names)
        == "mobilenet_conv_dw_1_bn"
    )
    assert layer_for_op("m/skipnet_up_p3_1/conv_transpose__12", names) == "skipnet_up_p3"
    assert layer_for_op("m/odd_7/Cumprod", names) == "odd_7"
    assert layer_for_op("Transpose__523", names) is None


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"format": "pb"}, "unknown format 'pb'"),
        ({"target": "nano"}, "unknown target 'nano'"),
        ({"precision": "int4"}, "unknown precision 'int4'"),
        ({"format": "saved_model", "precision": "int8"}, "a SavedModel is fp32"),
        ({"format": "onnx", "precision": "fp16"}, "an ONNX file is fp32 or int8"),
        (
            {"format": "tensorrt", "target": "tx2", "precision": "int8"},
            "does not support --precision=int8",
        ),
        ({"model_path": "/nonexistent/model.keras"}, "model file not found"),
    ],
)
def test_bad_options(model_path, kw, message):
    options = ExportOptions(**{"model_path": model_path, "output": "x", **kw})
    with pytest.raises(ExportError, match=message):
        check_options(options)


def test_missing_runtimes_are_explained(model_path, tmp_path):
    from tfseg.export_lib.pipeline import check_runtime

    tftrt = ExportOptions(model_path=model_path, output=str(tmp_path / "t"), format="tftrt")
    with pytest.raises(ExportError, match="TF 2.18 and later dropped TF-TRT"):
        check_runtime(tftrt)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        trt = ExportOptions(model_path=model_path, output=str(tmp_path / "e"), format="tensorrt")
        with pytest.raises(ExportError, match="needs the TensorRT Python bindings"):
            check_runtime(trt)


def test_tftrt_is_accepted_where_tensorflow_ships_it(model_path, tmp_path, monkeypatch):
    """On a TensorFlow built with TensorRT (Jetson / NVIDIA containers) the option passes the checks
    and every precision has a TF-TRT mode; here only the option handling can run."""
    from tfseg.export_lib import tftrt
    from tfseg.export_lib.pipeline import FORMAT_PRECISIONS, check_runtime

    monkeypatch.setattr(tftrt, "tftrt_available", lambda: True)
    check_runtime(ExportOptions(model_path=model_path, output=str(tmp_path / "t"), format="tftrt"))
    assert set(FORMAT_PRECISIONS["tftrt"]) == set(tftrt.PRECISION_MODES)


def test_judge_thresholds():
    base = {"argmax_agreement": 0.9995, "max_rel_logit_diff": 1e-6, "miou_diff": 0.0}
    assert judge(dict(base), "fp32")["passed"]
    bad = judge({**base, "argmax_agreement": 0.99}, "fp32")
    assert not bad["passed"] and "argmax agreement" in bad["failures"][0]
    assert not judge({**base, "max_rel_logit_diff": 0.01}, "fp32")["passed"]
    assert judge({**base, "max_rel_logit_diff": 0.01}, "int8")["passed"]  # int8: no logit bound
    assert not judge({**base, "miou_diff": -0.2}, "int8")["passed"]


def test_int8_prelu_forms_for_tflite():
    """int8 LiteRT gets a one-slope PReLU as a leaky ReLU (any slope) and a per-channel one as
    max(x, alpha x) where every slope is in [0, 1]: the same function, no PRELU op left (XNNPACK
    has no int8 PRELU); per-channel slopes outside [0, 1] keep their PReLU."""
    from tfseg.export_lib.tflite import convert_tflite, tflite_op_types

    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="p_channel")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c2")(x)
    x = keras.layers.PReLU(shared_axes=[1, 2, 3], name="p_shared")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c3")(x)
    x = keras.layers.PReLU(shared_axes=[1, 2, 3], name="p_negative")(x)
    x = keras.layers.Conv2D(8, 1, name="c4")(x)
    y = keras.layers.PReLU(shared_axes=[1, 2], name="p_steep")(x)
    model = keras.Model(inp, y)
    rng = np.random.default_rng(0)
    model.get_layer("p_channel").set_weights([rng.uniform(0, 1, (1, 1, 8))])
    model.get_layer("p_shared").set_weights([np.full((1, 1, 1), 0.25)])
    model.get_layer("p_negative").set_weights([np.full((1, 1, 1), -0.3)])
    model.get_layer("p_steep").set_weights([np.linspace(-0.5, 1.5, 8).reshape(1, 1, 8)])
    assert rewrites("tflite", "int8")["prelu_as_max"] and "prelu_as_max" not in rewrites("tflite")
    new, info = inference_model(model, prelu_as_max=True)
    assert info["prelu_as_leaky"] == ["p_negative", "p_shared"]
    assert info["prelu_as_max"] == ["p_channel"] and info["prelu_kept"] == ["p_steep"]
    xs = rng.standard_normal((2, 16, 32, 3)).astype("float32")
    np.testing.assert_allclose(new(xs), model(xs), atol=1e-5)
    head = inference_model(keras.Model(inp, model.get_layer("c4").output), prelu_as_max=True)[0]
    content = convert_tflite(
        head, input_size=(16, 32), precision="int8", representative=[xs[:1], xs[1:]]
    )
    ops = tflite_op_types(content)
    assert "PRELU" not in ops and ops.get("MAXIMUM") == 1 and ops.get("LEAKY_RELU") == 2


def test_int8_leaky_prelu_that_xnnpack_refuses_becomes_max_form():
    """A leaky ReLU whose output the converter gives a much wider scale (it feeds a concatenation
    with a wide tensor) is refused by XNNPACK and would run outside the delegated graph: the
    export converts that PReLU in max form instead, and says so; the others stay leaky."""
    from tfseg.export_lib.tflite import convert_tflite, tflite_op_types, xnnpack_rejected_leaky

    inp = keras.Input((16, 32, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="narrow")(inp)
    a = keras.layers.PReLU(shared_axes=[1, 2, 3], name="p_narrow")(a)
    b = keras.layers.Conv2D(4, 3, padding="same", name="wide")(inp)
    b = keras.layers.Rescaling(200.0, name="scale")(b)
    b = keras.layers.PReLU(shared_axes=[1, 2, 3], name="p_wide")(b)
    y = keras.layers.Concatenate(name="cat")([a, b])
    # a transposed convolution, which the int8 copy rewrites (``_SubPixelConvTranspose``), and a
    # stride-2 convolution back: the max-form copy must keep such layers too
    y = keras.layers.Conv2DTranspose(8, 4, strides=2, padding="same", name="up")(y)
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="down")(y)
    model = keras.Model(inp, keras.layers.Conv2D(3, 1, name="out")(y))
    model.get_layer("p_narrow").set_weights([np.full((1, 1, 1), 0.1)])
    model.get_layer("p_wide").set_weights([np.full((1, 1, 1), 0.2)])
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    new, info = inference_model(model, **rewrites("tflite", "int8"))
    assert info["subpixel_deconvs"] == ["up"]
    plain = convert_tflite(new, input_size=(16, 32), precision="int8", representative=xs,
                           xnnpack_guard=False)  # fmt: skip
    assert xnnpack_rejected_leaky(plain, lambda name: 0.1 if "p_narrow" in name else 0.2)
    info = {}
    content = convert_tflite(new, input_size=(16, 32), precision="int8", representative=xs,
                             info=info)  # fmt: skip
    assert info["prelu_max_form"] == ["p_narrow"]
    ops = tflite_op_types(content)
    assert ops.get("LEAKY_RELU") == 1 and ops.get("MAXIMUM") == 1
    assert "TRANSPOSE_CONV" not in ops and ops.get("DEPTH_TO_SPACE") == 1


def test_int8_keeps_convolutions_xnnpack_refuses_in_float():
    """A convolution whose calibrated output never varies (a ReLU that is always zero, like a dead
    squeeze-excitation reduction) gets a requantisation scale XNNPACK refuses (>= 256), and the
    whole model would fail to load; the export keeps that layer in float and the model runs."""
    from tfseg.export_lib.tflite import (
        LiteRTRunner,
        _interpreter,
        convert_tflite,
        xnnpack_rejected_convs,
    )

    inp = keras.Input((8, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    dead = keras.layers.Conv2D(4, 1, activation="relu", name="dead",
                               bias_initializer=keras.initializers.Constant(-50.0))(x)
    y = keras.layers.Add(name="sum")([keras.layers.Conv2D(5, 1, name="c2")(x),
                                      keras.layers.Conv2D(5, 1, name="c3")(dead)])
    model = keras.Model(inp, y)
    xs = np.random.default_rng(0).standard_normal((2, 8, 16, 3)).astype("float32")
    plain = convert_tflite(model, input_size=(8, 16), precision="int8",
                           representative=[xs[:1], xs[1:]], xnnpack_guard=False)
    assert [op[1] for op in xnnpack_rejected_convs(plain)] == ["CONV_2D"]
    with pytest.raises(RuntimeError, match="XNNPACK"):
        _interpreter(plain, threads=1).allocate_tensors()
    info = {}
    content = convert_tflite(model, input_size=(8, 16), precision="int8",
                             representative=[xs[:1], xs[1:]], info=info)
    assert info["xnnpack_float_layers"] == ["dead"] and not xnnpack_rejected_convs(content)
    np.testing.assert_allclose(LiteRTRunner(content)(xs[:1]), model(xs[:1]), atol=0.2)


def test_native_resize_where_the_size_is_static():
    """BilinearUpsample becomes one native bilinear resize in the exports (same values; a
    dynamic size keeps the slice form)."""
    from tfseg.export_lib.onnx_export import convert_onnx, onnx_op_types
    from tfseg.layers.resize import BilinearUpsample

    assert rewrites("onnx")["native_resize"] and rewrites("tflite")["native_resize"]
    assert rewrites("tflite", "int8")["native_resize"]
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c")(inp)
    y = BilinearUpsample(4, name="up4")(BilinearUpsample(2, name="up2")(x))
    model = keras.Model(inp, y)
    new, info = inference_model(model, native_resize=True)
    assert info["native_resizes"] == ["up2", "up4"]
    xs = np.random.default_rng(0).standard_normal((1, 6, 10, 3)).astype("float32")
    np.testing.assert_allclose(new(xs), model(xs), atol=1e-5)  # dynamic: the slice form
    static = convert_onnx(new, opset=13, input_shape=(1, 6, 10))
    dynamic = convert_onnx(new, opset=13, input_shape=(1, None, None))
    assert onnx_op_types(static).get("Resize") == 2 and "Mul" not in onnx_op_types(static)
    assert "Resize" not in onnx_op_types(dynamic)


def test_channel_shuffle_as_transpose_where_the_size_is_static():
    """TFLite and ONNX exports write ChannelShuffle as reshape -> transpose -> reshape (XNNPACK has
    no int8 GATHER): the same permutation; a dynamic-size copy keeps the gather."""
    from tfseg.export_lib.tflite import convert_tflite, tflite_op_types
    from tfseg.layers import ChannelShuffle

    assert all(rewrites(f)["transpose_shuffle"] for f in ("tflite", "onnx", "tensorrt"))
    for size in ((8, 12), (None, None)):
        inp = keras.Input((*size, 12))
        x = keras.layers.Conv2D(12, 1, name="c1")(inp)
        y = ChannelShuffle(3, name="shuffle")(x)
        model = keras.Model(inp, keras.layers.Conv2D(4, 1, name="c2")(y))
        new, info = inference_model(model, transpose_shuffle=True)
        assert info["transpose_shuffles"] == ["shuffle"]
        xs = np.random.default_rng(0).standard_normal((2, 8, 12, 12)).astype("float32")
        np.testing.assert_allclose(new(xs), model(xs), atol=1e-6)
    static = inference_model(
        keras.Model(*_static_copy(model)), transpose_shuffle=True
    )[0]  # fmt: skip
    content = convert_tflite(static, input_size=(8, 12), precision="int8",
                             representative=[xs[:1, ..., :3], xs[1:, ..., :3]])  # fmt: skip
    ops = tflite_op_types(content)
    assert "GATHER" not in ops and ops.get("TRANSPOSE") == 1


def test_channel_shuffle_as_permutation_conv_is_exact():
    """OpenVINO and ONNX int8 exports write ChannelShuffle as a 1x1 convolution by the permutation
    matrix (quantized, it runs in int8 instead of a float shuffle): the same
    values, bit for bit, and one Conv instead of the shuffle's transpose in the ONNX graph."""
    from tfseg.export_lib.onnx_export import convert_onnx, onnx_op_types
    from tfseg.layers import ChannelShuffle

    assert rewrites("openvino", "int8")["shuffle_as_conv"] and rewrites("onnx", "int8")[
        "shuffle_as_conv"]  # fmt: skip
    assert not any(rewrites(f, p).get("shuffle_as_conv")
                   for f, p in (("openvino", "fp32"), ("onnx", "fp32"), ("tflite", "int8")))
    inp = keras.Input((8, 12, 3), batch_size=1)
    x = keras.layers.Conv2D(12, 1, name="c1")(inp)
    y = ChannelShuffle(3, name="shuffle")(x)
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, name="c2")(y))
    new, info = inference_model(model, shuffle_as_conv=True, transpose_shuffle=True)
    assert info["shuffle_as_conv"] == ["shuffle"] and info["transpose_shuffles"] == []
    probe = keras.Model(new.input, new.get_layer("shuffle").output)
    xs = np.random.default_rng(0).standard_normal((1, 8, 12, 3)).astype("float32")
    before = np.asarray(keras.Model(model.input, x)(xs))
    np.testing.assert_array_equal(np.asarray(probe(xs)), before[..., [0, 4, 8, 1, 5, 9, 2, 6, 10,
                                                                      3, 7, 11]])
    ops = onnx_op_types(convert_onnx(new, opset=17, input_shape=(1, 8, 12)))
    assert ops.get("Conv") == 3 and "Gather" not in ops and "Reshape" not in ops, ops


def test_onnx_channel_shuffle_runs_on_the_nchw_tensor():
    """tf2onnx wraps the NHWC shuffle in transposes to and from NCHW; onnx_layout rewrites it as
    reshape (N, g, C/g, H, W) -> transpose -> reshape on the NCHW tensor: one transpose per
    shuffle, the NHWC copy kept only where a consumer reads it (here the channel split), and the
    same outputs as Keras."""
    import onnx
    import onnxruntime as ort

    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.layers import ChannelShuffle, ChannelSplit

    inp = keras.Input((8, 12, 3), batch_size=1)
    x = keras.layers.Conv2D(12, 1, name="c1")(inp)
    a = keras.layers.Conv2D(4, 1, name="c2")(ChannelShuffle(3, name="s1")(x))  # NCHW user only
    y = ChannelShuffle(2, name="s2")(x)
    left, right = ChannelSplit(2, name="split")(y)  # a consumer of the NHWC tensor
    z = keras.layers.Concatenate()([a, keras.layers.Add()([left, right])])
    model = inference_model(keras.Model(inp, z), transpose_shuffle=True)[0]
    plain = convert_onnx(model, opset=17, input_shape=(1, 8, 12), nchw_shuffles=False)
    proto = convert_onnx(model, opset=17, input_shape=(1, 8, 12))
    onnx.checker.check_model(proto)

    def perms(p):
        return [list(n.attribute[0].ints) for n in p.graph.node if n.op_type == "Transpose"]

    assert [0, 1, 2, 4, 3] in perms(plain) and [0, 1, 2, 4, 3] not in perms(proto)
    assert perms(proto).count([0, 2, 1, 3, 4]) == 2  # the two shuffles, in NCHW
    assert len(perms(proto)) < len(perms(plain))
    xs = np.random.default_rng(0).standard_normal((1, 8, 12, 3)).astype("float32")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": xs})[0]
    np.testing.assert_allclose(got, np.asarray(model(xs)), atol=1e-5)


def test_nearest_upsampling_as_depth_to_space_is_exact():
    """LiteRT exports write a nearest UpSampling2D by 2**k as k steps of concatenation +
    depth-to-space (no TILE, which XNNPACK does not run); the same values. Other factors stay."""
    from tfseg.export_lib.tflite import convert_tflite, tflite_op_types

    inp = keras.Input((4, 6, 3), batch_size=1)
    x = keras.layers.Conv2D(5, 1, name="c1")(inp)
    x = keras.layers.UpSampling2D(4, interpolation="nearest", name="up4")(x)
    y = keras.layers.UpSampling2D(3, interpolation="nearest", name="up3")(x)
    model = keras.Model(inp, y)
    copy, info = inference_model(model, **rewrites("tflite"))
    assert info["nearest_as_d2s"] == ["up4"]
    xs = np.random.default_rng(0).standard_normal((1, 4, 6, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(copy(xs)), np.asarray(model(xs)))
    ops = tflite_op_types(convert_tflite(copy, input_size=(4, 6)))
    assert ops.get("DEPTH_TO_SPACE") == 2


def test_onnx_upsamplings_resize_in_nhwc():
    """tf2onnx resizes in NCHW and then transposes the (larger) result to NHWC; onnx_layout moves
    the transpose in front of each upsampling and permutes its scales: the logits' upsampling
    becomes the graph's last node, the outputs stay Keras'; a downsampling keeps its order."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.onnx_layout import nhwc_upsamplings

    def resize_then_transpose(factor):
        nodes = [helper.make_node("Resize", ["x", "roi", "scales"], ["r"], mode="linear"),
                 helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])]
        inits = [numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
                 numpy_helper.from_array(np.array([1, 1, factor, factor], np.float32), "scales")]
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        return helper.make_model(graph)

    assert nhwc_upsamplings(resize_then_transpose(0.5)) == 0
    assert nhwc_upsamplings(resize_then_transpose(2.0)) == 1

    inp = keras.Input((8, 12, 3), batch_size=1)
    x = keras.layers.Conv2D(6, 1, name="c1")(inp)
    small = keras.layers.Resizing(4, 6, interpolation="bilinear", name="down")(x)
    y = keras.layers.Conv2D(5, 1, name="c2")(keras.layers.Resizing(8, 12, name="up1")(small))
    z = keras.layers.UpSampling2D(4, interpolation="bilinear", name="up2")(y)  # the logits
    model = keras.Model(inp, z)
    plain = convert_onnx(model, opset=17, input_shape=(1, 8, 12), nhwc_upsamplings=False)
    proto = convert_onnx(model, opset=17, input_shape=(1, 8, 12))
    onnx.checker.check_model(proto)
    assert [n.op_type for n in plain.graph.node][-2:] == ["Resize", "Transpose"]
    last = proto.graph.node[-1]
    assert last.op_type == "Resize" and last.output[0] == "logits"
    scales = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert list(scales[last.input[2]]) == [1, 4, 4, 1]  # NHWC
    resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 3
    xs = np.random.default_rng(0).standard_normal((1, 8, 12, 3)).astype("float32")
    want = np.asarray(model(xs))
    for p in (plain, proto):
        session = ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"images": xs})[0], want, atol=1e-5)


def _static_copy(model):
    """(inputs, outputs) of ``model``'s layers re-applied to a static 8x12x3 input."""
    inp = keras.Input((8, 12, 3), batch_size=1)
    x = keras.layers.Conv2D(12, 1, name="c0")(inp)
    for layer in model.layers[2:]:
        x = layer(x)
    return inp, x


def test_selu_as_elu_for_tflite():
    """LiteRT exports write SELU from ELU / MINIMUM / MUL / ADD: the same function, and no
    GREATER / SELECT left in the int8 file (the converter's own SELU form, slow and inexact)."""
    from tfseg.export_lib.tflite import convert_tflite, tflite_op_types

    assert rewrites("tflite", "int8")["selu_as_elu"] and rewrites("tflite")["selu_as_elu"]
    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = keras.layers.Activation("selu", name="selu")(x)
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, name="c2")(x))
    new, info = inference_model(model, selu_as_elu=True)
    assert info["selu_as_elu"] == ["selu"]
    xs = 3 * np.random.default_rng(0).standard_normal((2, 16, 32, 3)).astype("float32")
    np.testing.assert_allclose(new(xs), model(xs), atol=1e-5)
    content = convert_tflite(new, input_size=(16, 32), precision="int8",
                             representative=[xs[:1], xs[1:]])  # fmt: skip
    ops = tflite_op_types(content)
    assert ops.get("ELU") == 1 and not {"GREATER", "SELECT", "SELECT_V2"} & set(ops)


def test_int8_tflite_writes_grouped_convolutions_as_one_op():
    """int8 LiteRT gets a grouped convolution as one grouped CONV_2D (XNNPACK runs it), not a
    SPLIT and a convolution per group; the int8 logits stay close to Keras'."""
    import tensorflow as tf

    from tfseg.export_lib.tflite import LiteRTRunner, tflite_op_types

    assert rewrites("tflite", "int8")["grouped_conv"] == "native"
    inp = keras.Input((16, 32, 8))
    x = keras.layers.Conv2D(8, 3, padding="same", groups=4, name="grouped")(inp)
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, name="out")(x))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 16, 32, 8)).astype("float32") for _ in range(4)]
    copy = inference_model(model, **rewrites("tflite", "int8"))[0]
    fn = tf.function(lambda t: copy(t), input_signature=[tf.TensorSpec((1, 16, 32, 8))])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in xs)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    content = converter.convert()
    ops = tflite_op_types(content)
    assert ops.get("CONV_2D") == 2 and "SPLIT" not in ops
    got = LiteRTRunner(content)(xs[0])
    want = np.asarray(model(xs[0]))
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def _int8_in_one_partition(copy, model, xs, tolerance):
    """Convert the export ``copy`` of ``model`` to int8 LiteRT (calibrated on ``xs``), check
    that XNNPACK runs the whole graph (one delegate partition) and that the int8 output is within
    ``tolerance`` (mean absolute error relative to the mean absolute float output) of ``model``'s;
    returns the op-type counts."""
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite, tflite_op_types

    content = convert_tflite(copy, input_size=(16, 32), precision="int8", representative=xs)
    runner = LiteRTRunner(content, threads=1)
    delegates = [d["op_name"] for d in runner.interpreter._get_ops_details()]
    assert delegates.count("DELEGATE") == 1
    got, want = runner(xs[0]), np.asarray(model(xs[0]))
    assert np.abs(got - want).mean() < tolerance * np.abs(want).mean()
    return tflite_op_types(content)


def test_int8_unpooling_as_masks():
    """int8 LiteRT writes max-pool switches and max-unpooling as 0/1 masks from ops XNNPACK runs
    (no EQUAL / SELECT / CAST / MAXIMUM): the same routing as ``PoolSwitches`` / ``MaxUnpool2D``,
    ties to the first position included, and the whole int8 graph in one XNNPACK partition."""
    from tfseg.layers import MaxUnpool2D, max_pool_with_switches

    assert rewrites("tflite", "int8")["unpool_masks"] and not rewrites("tflite").get("unpool_masks")
    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    pooled, switches = max_pool_with_switches(x, name="p")
    y = keras.layers.Conv2D(8, 3, padding="same", name="c2")(pooled)
    y = MaxUnpool2D(name="unpool")([y, switches])
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, name="out")(y))
    new, info = inference_model(model, unpool_masks=True)
    assert info["unpool_masks"] == ["p_switches", "unpool"]
    rng = np.random.default_rng(0)
    # integer-valued features: many ties inside the 2x2 windows, and exact float arithmetic
    ties = rng.integers(-2, 3, (2, 16, 32, 8)).astype("float32")
    values = rng.standard_normal((2, 8, 16, 8)).astype("float32")
    want = MaxUnpool2D()([values, model.get_layer("p_switches")(ties)])
    got = new.get_layer("unpool")([values, new.get_layer("p_switches")(ties)])
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    ops = _int8_in_one_partition(new, model, xs, 0.1)
    assert not {"EQUAL", "SELECT", "SELECT_V2", "CAST", "MAXIMUM"} & set(ops), ops


def test_int8_average_pooling_as_depthwise_convolution():
    """int8 LiteRT writes "valid" average poolings (and adaptive ones whose windows tile the input)
    as depthwise convolutions of constant weights, which XNNPACK runs: the same function, and no
    AVERAGE_POOL_2D left; "same" poolings are kept (their border windows count fewer pixels)."""
    from tfseg.layers import AdaptiveAvgPool2D, SameAveragePooling2D

    assert rewrites("tflite", "int8")["avg_pool_as_conv"]
    assert not rewrites("tflite").get("avg_pool_as_conv")
    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    a = keras.layers.AveragePooling2D(3, strides=2, name="valid3")(x)
    b = keras.layers.AveragePooling2D(1, strides=2, name="subsample")(x)
    c = keras.layers.AveragePooling2D(2, padding="same", name="same2")(x)
    d = AdaptiveAvgPool2D((2, 4), name="adaptive")(x)
    e = SameAveragePooling2D(3, strides=2, name="same3")(x)
    outs = [keras.layers.Conv2D(4, 1, name=f"o{i}")(t) for i, t in enumerate((a, b, c, d, e))]
    model = keras.Model(inp, [keras.layers.Flatten()(t) for t in outs])
    new, info = inference_model(model, avg_pool_as_conv=True)
    assert info["avg_pool_as_conv"] == ["adaptive", "subsample", "valid3"]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    for got, want in zip(new(xs[0]), model(xs[0])):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    single = keras.Model(inp, outs[0])
    copy = inference_model(single, avg_pool_as_conv=True)[0]
    ops = _int8_in_one_partition(copy, single, xs, 0.05)
    assert "AVERAGE_POOL_2D" not in ops and ops.get("DEPTHWISE_CONV_2D") == 1, ops


def test_int8_same_average_pooling_as_depthwise_convolution():
    """int8 LiteRT writes "same" average poolings (ADSCNet's, CGNet's, DDRNet's) as depthwise
    convolutions of constant weights, two 1-D passes above 9 pixels, then a multiply by the border
    correction: the same function as TensorFlow's pooling at any size and stride (borders count
    only real pixels), no AVERAGE_POOL_2D left in int8, the whole graph in one XNNPACK partition;
    without a static size the layer stays a pooling."""
    import tensorflow as tf

    from tfseg.export_lib.graph import same_window_counts
    from tfseg.layers import SameAveragePooling2D

    assert rewrites("tflite", "int8")["same_pool_as_conv"]
    assert not rewrites("tflite").get("same_pool_as_conv")
    # n=4, k=3, s=2: TensorFlow pads one pixel at the end only
    np.testing.assert_array_equal(same_window_counts(4, 3, 2), [3, 2])
    np.testing.assert_array_equal(same_window_counts(5, 5, 1), [3, 4, 5, 4, 3])
    rng = np.random.default_rng(0)
    for size in ((16, 32), (15, 9), (None, None)):
        inp = keras.Input((*size, 4))
        pools = [
            SameAveragePooling2D(k, strides=s, name=f"p{k}_{s}")(inp)
            for k, s in ((3, 1), (3, 2), (5, 2), (13, 1), (9, 4))
        ]
        pools.append(keras.layers.AveragePooling2D(2, padding="same", name="keras2")(inp))
        model = keras.Model(inp, pools)
        new, info = inference_model(model, same_pool_as_conv=True)
        assert info["same_pool_as_conv"] == sorted(["keras2", "p13_1", "p3_1", "p3_2", "p5_2",
                                                    "p9_4"])
        x = rng.standard_normal((2, *(size if size[0] else (12, 20)), 4)).astype("float32")
        # through XLA: the 9x9/4 pool's passes have strides (4, 1) and (1, 4), which TensorFlow's
        # own depthwise kernel (no oneDNN: a CPU without AVX-512 VNNI / BF16 / AMX) refuses;
        # the export only traces the layer, for LiteRT to run
        for got, want in zip(tf.function(new, jit_compile=True)(x), model(x)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = SameAveragePooling2D(13, strides=1, name="p13")(x)
    x = SameAveragePooling2D(3, strides=2, name="p3")(x)
    single = keras.Model(inp, keras.layers.Conv2D(4, 1, name="out")(x))
    copy = inference_model(single, same_pool_as_conv=True)[0]
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    ops = _int8_in_one_partition(copy, single, xs, 0.05)
    assert "AVERAGE_POOL_2D" not in ops and ops.get("DEPTHWISE_CONV_2D") == 3, ops
    assert ops.get("MUL") == 2, ops


def test_subsampled_pointwise_convolution_exports_as_a_strided_convolution():
    """``SubsampledPointwiseConv2D`` (DFANet's strided shortcuts; a subsample, then a 1x1
    convolution, only to dodge a oneDNN training bug) exports as the strided 1x1 ``Conv2D`` it
    computes: the same outputs at even and odd sizes, its BN still folded, and in int8 LiteRT no
    STRIDED_SLICE (which XNNPACK does not run) and one XNNPACK partition."""
    from tfseg.layers import SubsampledPointwiseConv2D

    def build(shape):
        inp = keras.Input(shape)
        x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
        y = SubsampledPointwiseConv2D(8, 1, strides=2, use_bias=False, name="short")(x)
        y = keras.layers.BatchNormalization(name="short_bn")(y)
        z = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="c2")(x)
        y = keras.layers.Add(name="add")([y, z])
        return randomize_batchnorm(keras.Model(inp, keras.layers.Conv2D(4, 1, name="out")(y)))

    rng = np.random.default_rng(0)
    for shape, size in (((16, 32, 3), (16, 32)), ((None, None, 3), (15, 9))):
        model = build(shape)
        new, info = inference_model(model)
        assert info["strided_pointwise"] == ["short"] and "short_bn" in info["folded"]
        assert type(new.get_layer("short")) is keras.layers.Conv2D
        assert inference_model(model, strided_pointwise=False)[1]["strided_pointwise"] == []
        x = rng.standard_normal((2, *size, 3)).astype("float32")
        np.testing.assert_allclose(np.asarray(new(x)), np.asarray(model(x)), atol=1e-5)
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    model = build((16, 32, 3))
    ops = _int8_in_one_partition(inference_model(model)[0], model, xs, 0.05)
    assert "STRIDED_SLICE" not in ops, ops


def test_depthwise_channel_multiplier_as_expansion_and_depthwise():
    """LiteRT exports write a depthwise convolution with a channel multiplier (DFANet,
    BiSeNetV2) as a 0/1 1x1 convolution that repeats the channels and a multiplier-1 depthwise
    convolution: the same outputs with strides, dilation and a folded BN; int8 keeps the
    whole graph in one XNNPACK partition, with a CONV_2D more per expanded input."""
    from tfseg.export_lib.tflite import tflite_op_types

    assert rewrites("tflite", "int8")["expand_depthwise"] and rewrites("tflite")["expand_depthwise"]
    assert not rewrites("onnx").get("expand_depthwise")

    def build(shape):
        inp = keras.Input(shape)
        x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
        a = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=4, use_bias=False,
                                         name="a")(x)
        a = keras.layers.BatchNormalization(name="a_bn")(a)
        b = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=4,
                                         activation="relu", name="b")(x)
        c = keras.layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", depth_multiplier=2,
                                         name="c")(x)
        a = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="a_down")(a)
        c = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="c_down")(c)
        y = keras.layers.Add(name="add")([a, b, c])
        return randomize_batchnorm(keras.Model(inp, keras.layers.Conv2D(4, 1, name="out")(y)))

    rng = np.random.default_rng(0)
    for shape, size in (((16, 32, 3), (16, 32)), ((None, None, 3), (15, 9))):
        model = build(shape)
        new, info = inference_model(model, expand_depthwise=True)
        assert info["expanded_depthwise"] == ["a", "b", "c"] and "a_bn" in info["folded"]
        x = rng.standard_normal((2, *size, 3)).astype("float32")
        want = np.asarray(model(x))
        np.testing.assert_allclose(np.asarray(new(x)), want, atol=1e-5 * np.abs(want).max())
    model = build((16, 32, 3))
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    ops = _int8_in_one_partition(inference_model(model, expand_depthwise=True)[0], model, xs, 0.05)
    # a's and b's expansions of the same input are the same op (the converter shares it)
    assert ops.get("DEPTHWISE_CONV_2D") == 3 and ops.get("CONV_2D") >= 4 + 2, ops
    from tfseg.export_lib.tflite import convert_tflite

    plain = convert_tflite(inference_model(model)[0], input_size=(16, 32), precision="fp32")
    assert tflite_op_types(plain).get("CONV_2D") == 4


def test_int8_relu_after_transposed_convolution_as_leaky():
    """int8 LiteRT writes a ReLU that follows a transposed convolution (through a folded BN) as a
    leaky ReLU of slope 1/256, which XNNPACK runs; a ReLU that the converter fuses into a
    convolution is left alone. The int8 output stays close to the float model's."""
    from tfseg.export_lib.graph import deconv_relus

    assert rewrites("tflite", "int8")["deconv_relu_as_leaky"]
    assert not rewrites("tflite").get("deconv_relu_as_leaky")
    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = keras.layers.ReLU(name="conv_relu")(x)
    x = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", name="up")(x)
    x = keras.layers.BatchNormalization(name="up_bn")(x)
    x = keras.layers.ReLU(name="up_relu")(x)
    y = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", name="up2")(x)
    y = keras.layers.Activation("relu", name="up2_relu")(y)
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, name="out")(y))
    assert deconv_relus(model, {"up_bn": model.get_layer("up")}) == ["up_relu", "up2_relu"]
    new, info = inference_model(model, deconv_relu_as_leaky=True)
    assert info["deconv_relu_as_leaky"] == ["up2_relu", "up_relu"]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    ops = _int8_in_one_partition(new, model, xs, 0.05)
    assert "RELU" not in ops and ops.get("LEAKY_RELU") == 2, ops


def test_int8_final_upsampling_in_float():
    """int8 LiteRT keeps the bilinear upsampling that makes the logits in float32: a DEQUANTIZE
    of the low-resolution scores and one RESIZE_BILINEAR as the graph's last ops, no int8 slice
    form at full size, everything in one XNNPACK partition; an upsampling elsewhere is left alone.
    The int8 output stays close to the float model's."""
    from tfseg.export_lib.graph import final_resizes
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite
    from tfseg.layers.resize import BilinearUpsample

    assert rewrites("tflite", "int8")["float_final_resize"]
    assert not rewrites("tflite").get("float_final_resize")
    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", name="c1")(inp)
    x = BilinearUpsample(2, name="mid_up")(x)
    x = keras.layers.Conv2D(4, 1, name="scores")(x)
    y = BilinearUpsample(2, name="final_up")(x)
    model = keras.Model(inp, keras.layers.Activation("linear", name="logits")(y))
    assert final_resizes(model) == ["final_up"]
    assert final_resizes(keras.Model(inp, x)) == []  # the logits are not an upsampling
    assert final_resizes(keras.Model(inp, BilinearUpsample(1)(x))) == []  # writes no op
    shared = keras.models.clone_model(model, clone_function=lambda layer: layer)
    assert final_resizes(shared) == ["final_up"]  # layers with two inbound nodes
    new, info = inference_model(model, float_final_resize=True)
    assert info["float_final_resize"] == ["final_up"]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    np.testing.assert_allclose(new(xs[0]), model(xs[0]), atol=1e-5)  # the same function
    single = keras.Model(inp, keras.layers.Activation("linear", name="logits")(
        BilinearUpsample(4, name="up4")(keras.layers.Conv2D(4, 1, strides=4, name="s")(inp))))
    copy = inference_model(single, float_final_resize=True)[0]
    extra = {}
    content = convert_tflite(copy, input_size=(16, 32), precision="int8", representative=xs,
                             info=extra)
    assert extra["float_ops"] == {"RESIZE_BILINEAR": 1}
    runner = LiteRTRunner(content, threads=1)
    ops = [d["op_name"] for d in runner.interpreter._get_ops_details()]
    assert ops.count("DELEGATE") == 1 and "PACK" not in ops
    assert [op for op in ops if op != "DELEGATE"][-2:] == ["DEQUANTIZE", "RESIZE_BILINEAR"]
    got, want = runner(xs[0]), np.asarray(single(xs[0]))
    assert np.abs(got - want).mean() < 0.05 * np.abs(want).mean()


def test_int8_pyramid_pooling_global_bin_without_tile():
    """The pyramid pooling module's 1x1 bin is broadcast back to the map by a product with ones
    (``ResizeLike``), not by ``ops.tile``: the same values, and in int8 LiteRT no TILE (which
    XNNPACK does not run, so it ended a delegate partition in Fast-SCNN) and one partition."""
    from tfseg.layers.pooling import pyramid_pooling

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 32, 3))
    x = keras.layers.Conv2D(16, 3, strides=4, padding="same", name="c1")(inp)
    x = pyramid_pooling(x, 8, pool_sizes=(1, 2), name="ppm")
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, name="out")(x))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    copy = inference_model(model, **rewrites("tflite", "int8"))[0]
    ops = _int8_in_one_partition(copy, model, xs, 0.05)
    assert "TILE" not in ops and ops.get("MUL") == 1, ops


def test_int8_deconv_relu_leak_raised_where_xnnpack_refuses_its_scales():
    """A ReLU after a transposed convolution exports in int8 as a leaky ReLU of slope 1/256; where
    the converter gives its output the scale of a wider ADD it feeds (ADSCNet's decoder), XNNPACK
    refuses the op (|slope x input/output scale| < 2^-8) and TFLite's own kernel ran it between
    two partitions. The export raises that layer's slope just enough: one partition, the raise in
    ``info``, and the output still within about one quantization step of the ReLU's."""
    from tfseg.export_lib.graph import _DeconvLeakyReLU
    from tfseg.export_lib.tflite import convert_tflite, xnnpack_rejected_leaky

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 32, 3))
    skip = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="skip")(inp)
    wide = keras.layers.Rescaling(2.0, name="wide")(skip)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="down")(skip)
    x = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", name="up")(x)
    x = keras.layers.ReLU(name="up_relu")(x)
    x = keras.layers.Add(name="sum")([x, wide])
    model = keras.Model(inp, keras.layers.Conv2D(3, 1, name="out")(x))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 16, 32, 3)).astype("float32") for _ in range(4)]
    new, info = inference_model(model, **rewrites("tflite", "int8"))
    assert info["deconv_relu_as_leaky"] == ["up_relu"]
    assert isinstance(new.get_layer("up_relu"), _DeconvLeakyReLU)
    plain = convert_tflite(new, input_size=(16, 32), precision="int8", representative=xs,
                           xnnpack_guard=False)  # fmt: skip
    assert xnnpack_rejected_leaky(plain, lambda name: 1 / 256 if "up_relu" in name else None)
    info = {}
    content = convert_tflite(new, input_size=(16, 32), precision="int8", representative=xs,
                             info=info)  # fmt: skip
    (slope,) = info["deconv_leak_slopes"].values()
    assert list(info["deconv_leak_slopes"]) == ["up_relu"] and 1 / 256 < slope <= 1 / 16
    assert not xnnpack_rejected_leaky(content, lambda name: slope if "up_relu" in name else None)
    ops = _int8_in_one_partition(new, model, xs, 0.05)
    assert ops.get("LEAKY_RELU") == 1, ops
