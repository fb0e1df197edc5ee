import os

import pytest
from absl import flags

from tfseg import train as train_prog
from tfseg.config import Config, parse_size
from tfseg.registry import DECODERS, ENCODERS, MODELS


def _parse(argv):
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train"] + argv)
    return fv


def test_quickstart_flagfile_parses_into_config():
    fv = _parse(["--flagfile=configs/quickstart.cfg"])
    config = train_prog.config_from_flags(fv)
    assert config.data.dataset == "synthetic"
    assert config.model.name in MODELS.names() and config.model.encoder is None
    assert Config.from_json(config.to_json()) == config


CITYSCAPES_CFGS = sorted(os.listdir("configs/cityscapes"))


def _is_rtseg_pair(cfg):
    decoder = cfg.split("_", 1)[0]
    return (
        "_" in cfg and decoder in DECODERS.names()
        and DECODERS.info(decoder).paper.startswith("RTSeg")
    )  # fmt: skip


def _smp_pair(cfg):
    """``(decoder, encoder)`` of an SMP-layout decoder's ``<decoder>_<encoder>.cfg``, or None."""
    stem = cfg[: -len(".cfg")]
    for name in DECODERS.names():
        if "smp_reference" in DECODERS.info(name).extra and stem.startswith(name + "_"):
            if stem[len(name) + 1 :] in ENCODERS.names():
                return name, stem[len(name) + 1 :]
    return None


# RTSeg pairs only: the rgpnet_*.cfg files follow RGPNet's own recipe (SGD, OHEM), see
# docs/rgpnet.md; the real-time zoo's <network>.cfg files follow the PyTorch reference zoo's recipe
# (below).
@pytest.mark.parametrize("cfg", [f for f in CITYSCAPES_CFGS if _is_rtseg_pair(f)])
def test_cityscapes_flagfiles_follow_the_paper_recipe(cfg):
    fv = _parse([f"--flagfile=configs/cityscapes/{cfg}", "--class_weights="])
    assert fv.optimizer == "adam" and fv.learning_rate == 1e-4 and fv.weight_decay == 5e-4
    assert fv.loss == "weighted_ce" and fv.crop_size == "512x1024"
    model, encoder = cfg[: -len(".cfg")].split("_", 1)
    assert (fv.model, fv.encoder) == (model, encoder)


@pytest.mark.parametrize(
    "cfg", [f for f in CITYSCAPES_CFGS if f[: -len(".cfg")] in MODELS.names()]
)
def test_zoo_flagfiles_parse_and_name_their_network(cfg):
    fv = _parse([f"--flagfile=configs/cityscapes/{cfg}"])
    assert fv.model == cfg[: -len(".cfg")]
    config = train_prog.config_from_flags(fv)
    assert Config.from_json(config.to_json()) == config


@pytest.mark.parametrize("cfg", [f for f in CITYSCAPES_CFGS if _smp_pair(f)])
def test_smp_decoder_flagfiles_parse_and_name_their_pair(cfg):
    fv = _parse([f"--flagfile=configs/cityscapes/{cfg}"])
    assert (fv.model, fv.encoder) == _smp_pair(cfg)
    config = train_prog.config_from_flags(fv)
    assert Config.from_json(config.to_json()) == config


def test_command_line_overrides_flagfile():
    fv = _parse(["--flagfile=configs/quickstart_skipnet.cfg", "--epochs=3", "--encoder=resnet18"])
    config = train_prog.config_from_flags(fv)
    assert config.train.epochs == 3 and config.model.encoder == "resnet18"


def test_unknown_names_fail_at_parse_time_with_choices():
    for argv, culprit in (
        (["--model=segnetz"], "segnetz"),
        (["--encoder=mobilenetv9"], "mobilenetv9"),
        (["--dataset=kitti_typo"], "kitti_typo"),
    ):
        with pytest.raises(flags.IllegalFlagValueError, match=culprit) as e:
            _parse(argv)
        assert "one of" in str(e.value)


def test_wrong_flag_name_fails():
    with pytest.raises(flags.UnrecognizedFlagError, match="learnin_rate"):
        _parse(["--learnin_rate=0.1"])


