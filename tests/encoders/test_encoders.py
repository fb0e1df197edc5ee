"""Encoders: pyramid keys/strides (output stride 32 and 8), dynamic shapes, layer names, sizes."""

import keras
import numpy as np
import pytest

from tfseg.encoders import PYRAMID_KEYS, StrideSchedule, build_encoder_model
from tfseg.encoders.shufflenet import STAGE_CHANNELS, shufflenet_widths
from tfseg.flops import model_macs
from tfseg.registry import ENCODERS

# P1..P5 channels at default settings.
CHANNELS = {
    "vgg16": (64, 128, 256, 512, 512),
    "resnet18": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
    "resnet101": (64, 256, 512, 1024, 2048),
    "mobilenet": (64, 128, 256, 512, 1024),
    "shufflenet": (24, 24, 240, 480, 960),
    "mobilenetv2": (16, 24, 32, 96, 320),
    "stdc1": (32, 64, 256, 512, 1024),
    "stdc2": (32, 64, 256, 512, 1024),
}
KERAS_APPS = {
    "vgg16": lambda **kw: keras.applications.VGG16(**kw),
    "resnet50": lambda **kw: keras.applications.ResNet50(**kw),
    "resnet101": lambda **kw: keras.applications.ResNet101(**kw),
    "mobilenet": lambda **kw: keras.applications.MobileNet(**kw),
}
SIZES = ((64, 96), (96, 64))

_cache = {}


def encoder_model(name, output_stride=32):
    """Standalone encoder, dynamic shape (resnet101, stdc2: static 64x96), built once per
    module."""
    key = (name, output_stride)
    if key not in _cache:
        shape = (64, 96, 3) if name in ("resnet101", "stdc2") else (None, None, 3)
        _cache[key] = build_encoder_model(name, shape, output_stride=output_stride)
    return _cache[key]


def weighted_layers(model, prefix=""):
    return [
        (layer.name[len(prefix) :], [tuple(w.shape) for w in layer.weights])
        for layer in model.layers
        if layer.weights
    ]


