"""Encoder weights: legacy keras-applications .h5, Keras 3 .weights.h5 round trip, error
messages."""

import importlib.util
import os
import socket
import time

import h5py
import keras
import numpy as np
import pytest
from absl import flags
from keras.src.legacy.saving import legacy_h5_format

from tfseg.encoders import build_encoder_model, export_encoder_weights, load_encoder_weights
from tfseg.encoders.weights import IMAGENET_MEAN, IMAGENET_STD, legacy_file_name

SHAPE = (64, 96, 3)
APPS = {
    "vgg16": (keras.applications.VGG16, keras.applications.vgg16.preprocess_input),
    "resnet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
    "mobilenet": (keras.applications.MobileNet, keras.applications.mobilenet.preprocess_input),
    "mobilenetv2": (
        keras.applications.MobileNetV2,
        keras.applications.mobilenet_v2.preprocess_input,
    ),
}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def randomize(model, seed=0):
    """Random weights everywhere (BatchNorm statistics included; 1-D arrays kept positive)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = layer.get_weights()
        if not values:
            continue
        new = []
        for v in values:
            if v.ndim == 1:
                new.append(rng.uniform(0.5, 1.5, v.shape))
            else:
                fan_in = np.prod(v.shape[:-1]) if v.shape[-1] > 1 else np.prod(v.shape[:2])
                new.append(rng.standard_normal(v.shape) * np.sqrt(2.0 / fan_in))
        layer.set_weights([n.astype("float32") for n in new])
    return model


def write_legacy_h5(path, model):
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)


def assert_close(ours, ref):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4 * max(1.0, np.abs(ref).max()))


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """``legacy(name) -> (keras-applications model with random weights, legacy .h5 path)``."""
    cache = {}
    folder = tmp_path_factory.mktemp("legacy")

    def get(name):
        if name not in cache:
            app, _ = APPS[name]
            ref = randomize(app(weights=None, include_top=False, input_shape=SHAPE))
            cache[name] = (ref, write_legacy_h5(folder / legacy_file_name(name), ref))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    x255 = rng.uniform(0, 255, (2,) + SHAPE).astype("float32")
    normalised = (x255 / 255.0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    return x255, normalised.astype("float32")


# --------------------------------------------------------------------------------------------------
# Legacy keras-applications files
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "mobilenet"])
def test_legacy_h5_gives_keras_applications_outputs(name, legacy, images):
    ref, path = legacy(name)
    encoder = build_encoder_model(name)
    report = load_encoder_weights(encoder, name, path, adapt_input=False)
    assert report == report.tensors == len(ref.weights)
    assert report.layers == sum(1 for layer in ref.layers if layer.weights)
    assert report.skipped == ()
    x = images[1]
    assert_close(encoder(x)["P5"], ref(x))


@pytest.mark.parametrize(
    "name, level, ref_layer, crop",
    [
        ("vgg16", "P1", "block1_pool", (slice(1, -1), slice(1, -1))),
        ("mobilenet", "P1", "conv_pw_1_relu", (slice(0, -2), slice(0, -2))),
        ("mobilenetv2", "P1", "expanded_conv_project_BN", (slice(0, -2), slice(0, -2))),
    ],
)
def test_adapt_input_matches_keras_preprocessing(name, level, ref_layer, crop, legacy, images):
    """With adapt_input (default) our normalised input gives keras' preprocess_input features."""
    ref, path = legacy(name)
    encoder = build_encoder_model(name)
    load_encoder_weights(encoder, name, path)
    x255, normalised = images
    sub = keras.Model(ref.input, ref.get_layer(ref_layer).output)
    want = sub(APPS[name][1](x255.copy()))
    got = encoder(normalised)[level]
    # Exact away from the border (the zero padding stands for another colour there).
    assert_close(np.asarray(got)[:, crop[0], crop[1]], np.asarray(want)[:, crop[0], crop[1]])


