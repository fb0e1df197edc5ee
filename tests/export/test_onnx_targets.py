"""Every registered model converts to ONNX with only ops TensorRT 8.2 (TX2) and 8.5 (Xavier) parse.

Op-level check, no inference: each decoder x encoder pair (and each complete network) is built at
64x64, BatchNorm-folded as the export does, converted at opset 13 and checked against the TX2
allow-list and restrictions. TensorRT 8.5's list contains 8.2's, so the same graph is also checked
against Xavier's; the opset-17 graph of the Xavier target is converted for the MobileNet pairs.

Speed: tf2onnx's time grows with the weight bytes (it deep-copies the graph with its constants in
every optimiser pass: UNet-ResNet101 takes ~100 s at full width on 2 cores). Op types do not depend
on channel counts, so ResNet and VGG are built thin here (every Conv2D with >= 32 filters gets an
eighth of them, set only while building); the MobileNets and ShuffleNet use their own width options.
STDC is thinned the same way. ResNet101 and STDC2 are ResNet50 and STDC1 with more of the same
blocks (the same op types, the same feature names for the decoders): they are converted under one
decoder (SkipNet), the shallower ones under every decoder. The ResNet pairs are the slowest (~5-10 s
each) and are marked slow.
"""

import keras
import pytest

import tfseg
from tfseg.export_lib.graph import inference_model
from tfseg.export_lib.onnx_export import check_onnx_model, convert_onnx, format_problems
from tfseg.export_lib.pipeline import REWRITES
from tfseg.models import stride_of
from tfseg.registry import DECODERS, MODELS

SMALL = {
    "mobilenet": {"alpha": 0.25},
    "mobilenetv2": {"alpha": 0.25},
    "shufflenet": {"scale": 0.25},
}
THIN = ("resnet18", "resnet50", "resnet101", "vgg16", "stdc1", "stdc2")
HEAVY = ("resnet50", "resnet101")
#: deeper variant -> the encoder with the same blocks, checked under every decoder
DEEPER = {"resnet101": "resnet50", "stdc2": "stdc1"}


def _pairs():
    for decoder in tfseg.list_decoders():
        if "smp_reference" in DECODERS.info(decoder).extra:
            # The SMP-layout decoders: their model contract (tests/decoders/test_smp_decoders.py)
            # converts and checks them against both allow-lists on MobileNet; the encoders' own ops
            # are checked here under RTSeg's decoders. (9 decoders x 9 encoders would add ~15 min.)
            continue
        for encoder in tfseg.list_encoders():
            if encoder in DEEPER and decoder != "skipnet":
                continue
            marks = [pytest.mark.slow] if encoder in HEAVY else []
            yield pytest.param(decoder, encoder, id=f"{decoder}-{encoder}", marks=marks)
    # Zoo networks (registered with a reference row) are checked against both allow-lists by the
    # model contract's export step (tests/models/test_zoo.py), on the graph it converts anyway.
    for name in MODELS.names():
        if "reference" not in MODELS.info(name).extra:
            yield pytest.param(name, None, id=name)


def _build(name, encoder, monkeypatch):
    stride = stride_of(name)
    size = max(64, 2 * stride)
    with monkeypatch.context() as m:
        if encoder in THIN:
            original = keras.layers.Conv2D.__init__

            def thin(self, filters, *args, **kwargs):
                # RGPNet's decoder is made thin through its widths instead: its shared convolution
                # takes its filters from its (already thin) input.
                if "rgpnet" in str(kwargs.get("name", "")):
                    return original(self, filters, *args, **kwargs)
                if filters >= 32 and kwargs.get("groups", 1) == 1:
                    filters //= 8
                original(self, filters, *args, **kwargs)

            m.setattr(keras.layers.Conv2D, "__init__", thin)
        extra = {"widths": (8, 16, 32, 64)} if name == "rgpnet" else {}
        model = tfseg.build_model(
            name,
            5,
            encoder=encoder,
            input_shape=(size, size, 3),
            encoder_kwargs=SMALL.get(encoder),
            **extra,
        )
    folded, _ = inference_model(model, **REWRITES["onnx"])  # the graph --format=onnx converts
    return folded, size


def _check(model, proto, target):
    problems = check_onnx_model(proto, target, [layer.name for layer in model.layers])
    assert not problems, format_problems(problems, target)


@pytest.mark.parametrize("name,encoder", list(_pairs()))
def test_jetson_targets_accept_every_model(name, encoder, monkeypatch):
    model, size = _build(name, encoder, monkeypatch)
    proto = convert_onnx(model, opset=13, input_shape=(1, size, size))
    _check(model, proto, "tx2")
    _check(model, proto, "xavier")
    if encoder == "mobilenet":
        _check(model, convert_onnx(model, opset=17, input_shape=(1, size, size)), "xavier")
    keras.backend.clear_session()
