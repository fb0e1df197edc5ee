"""RGPNet decoder: structure (eq. 1-3), parameter counts, the downsampling ablation, sizes,
.keras."""

import keras
import numpy as np
import pytest

import tfseg
from tfseg.decoders.rgpnet import rgpnet
from tfseg.flops import count_params
from tfseg.models.anatomy import call_count
from tfseg.models.saving import load_model, save_model_atomic
from tfseg.registry import DECODERS

RESNET18_CHANNELS = (64, 128, 256, 512)
BOTTLENECK_CHANNELS = (256, 512, 1024, 2048)  # ResNet50 / ResNet101 P2..P5


def expected_decoder_params(channels, widths, num_classes, *, downsample=True, k=3):
    """Trainable parameters of the decoder by the paper's structure (BN: gamma + beta)."""
    w = dict(zip((2, 3, 4, 5), widths))
    c = dict(zip((2, 3, 4, 5), channels))
    t = sum(c[s] * w[s] + 2 * w[s] for s in w)  # T: 1x1 conv + BN
    d = sum(9 * w[s - 1] * w[s] + 2 * w[s] for s in (3, 4, 5))  # D: 3x3/2 conv + BN
    u = sum(k * k * w[s + 1] * w[s] + 2 * w[s] for s in (2, 3, 4))  # U: kxk/2 deconv + BN
    f = sum(9 * w[s] * w[s] + 4 * w[s] for s in w)  # F: ONE shared 3x3 conv + two BNs
    cls = w[2] * num_classes + num_classes
    return t + (d if downsample else 0) + u + f + cls, d