def test_legacy_h5_mobilenetv2_gives_keras_applications_features(legacy, images):
    """The keras-applications file (with its 1280 ``Conv_1``) into the default encoder (without
    it, ``Conv_1`` skipped) and into one built with ``include_last_conv``: identical features."""
    ref, path = legacy("mobilenetv2")
    x = images[1]
    levels = ("expanded_conv_project_BN", "block_2_add", "block_5_add", "block_12_add")
    features = keras.Model(
        ref.input, [ref.get_layer(n).output for n in levels + ("block_16_project_BN",)]
    )
    want = features(x)
    encoder = build_encoder_model("mobilenetv2")
    report = load_encoder_weights(encoder, "mobilenetv2", path, adapt_input=False)
    assert report.skipped == ("Conv_1", "Conv_1_bn")
    got = encoder(x)
    for key, value in zip(("P1", "P2", "P3", "P4", "P5"), want):
        assert_close(got[key], value)
    full = build_encoder_model("mobilenetv2", include_last_conv=True)
    report = load_encoder_weights(
        full, "mobilenetv2", path, include_last_conv=True, adapt_input=False
    )
    assert report.skipped == () and report.tensors == len(ref.weights)
    assert_close(full(x)["P5"], ref(x))


def test_mobilenetv2_file_names():
    assert legacy_file_name("mobilenetv2") == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    )
    assert legacy_file_name("mobilenetv2", alpha=0.35, rows=96, include_top=True) == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5"
    )
    with pytest.raises(ValueError, match="alpha"):
        legacy_file_name("mobilenetv2", alpha=0.25)


def test_mobilenetv2_imagenet_url(monkeypatch):
    origins = []

    def fail(fname, origin, **kwargs):
        origins.append(origin)
        raise Exception("offline")  # noqa: TRY002  (what keras.utils.get_file raises)

    monkeypatch.setattr(keras.utils, "get_file", fail)
    with pytest.raises(RuntimeError, match="kernels_0.5_224_no_top.h5"):
        load_encoder_weights(keras.Model(), "mobilenetv2", "imagenet", alpha=0.5)
    assert origins == [
        "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5"
    ]


def test_legacy_include_top_file_skips_classifier(tmp_path):
    ref = randomize(keras.applications.MobileNet(weights=None, alpha=0.25))
    path = write_legacy_h5(
        tmp_path / legacy_file_name("mobilenet", include_top=True, alpha=0.25), ref
    )
    encoder = build_encoder_model("mobilenet", alpha=0.25)
    report = load_encoder_weights(encoder, "mobilenet", path, alpha=0.25, adapt_input=False)
    assert report.skipped == ("conv_preds",)
    x = np.random.default_rng(2).standard_normal((1, 224, 224, 3)).astype("float32")
    features = keras.Model(ref.input, ref.get_layer("conv_pw_13_relu").output)
    assert_close(encoder(x)["P5"], features(x))


def test_legacy_h5_with_other_layer_names_loads_by_order(tmp_path, legacy, images):
    ref, _ = legacy("vgg16")
    path = tmp_path / "renamed.h5"
    with h5py.File(path, "w") as f:  # the legacy layout, written by hand with other names
        weighted = [layer for layer in ref.layers if layer.weights]
        f.attrs["layer_names"] = [f"layer_{i}".encode() for i in range(len(weighted))]
        for i, layer in enumerate(weighted):
            group = f.create_group(f"layer_{i}")
            names = [f"layer_{i}/w{j}:0".encode() for j in range(len(layer.weights))]
            group.attrs["weight_names"] = names
            for n, value in zip(names, layer.get_weights()):
                group.create_dataset(n.decode(), data=value)
    encoder = build_encoder_model("vgg16")
    load_encoder_weights(encoder, "vgg16", str(path), adapt_input=False)
    assert_close(encoder(images[1])["P5"], ref(images[1]))


def test_legacy_h5_into_full_model_with_prefix(legacy, images):
    ref, path = legacy("mobilenet")
    from tfseg.encoders.mobilenet import mobilenet

    inputs = keras.Input((None, None, 3))
    pyramid = mobilenet(inputs, name="enc")
    head = keras.layers.Conv2D(3, 1, name="head")(pyramid["P5"])
    model = keras.Model(inputs, [head, pyramid["P5"]])
    report = load_encoder_weights(model, "mobilenet", path, prefix="enc", adapt_input=False)
    assert report.layers == 54
    assert_close(model(images[1])[1], ref(images[1]))


def test_legacy_shape_mismatch_names_layer(legacy):
    _, path = legacy("mobilenet")
    encoder = build_encoder_model("mobilenet", alpha=0.5)
    with pytest.raises(ValueError, match="conv1"):
        load_encoder_weights(encoder, "mobilenet", path, alpha=0.5)


