"""PyTorch checkpoints into tfseg encoders (``tfseg.encoders.weights.torch_state``).

The references are torchvision's own model definitions with random weights (BatchNorm affine
parameters random, running statistics measured on random images): their ``state_dict`` is saved as
``.safetensors`` / ``.pth``, loaded into the tfseg encoder, and the pyramid levels that correspond
are compared on the same random input.

resnet50, resnet101 and vgg16 are compared in float64 (``keras.config.set_floatx``, torch
``.double()``; the weights are the float32 values of the file): there the two agree to ~1e-11, so
any layout, padding or epsilon error shows up far above the 1e-4 bound. In float32 both frameworks
round differently and deep random ResNets amplify it (torch float32 itself was ~3e-3 away from
float64 on resnet101's P4/P5, measured with unfloored running variances). resnet18 and mobilenetv2
(whose float64 depthwise convolutions are slow in TF) are compared in float32, as is the
``build_model`` path; the random running variances are kept above 0.05 so that rounding stays well
below 1e-4 (an epsilon of 1e-3 instead of 1e-5 still changes the features by ~1 %).
"""

import contextlib
import functools
import importlib.util
import sys
import types

import keras
import numpy as np
import pytest

import tfseg
from tfseg.encoders import build_encoder_model
from tfseg.encoders.weights import load_encoder_weights, read_safetensors, read_state_dict

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

SHAPE = (64, 96, 3)
TOL = 1e-4
# tfseg encoder -> (encoder kwargs, torchvision constructor, dtype of the feature comparison)
CASES = {
    "resnet18": ({}, "resnet18", "float32"),
    "resnet50": ({"layout": "torchvision"}, "resnet50", "float64"),
    "resnet101": ({"layout": "torchvision"}, "resnet101", "float64"),
    "vgg16": ({}, "vgg16", "float64"),
    "mobilenetv2": ({"layout": "torchvision"}, "mobilenet_v2", "float32"),
}
_MOBILENETV2_LEVELS = {1: "P1", 3: "P2", 6: "P3", 13: "P4", 17: "P5"}  # features index -> level


@functools.cache
def _torchvision_models():
    """``torchvision.models``. torchvision's PyPI wheel is built against CUDA torch: with torch's
    CPU build its C ops fail to load and ``import torchvision`` raises (in
    ``_meta_registrations``). The model definitions are pure Python, so they are imported without
    the package's ``__init__`` then."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        pytest.skip("torchvision is not installed")
    try:
        import torchvision.models as models

        return models
    except Exception:
        for key in [k for k in sys.modules if k.split(".")[0] == "torchvision"]:
            del sys.modules[key]
        package = types.ModuleType("torchvision")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torchvision"] = package
        import torchvision.models as models

        return models


class _VGGFeatures(torch.nn.Module):
    """torchvision's VGG16 ``features`` alone (its 25088x4096 classifier takes seconds to
    initialise), with the same tensor names (``features.N.weight``)."""

    def __init__(self, models):
        super().__init__()
        self.features = models.vgg.make_layers(models.vgg.cfgs["D"])


def _random_torch_model(encoder):
    models = _torchvision_models()
    torch.manual_seed(0)
    ctor = CASES[encoder][1]
    model = _VGGFeatures(models) if ctor == "vgg16" else getattr(models, ctor)()
    gen = torch.Generator().manual_seed(1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in norms:
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.bias.uniform_(-0.2, 0.2, generator=gen)
            bn.momentum = None  # running stats = the average over the calibration batch
            bn.reset_running_stats()
        model.train()
        if norms:
            model(torch.randn(4, 3, *SHAPE[:2], generator=gen))
        for bn in norms:  # random positive variances near the measured ones, none tiny (a tiny
            # variance amplifies float32 rounding; an epsilon error of 1e-3 still shows as ~1 %)
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.8, 1.2, generator=gen))
            bn.running_var.add_(0.05)
    return model.eval()


def _torch_pyramid(encoder, model, image):
    """``{"P1": .., "P5": ..}`` (NHWC numpy) of the torchvision model on an NHWC image."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
    out = {}
    with torch.no_grad():
        if encoder.startswith("resnet"):
            y = model.relu(model.bn1(model.conv1(x)))
            out["P1"] = y
            y = model.maxpool(y)
            for level, stage in enumerate(
                (model.layer1, model.layer2, model.layer3, model.layer4), start=2
            ):
                y = stage(y)
                out[f"P{level}"] = y
        elif encoder == "vgg16":
            y = x
            for module in model.features:
                y = module(y)
                if isinstance(module, torch.nn.MaxPool2d):
                    out[f"P{len(out) + 1}"] = y
        else:
            y = x
            for index, module in enumerate(model.features):
                y = module(y)
                if index in _MOBILENETV2_LEVELS:
                    out[_MOBILENETV2_LEVELS[index]] = y
            out["P5_last_conv"] = y  # after features[18]
    return {k: v.numpy().transpose(0, 2, 3, 1) for k, v in out.items()}