def decoder_on_symbolic_pyramid(channels, num_classes, size=64, **kwargs):
    """The decoder alone over a pyramid of Inputs: cheap, whatever the encoder's depth."""
    inputs = {
        f"P{s}": keras.Input((size // 2**s, size // 2**s, ch), name=f"p{s}")
        for s, ch in zip((2, 3, 4, 5), channels)
    }
    out = rgpnet(inputs, num_classes, **kwargs)
    return keras.Model(list(inputs.values()), out)


@pytest.fixture(scope="module")
def r18():
    return tfseg.build_model("rgpnet", 19, encoder="resnet18")


def test_registered_and_listed():
    assert "rgpnet" in DECODERS
    assert "rgpnet" in tfseg.list_models()


@pytest.mark.parametrize("channels", [RESNET18_CHANNELS, BOTTLENECK_CHANNELS])
@pytest.mark.parametrize("downsample", [True, False])
def test_decoder_parameters_follow_the_structure(channels, downsample):
    model = decoder_on_symbolic_pyramid(channels, 65, downsample=downsample)
    expected, _ = expected_decoder_params(channels, (64, 128, 256, 512), 65, downsample=downsample)
    assert count_params(model) == expected
    assert model.output.shape[1:] == (64, 64, 65)  # stride 4 -> x4 bilinear -> input size


def test_downsample_false_removes_exactly_the_d_convolutions():
    with_d = decoder_on_symbolic_pyramid(BOTTLENECK_CHANNELS, 19)
    without = decoder_on_symbolic_pyramid(BOTTLENECK_CHANNELS, 19, downsample=False)
    _, d_params = expected_decoder_params(BOTTLENECK_CHANNELS, (64, 128, 256, 512), 19)
    assert count_params(with_d) - count_params(without) == d_params
    names = {layer.name for layer in with_d.layers}
    assert {"rgpnet_d3_conv", "rgpnet_d4_conv", "rgpnet_d5_conv"} <= names
    assert not any(layer.name.startswith("rgpnet_d") for layer in without.layers)
    # Level 5 then has only T (no U above it, no D below): no adaptor sum at all.
    assert "rgpnet_a5" in [layer.name for layer in with_d.layers]
    assert "rgpnet_a5" not in [layer.name for layer in without.layers]


def test_decoder_block_shares_its_convolution():
    model = decoder_on_symbolic_pyramid(RESNET18_CHANNELS, 7, size=32)
    for s in (2, 3, 4, 5):
        conv = model.get_layer(f"rgpnet_f{s}_conv")
        assert call_count(model, conv.name) == 2, "F must call one convolution twice"
        assert len(conv.weights) == 1  # kernel only, no bias
    # Exactly one 3x3 same-width convolution per level inside F.
    f_convs = [
        layer for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith("rgpnet_f")
    ]
    assert len(f_convs) == 4


def test_widths_and_reduction_options():
    m = decoder_on_symbolic_pyramid(BOTTLENECK_CHANNELS, 5, reduction=4)
    assert m.get_layer("rgpnet_t5_conv").filters == 512
    m = decoder_on_symbolic_pyramid(RESNET18_CHANNELS, 5, reduction=4)
    assert m.get_layer("rgpnet_t2_conv").filters == 16
    m = decoder_on_symbolic_pyramid(RESNET18_CHANNELS, 5, widths=(8, 16, 24, 32))
    assert count_params(m) == expected_decoder_params(RESNET18_CHANNELS, (8, 16, 24, 32), 5)[0]
    with pytest.raises(ValueError, match="widths must be 4 positive integers"):
        decoder_on_symbolic_pyramid(RESNET18_CHANNELS, 5, widths=(8, 16, 24))
    with pytest.raises(ValueError, match="either widths= or reduction="):
        decoder_on_symbolic_pyramid(RESNET18_CHANNELS, 5, widths=(8, 16, 24, 32), reduction=4)


def test_resnet18_model_counts_and_any_valid_size(r18):
    assert r18.name == "rgpnet_resnet18"
    encoder = sum(
        int(np.prod(w.shape))
        for layer in r18.layers
        if layer.name.startswith("resnet18")
        for w in layer.trainable_weights
    )
    decoder, _ = expected_decoder_params(RESNET18_CHANNELS, (64, 128, 256, 512), 19)
    assert count_params(r18) == encoder + decoder
    rng = np.random.default_rng(0)
    # Multiples of 32 that are odd multiples (3*32, 5*32): every level has an odd size.
    for h, w in ((64, 128), (96, 160)):
        x = rng.normal(size=(1, h, w, 3)).astype("float32")
        assert tuple(r18(x, training=False).shape) == (1, h, w, 19)


def test_static_size_not_multiple_of_32_is_rejected():
    with pytest.raises(ValueError, match=r"height 100 is not a multiple of the model's stride 32"):
        tfseg.build_model("rgpnet", 5, encoder="resnet18", input_shape=(100, 128, 3))


def test_evaluation_pads_any_size(r18):
    from tfseg.evaluation import make_predict_fn
    from tfseg.predict import predict_image

    image = np.random.default_rng(1).integers(0, 255, size=(50, 70, 3), dtype=np.uint8)
    labels = predict_image(make_predict_fn(r18), image, 32)
    assert labels.shape == (50, 70)


def test_resnet50_builds():
    model = tfseg.build_model("rgpnet", 5, encoder="resnet50", input_shape=(64, 64, 3))
    assert model.output.shape[1:] == (64, 64, 5)
    decoder, _ = expected_decoder_params(BOTTLENECK_CHANNELS, (64, 128, 256, 512), 5)
    encoder = sum(
        int(np.prod(w.shape))
        for layer in model.layers
        if layer.name.startswith("resnet50")
        for w in layer.trainable_weights
    )
    assert count_params(model) == encoder + decoder


def test_save_load_parity(r18, tmp_path):
    path = tmp_path / "rgpnet.keras"
    save_model_atomic(r18, path, include_optimizer=False)
    loaded = load_model(path)
    x = np.random.default_rng(2).normal(size=(1, 64, 96, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(loaded(x, training=False)), np.asarray(r18(x, training=False)), atol=1e-5
    )
    assert count_params(loaded) == count_params(r18)
    assert call_count(loaded, "rgpnet_f3_conv") == 2