def test_legacy_wrong_architecture_names_layer(legacy):
    _, path = legacy("vgg16")  # no name in common: matched by order, shapes differ at once
    encoder = build_encoder_model("mobilenet", alpha=0.25)
    with pytest.raises(ValueError, match="layer 'conv1'"):
        load_encoder_weights(encoder, "mobilenet", path, alpha=0.25)


@pytest.mark.parametrize("name", ["resnet18", "shufflenet", "stdc1"])
def test_legacy_h5_unsupported_for_own_encoders(name, tmp_path):
    path = tmp_path / f"{name}.h5"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"only Keras 3 \.weights\.h5"):
        load_encoder_weights(keras.Model(), name, str(path))


@pytest.mark.parametrize("file_name", ["nothing_here.h5", "nothing_here.weights.h5"])
def test_missing_file(file_name, tmp_path):
    path = str(tmp_path / file_name)
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        load_encoder_weights(keras.Model(), "vgg16", path)


def test_unknown_extension_and_encoder(tmp_path):
    with pytest.raises(ValueError, match="unknown weights format"):
        load_encoder_weights(keras.Model(), "vgg16", str(tmp_path / "w.npz"))
    with pytest.raises(KeyError, match="choose one of"):
        load_encoder_weights(keras.Model(), "vgg19", "imagenet")


# --------------------------------------------------------------------------------------------------
# "imagenet"
# --------------------------------------------------------------------------------------------------


def test_imagenet_download_failure_is_explained(monkeypatch):
    def fail(fname, origin, **kwargs):
        raise Exception(  # noqa: TRY002  (what keras.utils.get_file raises)
            f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known"
        )

    monkeypatch.setattr(keras.utils, "get_file", fail)
    with pytest.raises(RuntimeError) as info:
        load_encoder_weights(keras.Model(), "mobilenet", "imagenet")
    message = str(info.value)
    assert "mobilenet_1_0_224_tf_no_top.h5" in message
    assert "--encoder_weights=/path/to/mobilenet_1_0_224_tf_no_top.h5" in message
    with pytest.raises(ValueError, match="no keras-applications ImageNet weights"):
        load_encoder_weights(keras.Model(), "shufflenet", "imagenet")
    with pytest.raises(ValueError, match="alpha"):
        load_encoder_weights(keras.Model(), "mobilenet", "imagenet", alpha=0.3)


def _offline():
    try:
        socket.getaddrinfo("storage.googleapis.com", 443)
        return False
    except OSError:
        return True