def expected_shape(h, w, level, channels, output_stride):
    stride = min(2**level, output_stride)
    return (1, h // stride, w // stride, channels)


def test_all_encoders_registered():
    assert set(CHANNELS) <= set(ENCODERS.names())


@pytest.mark.parametrize("output_stride", [32, 16, 8])
@pytest.mark.parametrize(
    "name", ["vgg16", "resnet18", "resnet50", "mobilenet", "shufflenet", "mobilenetv2", "stdc1"]
)
def test_pyramid_shapes_dynamic(name, output_stride):
    model = encoder_model(name, output_stride)
    assert model.input.shape[1:3] == (None, None)
    for h, w in SIZES if output_stride == 32 else SIZES[:1]:
        out = model(np.zeros((1, h, w, 3), "float32"))
        assert sorted(out) == list(PYRAMID_KEYS)
        for level, key in enumerate(PYRAMID_KEYS, start=1):
            want = expected_shape(h, w, level, CHANNELS[name][level - 1], output_stride)
            assert tuple(out[key].shape) == want, (key, h, w)


@pytest.mark.parametrize("name", ["resnet101", "stdc2"])
def test_static_pyramid_shapes(name):
    # Built once, at a static size (symbolic shapes only); each shares its code with an encoder
    # that test_pyramid_shapes_dynamic runs (resnet50, stdc1).
    model = encoder_model(name)
    for level, t in enumerate(model.outputs, start=1):
        want = expected_shape(64, 96, level, CHANNELS[name][level - 1], 32)
        assert tuple(t.shape[1:]) == want[1:]


def test_static_shape_output_stride_8():
    model = build_encoder_model("mobilenet", (64, 96, 3), output_stride=8, alpha=0.25)
    shapes = [tuple(t.shape[1:3]) for t in model.outputs]
    assert shapes == [(32, 48), (16, 24), (8, 12), (8, 12), (8, 12)]


@pytest.mark.parametrize("output_stride", [64, 4, "32"])
def test_invalid_output_stride(output_stride):
    with pytest.raises(ValueError, match="output_stride"):
        build_encoder_model("resnet18", output_stride=output_stride)


@pytest.mark.parametrize("name,params", [("resnet50", 23_508_032), ("resnet101", 42_500_160)])
def test_torchvision_layout_has_torchvisions_parameter_count(name, params):
    """``layout="torchvision"``: torchvision's ``resnet50`` / ``resnet101`` less the classifier
    (no conv bias; stride on the 3x3 convolution), the encoders SMP and timm use."""
    from tfseg.flops import count_params

    model = build_encoder_model(name, (64, 64, 3), layout="torchvision")
    keras_layout = build_encoder_model(name, (64, 64, 3))
    assert count_params(model) == params
    # The keras-applications layout differs only by its conv biases: BatchNorm follows every one.
    biases = sum(layer.filters for layer in keras_layout.layers if hasattr(layer, "filters"))
    assert count_params(keras_layout) == params + biases
    with pytest.raises(ValueError, match="layout"):
        build_encoder_model(name, (64, 64, 3), layout="caffe")


def test_stride_schedule():
    s = StrideSchedule(8)
    assert [s.down() for _ in range(5)] == [(2, 1), (2, 1), (2, 1), (1, 1), (1, 2)]
    assert (s.stride, s.dilation) == (8, 4)
    s = StrideSchedule(32)
    assert [s.down() for _ in range(5)] == [(2, 1)] * 5
    assert (s.stride, s.dilation) == (32, 1)


def test_dilation_frontend_layers():
    enc = encoder_model("mobilenet", 8)
    dw = {i: enc.get_layer(f"mobilenet_conv_dw_{i}") for i in (5, 6, 7, 11, 12, 13)}
    assert [dw[i].strides for i in (5, 6, 12)] == [(1, 1)] * 3
    assert [dw[i].dilation_rate[0] for i in (5, 6, 7, 11, 12, 13)] == [1, 1, 2, 2, 2, 4]
    with pytest.raises(ValueError):
        enc.get_layer("mobilenet_conv_pad_6")  # no asymmetric padding once stride 1
    r = encoder_model("resnet50", 8)
    assert r.get_layer("resnet50_conv4_block1_1_conv").strides == (1, 1)
    assert r.get_layer("resnet50_conv4_block1_2_conv").dilation_rate == (2, 2)
    assert r.get_layer("resnet50_conv5_block3_2_conv").dilation_rate == (4, 4)
    v = encoder_model("vgg16", 8)
    assert v.get_layer("vgg16_block5_conv1").dilation_rate == (2, 2)
    assert "vgg16_block4_pool" not in [layer.name for layer in v.layers]


def test_layer_names_prefixed_and_deterministic():
    a = build_encoder_model("mobilenet", prefix="enc", alpha=0.25)
    b = build_encoder_model("mobilenet", prefix="enc", alpha=0.25)
    names = [layer.name for layer in a.layers[1:]]
    assert all(n.startswith("enc_") for n in names)
    assert names == [layer.name for layer in b.layers[1:]]
    assert a.name == "enc"


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "resnet101", "mobilenet"])
def test_same_structure_and_params_as_keras_applications(name):
    ours = encoder_model(name)
    ref = KERAS_APPS[name](weights=None, include_top=False, input_shape=(None, None, 3))
    assert ours.count_params() == ref.count_params()
    assert weighted_layers(ours, f"{name}_") == weighted_layers(ref)


def test_mobilenet_alpha_matches_keras_applications():
    ours = build_encoder_model("mobilenet", alpha=0.5)
    ref = keras.applications.MobileNet(
        weights=None, include_top=False, alpha=0.5, input_shape=(None, None, 3)
    )
    assert ours.count_params() == ref.count_params()
    assert ours.outputs[-1].shape[-1] == 512


def test_params_independent_of_output_stride():
    for name in ("resnet18", "mobilenet", "shufflenet", "mobilenetv2", "stdc1"):
        assert encoder_model(name, 8).count_params() == encoder_model(name, 32).count_params()


def test_mobilenetv2_same_layers_as_keras_applications():
    """Every layer (padding, activations, adds too), name and weight shape as keras-applications
    with ``include_last_conv``; the parameters are torchvision's ``mobilenet_v2().features``."""
    ours = build_encoder_model("mobilenetv2", include_last_conv=True)
    ref = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(None, None, 3)
    )
    assert [layer.name[len("mobilenetv2_") :] for layer in ours.layers[1:]] == [
        layer.name for layer in ref.layers[1:]
    ]
    assert weighted_layers(ours, "mobilenetv2_") == weighted_layers(ref)
    assert ours.count_params() == ref.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in ours.trainable_weights)
    assert trainable == 2_223_872  # torchvision mobilenet_v2().features
    assert ours.outputs[-1].shape[-1] == 1280
    # The default stops at the 320-channel block, as the reference zoo's CANet and LiteSeg do.
    default = encoder_model("mobilenetv2")
    trainable = sum(int(np.prod(w.shape)) for w in default.trainable_weights)
    assert trainable == 2_223_872 - (320 * 1280 + 2 * 1280) == 1_811_712