def test_bad_values_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="crop_size"):
        train_prog.config_from_flags(_parse(["--crop_size=abc"]))
    with pytest.raises(ValueError, match="encoder_kwargs"):
        train_prog.config_from_flags(_parse(["--encoder_kwargs={alpha: 1"]))
    with pytest.raises(ValueError, match="class_weights"):
        train_prog.config_from_flags(_parse(["--loss=weighted_ce"]))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        train_prog.config_from_flags(_parse([f"--class_weights={tmp_path}/nope.json"]))


def test_parse_size():
    assert parse_size("512x1024") == (512, 1024)
    assert parse_size("256") == (256, 256)
    for bad in ("0x5", "axb", "1x2x3"):
        with pytest.raises(ValueError):
            parse_size(bad)


ALL_CFGS = sorted(
    os.path.join(root, f) for root, _, files in os.walk("configs") for f in files
    if f.endswith(".cfg")
)  # fmt: skip


def _model_of(fv):
    """``(model, encoder, model_kwargs, encoder_kwargs)`` a parsed flagfile trains."""
    from tfseg.models.build import needs_encoder

    encoder = fv.encoder if fv["encoder"].present or needs_encoder(fv.model) else None
    return fv.model, encoder, fv.model_kwargs, fv.encoder_kwargs


def _models_of_all_cfgs():
    models = {}
    for cfg in ALL_CFGS:
        models.setdefault(_model_of(_parse([f"--flagfile={cfg}"])), cfg)
    return models


def test_every_flagfile_parses():
    assert len(ALL_CFGS) >= 60
    for name in ("ssn.cfg", "enet_paper.cfg", "erfnet_paper.cfg", "espnet_paper.cfg"):
        assert f"configs/cityscapes/{name}" in ALL_CFGS
    assert len(_models_of_all_cfgs()) >= 50


_CFG_MODELS = _models_of_all_cfgs()


def _built_by_the_zoo_tests(key):
    """A zoo network's default build, which tests/models/test_zoo.py builds twice already (the
    model contract at a dynamic size, the parameter count with 19 classes): not built again here.
    Networks whose contract runs another build (``contract_kwargs=``, or on another encoder:
    ``any_encoder=``) are."""
    from tfseg.registry import MODELS

    name, encoder, model_kwargs, encoder_kwargs = key
    if name not in MODELS.names() or (model_kwargs, encoder_kwargs) != ("{}", "{}"):
        return False
    extra = MODELS.info(name).extra
    default = encoder in (None, MODELS.info(name).default_encoder)
    return (default and "reference" in extra and "contract_kwargs" not in extra
            and not extra.get("any_encoder"))


_BUILD_CASES = [key for key in _CFG_MODELS if not _built_by_the_zoo_tests(key)]


def test_flagfile_builds_left_to_the_zoo_tests():
    """The zoo's default builds are skipped below, and only they: the rest still build here."""
    skipped = [k[0] for k in _CFG_MODELS if _built_by_the_zoo_tests(k)]
    assert len(skipped) >= 15 and "enet" in skipped and "bisenetv1" not in skipped
    assert "segnet" not in skipped  # its contract builds a thinner SegNet


@pytest.mark.slow  # ~35 distinct models, ~2 s each: one case each, so pytest-xdist spreads them
@pytest.mark.parametrize(
    "key", _BUILD_CASES, ids=[os.path.basename(_CFG_MODELS[k])[:-4] for k in _BUILD_CASES]
)
def test_every_flagfile_builds_its_model(key):
    """The model a ``configs/**/*.cfg`` names builds (each distinct model / encoder / kwargs once,
    symbolically at a small size)."""
    import json

    import keras

    from tfseg.models.build import build_symbolic_model, stride_of

    model, encoder, model_kwargs, encoder_kwargs = key
    built = build_symbolic_model(
        model, 19, encoder=encoder, encoder_kwargs=json.loads(encoder_kwargs),
        **json.loads(model_kwargs),
    )  # fmt: skip
    h = max(64, 2 * stride_of(model))
    spec = built.compute_output_spec(keras.KerasTensor((1, h, 2 * h, 3)))
    keras.backend.clear_session()
    assert tuple(spec.shape) == (1, h, 2 * h, 19), _CFG_MODELS[key]