@contextlib.contextmanager
def _keras_dtype(dtype):
    """Build Keras layers in ``dtype`` (Keras caches its global dtype policy from ``floatx`` on
    first use, so both are set, and both restored)."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


@pytest.fixture(scope="module")
def resnet18_torch():
    return _random_torch_model("resnet18")


def _image(dtype="float64"):
    return np.random.default_rng(0).normal(size=(1, *SHAPE)).astype(dtype)


def _max_diffs(ours, reference, levels):
    return {k: float(np.abs(np.asarray(ours[k]) - reference[k]).max()) for k in levels}


@pytest.mark.parametrize("encoder", list(CASES))
def test_features_match_torchvision(encoder, tmp_path):
    """Every pyramid level of the tfseg encoder loaded from a ``.safetensors`` state dict equals
    torchvision's (< 1e-4 max abs; ~1e-11 measured in float64, ~1e-5 in float32)."""
    kwargs, _, dtype = CASES[encoder]
    model = _random_torch_model(encoder)
    path = tmp_path / f"{encoder}.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(path))
    image = _image(dtype)
    reference = _torch_pyramid(encoder, model.to(getattr(torch, dtype)), image)

    with _keras_dtype(dtype):
        ours = build_encoder_model(encoder, SHAPE, **kwargs)
        assert {w.dtype for w in ours.weights} == {dtype}
        report = load_encoder_weights(ours, encoder, path, **kwargs)
        if encoder == "mobilenetv2":
            last = build_encoder_model(encoder, SHAPE, include_last_conv=True, **kwargs)
            last_report = load_encoder_weights(
                last, encoder, path, include_last_conv=True, **kwargs
            )
    diffs = _max_diffs(ours(image), reference, ("P1", "P2", "P3", "P4", "P5"))
    assert max(diffs.values()) < TOL, diffs
    assert report.missing == ()
    n_weights = sum(len(layer.weights) for layer in ours.layers)
    assert report.tensors == n_weights
    n_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    unused = [k for k in report.skipped if k.endswith("num_batches_tracked")]
    assert len(unused) == n_norms  # torch's BatchNorm counter, reported as unused
    if encoder == "resnet18":  # tfseg's blocks use epsilon 1e-3: set to torch's, and said so
        assert "epsilon" in report.notes[0] and "20 layers" in report.notes[0]
        assert {"fc.weight", "fc.bias"} <= set(report.skipped)
    if encoder == "mobilenetv2":
        assert "features.18.0.weight" in report.skipped  # the 1280 conv, not built by default
        assert "features.18.0.weight" not in last_report.skipped
        got = np.asarray(last(image)["P5"])
        assert np.abs(got - reference["P5_last_conv"]).max() < TOL