def test_mobilenetv2_alpha_matches_keras_applications():
    alpha = 0.35  # the widths that _make_divisible rounds up (8 -> 16)
    ours = build_encoder_model("mobilenetv2", alpha=alpha, include_last_conv=True)
    ref = keras.applications.MobileNetV2(
        weights=None, include_top=False, alpha=alpha, input_shape=(None, None, 3)
    )
    assert weighted_layers(ours, "mobilenetv2_") == weighted_layers(ref)


def test_mobilenetv2_odd_static_size_pads_as_keras_applications():
    ours = build_encoder_model("mobilenetv2", (65, 97, 3), alpha=0.35)
    assert ours.get_layer("mobilenetv2_block_1_pad").padding == ((1, 1), (1, 1))
    assert [tuple(t.shape[1:3]) for t in ours.outputs] == [
        (33, 49),
        (17, 25),
        (9, 13),
        (5, 7),
        (3, 4),
    ]


def test_mobilenetv2_torchvision_layout():
    """``layout="torchvision"``: the same weights (names, shapes), symmetric padding on every
    strided convolution and BatchNorm epsilon 1e-5; the default layout is unchanged (its features
    against torchvision's: tests/encoders/test_torch_weights.py)."""
    tv = build_encoder_model("mobilenetv2", (64, 96, 3), layout="torchvision")
    keras_layout = build_encoder_model("mobilenetv2", (64, 96, 3))
    assert weighted_layers(tv, "mobilenetv2_") == weighted_layers(keras_layout, "mobilenetv2_")
    assert tv.get_layer("mobilenetv2_Conv1_pad").padding == ((1, 1), (1, 1))
    assert tv.get_layer("mobilenetv2_Conv1").padding == "valid"
    assert tv.get_layer("mobilenetv2_block_1_pad").padding == ((1, 1), (1, 1))
    assert keras_layout.get_layer("mobilenetv2_block_1_pad").padding == ((0, 1), (0, 1))
    assert {layer.epsilon for layer in tv.layers if hasattr(layer, "epsilon")} == {1e-5}
    assert [t.shape for t in tv.outputs] == [t.shape for t in keras_layout.outputs]
    with pytest.raises(ValueError, match="layout must be one of"):
        build_encoder_model("mobilenetv2", layout="caffe")


def test_mobilenetv2_dilation_frontend_layers():
    enc = encoder_model("mobilenetv2", 8)
    dw = {i: enc.get_layer(f"mobilenetv2_block_{i}_depthwise") for i in (5, 6, 7, 12, 13, 14, 16)}
    assert [dw[i].strides for i in (6, 13)] == [(1, 1)] * 2
    assert [dw[i].dilation_rate[0] for i in (5, 6, 7, 12, 13, 14, 16)] == [1, 1, 2, 2, 2, 4, 4]
    names = [layer.name for layer in enc.layers]
    assert "mobilenetv2_block_6_pad" not in names and "mobilenetv2_block_3_pad" in names


