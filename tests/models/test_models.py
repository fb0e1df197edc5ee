"""Every encoder x decoder pair builds and runs at two sizes; GFLOPs against RTSeg. The full model
contract (training, .keras parity, export) runs in tests/models/test_contract.py."""

import keras
import numpy as np
import pytest

import tfseg
from tfseg.flops import model_macs
from tfseg.models import model_stride

# Small, fast variants for the structural tests (the paper widths are checked by the GFLOPs test).
FAST_KWARGS = {"mobilenet": {"alpha": 0.25}, "shufflenet": {"scale": 0.5}}
RTSEG_DECODERS = ("skipnet", "unet", "dilation")
PAIRS = [(d, e) for d in RTSEG_DECODERS for e in tfseg.list_encoders()]


def test_public_api_lists_names():
    assert {"skipnet", "unet", "dilation"} <= set(tfseg.list_decoders())
    assert {"vgg16", "resnet18", "resnet50", "resnet101", "mobilenet", "shufflenet"} <= set(
        tfseg.list_encoders()
    )
    assert set(tfseg.list_decoders()) <= set(tfseg.list_models())


def test_unknown_names_list_the_choices():
    with pytest.raises(KeyError, match="choose one of"):
        tfseg.build_model("skipnet", 5, encoder="mobilenet_v9")
    with pytest.raises(KeyError, match="choose one of"):
        tfseg.build_model("fcn_typo", 5, encoder="mobilenet")
    with pytest.raises(ValueError, match="needs an encoder"):
        tfseg.build_model("skipnet", 5)


def test_static_size_not_divisible_by_stride_is_rejected():
    with pytest.raises(ValueError, match="multiple of the model's stride 32"):
        tfseg.build_model("skipnet", 5, encoder="mobilenet", input_shape=(100, 128, 3))


def test_skipnet_finest_level_adds_stride4_scores():
    """``finest="P3"`` is RTSeg's FCN8s (unchanged layer names, so its weights still load);
    ``"P2"`` fuses one more score map at stride 4 and upsamples x4 at the end."""
    base = tfseg.build_model("skipnet", 5, encoder="mobilenet", encoder_kwargs={"alpha": 0.25})
    fine = tfseg.build_model(
        "skipnet", 5, encoder="mobilenet", encoder_kwargs={"alpha": 0.25}, finest="P2"
    )
    base_names = {layer.name for layer in base.layers}
    fine_names = {layer.name for layer in fine.layers}
    assert {"skipnet_score_p3", "skipnet_up_p3"} <= base_names
    assert not {n for n in base_names if n.endswith("_p2")}
    assert {"skipnet_score_p2", "skipnet_fuse_p2", "skipnet_up_p2"} <= fine_names
    assert fine.get_layer("skipnet_up_p2").strides == (4, 4)
    assert base.get_layer("skipnet_up_p3").strides == (8, 8)
    x = np.random.default_rng(0).normal(size=(1, 64, 96, 3)).astype("float32")
    assert tuple(fine(x, training=False).shape) == (1, 64, 96, 5)
    with pytest.raises(ValueError, match="finest"):
        tfseg.build_model("skipnet", 5, encoder="mobilenet", finest="P5")


@pytest.mark.parametrize("decoder,encoder", PAIRS)
def test_pair_builds_and_runs(decoder, encoder):
    kwargs = FAST_KWARGS.get(encoder, {})
    model = tfseg.build_model(decoder, 5, encoder=encoder, encoder_kwargs=kwargs)
    assert model_stride(model) == 32
    rng = np.random.default_rng(0)
    # Dynamic input: two different sizes through one model.
    for h, w in ((64, 96), (96, 64)):
        x = rng.normal(size=(1, h, w, 3)).astype("float32")
        assert tuple(model(x, training=False).shape) == (1, h, w, 5)


# RTSeg Table 1 (1024x512) and Table 3 (640x360), 20 classes: (decoder, encoder, size, GFLOPs,
# tolerance). The UNet pairs with ResNet18 / ShuffleNet differ more; docs/results.md ("GFLOPs
# against the paper") explains why. Dilation-MobileNet is the authors' heavy layout (the default
# variant); Dilation-ShuffleNet matches no layout (test_dilation_shufflenet_layouts).
PAPER_GFLOPS = [
    ("skipnet", "mobilenet", (512, 1024), 13.8, 0.15),
    ("skipnet", "shufflenet", (512, 1024), 4.63, 0.15),
    ("unet", "mobilenet", (512, 1024), 55.9, 0.15),
    ("unet", "resnet18", (512, 1024), 43.9, 0.20),
    ("unet", "shufflenet", (512, 1024), 17.9, 0.25),
    ("dilation", "mobilenet", (512, 1024), 150, 0.06),
    ("skipnet", "mobilenet", (352, 640), 6.2, 0.15),
    ("skipnet", "shufflenet", (352, 640), 2.0, 0.15),
]