def test_pth_reads_as_safetensors_and_unwraps_training_checkpoints(resnet18_torch, tmp_path):
    """``.pth`` (torch.load) and ``.safetensors`` (numpy reader) give the same arrays; a training
    checkpoint nesting the state dict under ``state_dict`` with ``module.`` names is unwrapped by
    the reader and its prefix found by the loader; bfloat16/float16 tensors are widened."""
    state = resnet18_torch.state_dict()
    safetensors_torch.save_file(state, str(tmp_path / "a.safetensors"))
    torch.save(state, tmp_path / "a.pth")
    a, b = (
        read_state_dict(str(tmp_path / "a.safetensors")),
        read_state_dict(str(tmp_path / "a.pth")),
    )
    assert sorted(a) == sorted(b) == sorted(state)
    for name in state:
        np.testing.assert_array_equal(a[name], b[name])
        assert a[name].dtype == state[name].numpy().dtype

    half = {"x": torch.randn(3, 4).bfloat16(), "y": torch.randn(5).half()}
    safetensors_torch.save_file(half, str(tmp_path / "half.safetensors"))
    read = read_safetensors(str(tmp_path / "half.safetensors"))
    for name, tensor in half.items():
        assert read[name].dtype == np.float32
        np.testing.assert_array_equal(read[name], tensor.float().numpy())


def test_build_model_path_float32(resnet18_torch, tmp_path):
    """Through ``tfseg.build_model`` + ``load_encoder_weights`` (the ``--encoder_weights`` path):
    a nested ``.pth`` training checkpoint; the full model's BatchNorm layers get torch's epsilon
    and its encoder gives torchvision's features in float32."""
    state = {f"module.{k}": v for k, v in resnet18_torch.state_dict().items()}
    path = tmp_path / "resnet18-ckpt.pth"
    torch.save({"epoch": 3, "state_dict": state}, path)
    model = tfseg.build_model("skipnet", 5, encoder="resnet18", input_shape=SHAPE)
    report = load_encoder_weights(model, "resnet18", path)
    assert report.missing == () and "epsilon" in report.notes[0]
    assert model.get_layer("resnet18_conv3_block1_1_bn").epsilon == 1e-5
    image = _image("float32")
    reference = _torch_pyramid("resnet18", resnet18_torch, image)
    levels = {"P3": "resnet18_conv3_block2_out", "P5": "resnet18_conv5_block2_out"}
    features = keras.Model(model.input, {k: model.get_layer(v).output for k, v in levels.items()})
    diffs = _max_diffs(features(image), reference, levels)
    assert max(diffs.values()) < TOL, diffs


def test_build_model_path_mobilenetv2(tmp_path):
    """mobilenetv2 (``layout="torchvision"`` through ``encoder_kwargs``) in a full model, .pth."""
    torch_model = _random_torch_model("mobilenetv2")
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(torch_model.state_dict(), path)
    kwargs = {"layout": "torchvision"}
    model = tfseg.build_model(
        "skipnet", 5, encoder="mobilenetv2", encoder_kwargs=kwargs, input_shape=SHAPE
    )
    report = load_encoder_weights(model, "mobilenetv2", path, **kwargs)
    assert report.missing == () and report.notes == ()  # built with torch's epsilon already
    image = _image("float32")
    reference = _torch_pyramid("mobilenetv2", torch_model, image)
    features = keras.Model(model.input, model.get_layer("mobilenetv2_block_16_project_BN").output)
    assert np.abs(np.asarray(features(image)) - reference["P5"]).max() < TOL


def test_missing_and_unused_tensors_are_reported(resnet18_torch, tmp_path):
    """A tensor the encoder needs but the file lacks is named in ``missing`` (and a warning), its
    layer keeps its weights; tensors the encoder does not use are named in ``skipped``."""
    state = dict(resnet18_torch.state_dict())
    del state["layer4.1.bn2.running_var"]
    state["extra.weight"] = torch.ones(3)
    path = tmp_path / "partial.safetensors"
    safetensors_torch.save_file(state, str(path))
    model = build_encoder_model("resnet18", SHAPE)
    kept = [np.copy(w) for w in model.get_layer("resnet18_conv5_block2_2_bn").get_weights()]
    with pytest.warns(UserWarning, match=r"layer4\.1\.bn2\.running_var"):
        report = load_encoder_weights(model, "resnet18", path)
    assert report.missing == ("layer4.1.bn2.running_var",)
    assert {"extra.weight", "fc.weight", "fc.bias", "layer4.1.bn2.weight"} <= set(report.skipped)
    for before, after in zip(kept, model.get_layer("resnet18_conv5_block2_2_bn").get_weights()):
        np.testing.assert_array_equal(before, after)
    conv1 = model.get_layer("resnet18_conv1_conv").get_weights()[0]
    np.testing.assert_array_equal(conv1, state["conv1.weight"].numpy().transpose(2, 3, 1, 0))