def _stdc_module_params(c_in, c):
    """Conv (no bias) + BN (2 per channel) of an STDC module's four blocks, by hand."""
    widths = ((c_in, c // 2, 1), (c // 2, c // 4, 3), (c // 4, c // 8, 3), (c // 8, c // 8, 3))
    return sum(k * k * i * o + 2 * o for i, o, k in widths)


@pytest.mark.parametrize(
    "name, modules, want", [("stdc1", (2, 2, 2), 5_308_448), ("stdc2", (4, 5, 3), 9_338_912)]
)
def test_stdc_param_count_matches_reference(name, modules, want):
    """The reference zoo's STDC backbone (models/stdc.py, pp_liteseg.py) counted by hand. Its
    networks: STDC1 7,788,448 / STDC2 11,818,912 (both = backbone + the same 2,480,000 head),
    PP-LiteSeg-stdc1 6,326,670 / -stdc2 10,556,942 (docs/reference/zoo_reference.csv)."""
    stem = 3 * 3 * 3 * 32 + 2 * 32 + 3 * 3 * 32 * 64 + 2 * 64
    total, c_in = stem, 64
    for c, n in zip((256, 512, 1024), modules):
        total += _stdc_module_params(c_in, c) + (n - 1) * _stdc_module_params(c, c)
        c_in = c
    assert total == want
    model = encoder_model(name)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == want
    assert {"stdc1": 7_788_448, "stdc2": 11_818_912}[name] - want == 2_480_000


def test_stdc_layers_and_dilation():
    enc = encoder_model("stdc1")
    assert enc.get_layer("stdc1_stage3_module1_block2_conv").strides == (2, 2)
    assert enc.get_layer("stdc1_stage3_module1_block1_conv").kernel_size == (1, 1)
    assert enc.get_layer("stdc1_stage3_module2_concat").output.shape[-1] == 256
    # The skip's 3x3/2 average pool counts the zero padding (PyTorch AvgPool2d(3, 2, 1)).
    pad, pool = (
        enc.get_layer("stdc1_stage3_module1_pool_pad"),
        enc.get_layer("stdc1_stage3_module1_pool"),
    )
    pooled = np.asarray(pool(pad(np.ones((1, 4, 4, 1), "float32"))))[0, :, :, 0]
    np.testing.assert_allclose(pooled, [[4 / 9, 6 / 9], [6 / 9, 1.0]], rtol=1e-6)
    dilated = encoder_model("stdc1", 8)
    conv = {
        (s, m, b): dilated.get_layer(f"stdc1_stage{s}_module{m}_block{b}_conv")
        for s in (3, 4, 5)
        for m in (1, 2)
        for b in (2, 4)
    }
    assert [conv[s, 1, 2].strides for s in (3, 4, 5)] == [(2, 2), (1, 1), (1, 1)]
    assert [conv[4, 1, b].dilation_rate[0] for b in (2, 4)] == [1, 2]
    assert [conv[5, m, b].dilation_rate[0] for m in (1, 2) for b in (2, 4)] == [2, 4, 4, 4]
    names = [layer.name for layer in dilated.layers]
    assert "stdc1_stage3_module1_pool" in names
    assert not any(n.startswith(("stdc1_stage4", "stdc1_stage5")) and "pool" in n for n in names)


def test_resnet18_param_count_matches_torchvision():
    # torchvision resnet18: 11,689,512 parameters, of which the fc layer 512*1000+1000.
    trainable = sum(int(np.prod(w.shape)) for w in encoder_model("resnet18").trainable_weights)
    assert trainable == 11_689_512 - 513_000 == 11_176_512


def test_shufflenet_g3_size_and_macs_close_to_paper():
    model = build_encoder_model("shufflenet", (224, 224, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    classifier_params = trainable + 960 * 1000 + 1000
    assert 1.75e6 < classifier_params < 1.95e6  # ~1.87M
    macs = model_macs(model) + 960 * 1000  # + the classifier
    assert 130e6 < macs < 145e6  # paper: 140 MFLOPs (multiply-adds)


@pytest.mark.parametrize("groups", [1, 2, 4, 8])  # 3: test_pyramid_shapes_dynamic
def test_shufflenet_groups(groups):
    model = build_encoder_model("shufflenet", (64, 96, 3), groups=groups)
    assert [t.shape[-1] for t in model.outputs[2:]] == list(STAGE_CHANNELS[groups])
    assert [tuple(t.shape[1:3]) for t in model.outputs] == [
        (32, 48),
        (16, 24),
        (8, 12),
        (4, 6),
        (2, 3),
    ]


def test_shufflenet_widths_scale():
    assert shufflenet_widths(3, 1.0) == (24, (240, 480, 960))
    assert shufflenet_widths(3, 0.5) == (12, (120, 240, 480))
    assert shufflenet_widths(8, 0.5) == (16, (192, 384, 768))
    for groups in STAGE_CHANNELS:
        for scale in (0.25, 0.5, 1.0, 1.5, 2.0):
            stem, stages = shufflenet_widths(groups, scale)
            assert stem % groups == 0 and all(c % (4 * groups) == 0 for c in stages)
    with pytest.raises(ValueError, match="groups"):
        shufflenet_widths(5)