@pytest.mark.skipif(
    not _offline()
    or os.path.exists(
        os.path.expanduser("~/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    ),
    reason="needs a machine without network access and without the cached file",
)
def test_imagenet_offline_fails_fast():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        load_encoder_weights(keras.Model(), "vgg16", "imagenet")
    assert time.monotonic() - start < 60


# --------------------------------------------------------------------------------------------------
# Keras 3 .weights.h5: export from a trained model, load back
# --------------------------------------------------------------------------------------------------


def _segmentation_like_model(encoder_name, **kwargs):
    """Encoder + 1x1 head, as a stand-in for a full tfseg model."""
    from tfseg.registry import ENCODERS

    inputs = keras.Input((None, None, 3), name="image")
    pyramid = ENCODERS.get(encoder_name)(inputs, name=encoder_name, **kwargs)
    logits = keras.layers.Conv2D(4, 1, name="head")(pyramid["P5"])
    return keras.Model(inputs, {"logits": logits, "P5": pyramid["P5"]})


def test_export_and_reload_round_trip(tmp_path, images):
    name, kwargs = "mobilenet", {"alpha": 0.25}
    trained = randomize(_segmentation_like_model(name, **kwargs))
    model_path = str(tmp_path / "model.keras")
    trained.save(model_path)
    out = str(tmp_path / f"{name}.weights.h5")
    report = export_encoder_weights(model_path, name, out, encoder_kwargs=kwargs)
    assert os.path.isfile(out) and report.tensors > 0
    assert [p for p in os.listdir(tmp_path) if "tmp" in p] == []  # atomic write left nothing

    fresh = _segmentation_like_model(name, **kwargs)
    loaded = load_encoder_weights(fresh, name, out, **kwargs)
    assert (loaded.tensors, loaded.layers) == (report.tensors, report.layers)
    x = images[1]
    assert_close(fresh(x)["P5"], trained(x)["P5"])


def test_export_and_reload_shufflenet_in_memory(tmp_path):
    kwargs = {"groups": 3, "scale": 0.5}
    trained = randomize(build_encoder_model("shufflenet", prefix="other", **kwargs))
    saved = [w.numpy().copy() for w in trained.weights]
    out = str(tmp_path / "shufflenet.weights.h5")
    report = export_encoder_weights(
        trained, "shufflenet", out, prefix="other", encoder_kwargs=kwargs
    )
    randomize(trained, seed=5)
    loaded = load_encoder_weights(trained, "shufflenet", out, prefix="other", **kwargs)
    assert loaded.tensors == report.tensors == len(trained.weights)
    for a, b in zip(trained.weights, saved):
        np.testing.assert_array_equal(a.numpy(), b)


def test_export_and_reload_stdc1_round_trip(tmp_path):
    """stdc1 weights (prefix "stdc1", as build_model names them) out into a .weights.h5 and back
    over other weights: every tensor restored."""
    trained = randomize(build_encoder_model("stdc1"))
    saved = [w.numpy().copy() for w in trained.weights]
    out = str(tmp_path / "stdc1.weights.h5")
    report = export_encoder_weights(trained, "stdc1", out)
    assert report.layers == 2 * (2 + 3 * 2 * 4)  # stem + 3 stages x 2 modules x 4 blocks, conv+BN
    randomize(trained, seed=5)
    loaded = load_encoder_weights(trained, "stdc1", out)
    assert loaded.tensors == report.tensors == len(trained.weights)
    for a, b in zip(trained.weights, saved):
        np.testing.assert_array_equal(a.numpy(), b)


def test_weights_h5_mismatches_name_the_problem(tmp_path):
    small = randomize(build_encoder_model("mobilenet", alpha=0.25))
    path = str(tmp_path / "m.weights.h5")
    small.save_weights(path)
    with pytest.raises(ValueError, match="mobilenet_conv1"):
        load_encoder_weights(
            build_encoder_model("mobilenet", alpha=0.5), "mobilenet", path, alpha=0.5
        )
    with pytest.raises(ValueError, match="another encoder or other encoder kwargs"):
        load_encoder_weights(keras.Model(), "vgg16", path)
    with pytest.raises(ValueError, match="has no layer 'enc_conv1'"):
        export_encoder_weights(small, "mobilenet", str(tmp_path / "x.weights.h5"), prefix="enc")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        export_encoder_weights(small, "mobilenet", str(tmp_path / "x.h5"))


def test_export_tool_main(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "export_encoder_weights_tool", os.path.join(REPO, "tools", "export_encoder_weights.py")
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    model = _segmentation_like_model("mobilenet", alpha=0.25)
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    (tmp_path / "config.json").write_text(
        '{"model": {"encoder": "mobilenet", "encoder_kwargs": {"alpha": 0.25}}}'
    )
    assert tool.resolve_encoder(model_path) == ("mobilenet", {"alpha": 0.25})
    assert tool.resolve_encoder(model_path, "mobilenet", '{"alpha": 0.5}') == (
        "mobilenet",
        {"alpha": 0.5},
    )
    out = str(tmp_path / "enc.weights.h5")
    fv = flags.FlagValues()
    tool.define_flags(fv)
    fv(["prog", f"--model_path={model_path}", f"--output={out}"])
    assert tool.run(fv).layers == 54
    assert load_encoder_weights(model, "mobilenet", out, alpha=0.25).layers == 54


def test_build_model_integration(tmp_path, legacy):
    """Loads into a real tfseg model (skipped while no decoder can build one)."""
    import tfseg

    try:
        model = tfseg.build_model("skipnet", 5, encoder="mobilenet")
    except Exception as e:  # noqa: BLE001  # pragma: no cover - decoders are developed separately
        pytest.skip(f"build_model('skipnet', encoder='mobilenet') failed: {e}")
    ref, path = legacy("mobilenet")
    report = load_encoder_weights(model, "mobilenet", path, adapt_input=False)
    assert report.layers == 54
    assert np.array_equal(
        model.get_layer("mobilenet_conv_pw_13").get_weights()[0],
        ref.get_layer("conv_pw_13").get_weights()[0],
    )