def test_wrong_shape_names_the_first_mismatch(resnet18_torch, tmp_path):
    state = dict(resnet18_torch.state_dict())
    state["layer2.0.conv1.weight"] = torch.zeros(128, 32, 3, 3)
    state["layer3.0.conv1.weight"] = torch.zeros(7, 7, 3, 3)
    path = tmp_path / "wrong.safetensors"
    safetensors_torch.save_file(state, str(path))
    model = build_encoder_model("resnet18", SHAPE)
    before = model.get_layer("resnet18_conv1_conv").get_weights()[0].copy()
    with pytest.raises(ValueError, match=r"'layer2\.0\.conv1\.weight' has shape \(128, 32, 3, 3\)"):
        load_encoder_weights(model, "resnet18", path)
    # nothing was loaded
    np.testing.assert_array_equal(model.get_layer("resnet18_conv1_conv").get_weights()[0], before)


def test_other_model_is_refused(resnet18_torch, tmp_path):
    """A resnet18 file given for vgg16: none of its names fit, the message shows them."""
    path = tmp_path / "resnet18.safetensors"
    safetensors_torch.save_file(resnet18_torch.state_dict(), str(path))
    expected = r"none of the tensors of encoder 'vgg16'.*named like bn1\.bias"
    with pytest.raises(ValueError, match=expected):
        load_encoder_weights(build_encoder_model("vgg16", SHAPE), "vgg16", path)


@pytest.mark.parametrize("encoder", ["resnet50", "resnet101", "mobilenetv2"])
def test_keras_layout_is_refused_with_the_hint(encoder, tmp_path):
    path = tmp_path / "x.safetensors"
    safetensors_torch.save_file({"conv1.weight": torch.zeros(1)}, str(path))
    with pytest.raises(ValueError, match=r"""--encoder_kwargs='\{"layout": "torchvision"\}'"""):
        load_encoder_weights(keras.Model(), encoder, path)


def test_encoder_without_torchvision_counterpart_is_refused(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"not for encoder 'stdc1'.*\.weights\.h5"):
        load_encoder_weights(keras.Model(), "stdc1", path)


def test_missing_and_corrupt_files(tmp_path):
    model = build_encoder_model("resnet18", SHAPE)
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_encoder_weights(model, "resnet18", tmp_path / "nothere.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a pickle at all" * 10)
    with pytest.raises(ValueError, match="garbage.pth is not a readable PyTorch checkpoint"):
        load_encoder_weights(model, "resnet18", garbage)
    bad_header = tmp_path / "bad.safetensors"
    bad_header.write_bytes((1000).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="bad.safetensors is not a safetensors file"):
        load_encoder_weights(model, "resnet18", bad_header)
    whole = tmp_path / "whole.safetensors"
    safetensors_torch.save_file({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(whole))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"'conv1\.weight' lies beyond the end of the file"):
        load_encoder_weights(model, "resnet18", truncated)


def test_pth_without_torch_says_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "resnet18.pth"
    path.write_bytes(b"anything")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ImportError, match=r"needs PyTorch: pip install torch.*\.safetensors"):
        load_encoder_weights(keras.Model(), "resnet18", path)


def test_torchvision_preprocessing_is_tfseg_normalize():
    """torchvision's ImageNet checkpoints expect what ``tfseg.data.normalize`` feeds (RGB / 255,
    then ImageNet mean/std), so the first convolution is loaded without adaptation."""
    from tfseg.data.pipeline import normalize

    models = _torchvision_models()
    weights = (
        models.ResNet18_Weights,
        models.ResNet50_Weights,
        models.ResNet101_Weights,
        models.VGG16_Weights,
        models.MobileNet_V2_Weights,
    )
    image = np.random.default_rng(0).integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    for enum in weights:
        preset = enum.IMAGENET1K_V1.transforms()
        expected = (image / 255.0 - np.asarray(preset.mean)) / np.asarray(preset.std)
        np.testing.assert_allclose(normalize(image), expected, atol=1e-5, err_msg=str(enum))