@pytest.mark.parametrize("decoder,encoder,size,paper,tolerance", PAPER_GFLOPS)
def test_gflops_against_rtseg(decoder, encoder, size, paper, tolerance):
    # 640x360 is not a multiple of 32; the model runs it padded to 640x384 (what we count), so
    # compare per-pixel cost scaled to 360 rows.
    model = tfseg.build_model(decoder, 20, encoder=encoder, input_shape=(*size, 3))
    gflops = 2 * model_macs(model) / 1e9
    if size[0] == 352:
        gflops *= 360 / 352
    assert abs(gflops - paper) / paper <= tolerance, (
        f"{decoder}-{encoder}: {gflops:.2f} vs paper {paper}"
    )


def test_dilation_mobilenet_paper_figure_includes_the_unused_encoder_tail():
    """The authors' graph also runs MobileNet's stride-32 tail (blocks 6-13, unused by the
    dilation branch); a graph-wide FLOP count adds it: ours + that tail is Table 1's 150."""
    from tfseg.encoders.core import build_encoder_model

    model = tfseg.build_model("dilation", 20, encoder="mobilenet", input_shape=(512, 1024, 3))
    encoder = build_encoder_model("mobilenet", (512, 1024, 3))
    p3 = keras.Model(encoder.inputs, encoder.output["P3"])
    tail = model_macs(encoder) - model_macs(p3)
    gflops = 2 * (model_macs(model) + tail) / 1e9
    assert abs(gflops - 150) / 150 <= 0.01, gflops
    # The heavy layout: full 3x3 atrous convolutions 256->512 (rate 2) and 512->1024 (rate 4).
    assert model.get_layer("dilation_atrous1_conv").dilation_rate == (2, 2)
    assert model.get_layer("dilation_atrous2_conv").kernel.shape == (3, 3, 512, 1024)
    assert model.get_layer("dilation_atrous2_conv").dilation_rate == (4, 4)


def test_dilation_shufflenet_layouts():
    """Neither layout gives Table 1's 71.6 (docs/results.md): the released ShuffleNet code is the
    light one (16.6 GFLOPs), the MobileNet rule on ShuffleNet gives 122.2."""
    measured = {}
    for variant in ("paper", "light"):
        model = tfseg.build_model(
            "dilation", 20, encoder="shufflenet", input_shape=(512, 1024, 3), variant=variant
        )
        measured[variant] = 2 * model_macs(model) / 1e9
    assert abs(measured["light"] - 16.64) < 0.05 and abs(measured["paper"] - 122.24) < 0.05


def test_dilation_light_variant_is_the_dilated_encoder():
    kw = {"encoder": "mobilenet", "encoder_kwargs": {"alpha": 0.25}}
    light = tfseg.build_model("dilation", 5, variant="light", **kw)
    paper = tfseg.build_model("dilation", 5, **kw)
    light_names = {layer.name for layer in light.layers}
    paper_names = {layer.name for layer in paper.layers}
    # light: MobileNet through block 13, dilated; paper: MobileNet up to P3 (block 5) + context.
    assert light.get_layer("mobilenet_conv_dw_13").dilation_rate == (4, 4)
    assert "dilation_atrous1_conv" not in light_names
    assert "mobilenet_conv_dw_6" not in paper_names and "mobilenet_conv_pw_5" in paper_names
    x = np.random.default_rng(0).normal(size=(1, 64, 96, 3)).astype("float32")
    for model in (light, paper):
        assert tuple(model(x, training=False).shape) == (1, 64, 96, 5)
    with pytest.raises(ValueError, match="variant must be one of"):
        tfseg.build_model("dilation", 5, variant="heavy", **kw)


def test_skipnet_fc6_fc7_option_is_fcn8s_vgg16():
    """``fc_channels=4096``: FCN's fc6 (7x7) / fc7 (1x1) on P5; RTSeg's 445.9 for SkipNet-VGG16."""
    model = tfseg.build_model(
        "skipnet", 20, encoder="vgg16", input_shape=(512, 1024, 3), fc_channels=4096
    )
    assert model.get_layer("skipnet_fc6").kernel.shape == (7, 7, 512, 4096)
    assert model.get_layer("skipnet_fc7").kernel.shape == (1, 1, 4096, 4096)
    gflops = 2 * model_macs(model) / 1e9
    assert abs(gflops - 445.9) / 445.9 <= 0.01, gflops
    with pytest.raises(ValueError, match="fc_channels"):
        tfseg.build_model("skipnet", 5, encoder="mobilenet", fc_channels=-1)


def test_symbolic_build_counts_and_shapes_as_the_real_one():
    """``build_symbolic_model``: the same parameters, MACs and output shape as ``build_model``,
    with no variable given a value."""
    import keras

    from tfseg.flops import count_params
    from tfseg.models import build_symbolic_model

    real = tfseg.build_model("fastscnn", 19, input_shape=(128, 256, 3))
    want = (count_params(real), model_macs(real), tuple(real.output.shape))
    keras.backend.clear_session()
    symbolic = build_symbolic_model("fastscnn", 19, input_shape=(128, 256, 3))
    assert (count_params(symbolic), model_macs(symbolic), tuple(symbolic.output.shape)) == want
    assert all(v._value is None for v in symbolic.variables)  # no value was created
    spec = symbolic.compute_output_spec(keras.KerasTensor((1, 128, 256, 3)))
    keras.backend.clear_session()
    assert tuple(spec.shape) == (1, 128, 256, 19)
