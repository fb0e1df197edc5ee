"""Complete networks built on an encoder (``MODELS`` registered with ``default_encoder=``): the
encoder is the network's own by default, any registered encoder on request (``encoder=`` /
``--encoder``), and networks without an encoder refuse one.

A throwaway network (a 1x1 classifier on P3 of its encoder) stands in for the zoo's BiSeNetV1,
LinkNet, SwiftNet, ...: the seam is the same for all of them.
"""

import keras
import numpy as np
import pytest
from absl import flags

import tfseg
from tfseg import train as train_prog
from tfseg.encoders import encoder_pyramid
from tfseg.layers import BilinearUpsample
from tfseg.models import get_anatomy, resolve_encoder, takes_encoder
from tfseg.registry import MODELS

NAME = "probe_encoder_net"


def _probe(inputs, num_classes, *, encoder, encoder_kwargs=None, width=8, name=NAME):
    pyramid = encoder_pyramid(inputs, encoder, encoder_kwargs=encoder_kwargs)
    x = keras.layers.Conv2D(width, 1, name=f"{name}_reduce")(pyramid["P3"])
    x = keras.layers.Conv2D(num_classes, 1, name=f"{name}_classifier")(x)
    return BilinearUpsample(8, name=f"{name}_up")(x)


@pytest.fixture
def probe():
    MODELS.register(NAME, stride=32, default_encoder="resnet18", paper="probe")(_probe)
    yield NAME
    MODELS.unregister(NAME)
    keras.backend.clear_session()


def test_default_and_chosen_encoder(probe):
    assert takes_encoder(probe) and not takes_encoder("enet") and takes_encoder("unet")
    default = tfseg.build_model(probe, 5, input_shape=(64, 64, 3))
    assert default.name == probe and get_anatomy(default).encoder == "resnet18"
    assert any(layer.name.startswith("resnet18_") for layer in default.layers)
    other = tfseg.build_model(
        probe, 5, encoder="mobilenet", encoder_kwargs={"alpha": 0.25}, input_shape=(64, 64, 3)
    )
    assert other.name == f"{probe}_mobilenet" and get_anatomy(other).encoder == "mobilenet"
    assert other.count_params() < default.count_params()
    out = other(np.zeros((1, 64, 64, 3), "float32"))
    assert tuple(out.shape) == (1, 64, 64, 5)


def test_bad_encoder_arguments_name_the_culprit(probe):
    with pytest.raises(KeyError, match="unknown encoder 'resnet9'"):
        tfseg.build_model(probe, 5, encoder="resnet9")
    with pytest.raises(ValueError, match="'alpha'"):
        tfseg.build_model(probe, 5, encoder_kwargs={"alpha": 0.5})  # resnet18 has no alpha
    with pytest.raises(ValueError, match="'widht'"):
        tfseg.build_model(probe, 5, widht=4)


def test_networks_without_an_encoder_refuse_one():
    assert resolve_encoder("enet", None) is None
    with pytest.raises(ValueError, match="'enet' is a complete network without an encoder"):
        tfseg.build_model("enet", 5, encoder="resnet18")
    with pytest.raises(ValueError, match="no encoder"):
        tfseg.build_model("enet", 5, encoder_kwargs={"alpha": 0.5})


def _config(argv):
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train", *argv])
    return train_prog.config_from_flags(fv)


def test_encoder_flag(probe):
    assert _config([f"--model={probe}"]).model.encoder == "resnet18"
    assert _config([f"--model={probe}", "--encoder=mobilenet"]).model.encoder == "mobilenet"
    assert _config(["--model=unet"]).model.encoder == "mobilenet"  # the decoders' default
    with pytest.raises(ValueError, match="--encoder: model 'enet'"):
        _config(["--model=enet", "--encoder=resnet18"])
    with pytest.raises(ValueError, match="--model_kwargs: give the encoder as --encoder"):
        _config([f"--model={probe}", '--model_kwargs={"encoder": "mobilenet"}'])
