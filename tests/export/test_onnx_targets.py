"""Every registered model converts to ONNX with only ops TensorRT 8.2 (TX2) and 8.5 (Xavier) parse.

Op-level check, no inference: each model is built at 64x64, BatchNorm-folded as the export does,
converted at opset 13 and checked against the TX2 allow-list and restrictions. TensorRT 8.5's list
contains 8.2's, so the same graph is also checked against Xavier's; the opset-17 graph of the
Xavier target is converted for the MobileNet pairs.

Which decoder x encoder pairs: an encoder's ops depend on the output stride its decoder asks for
(8: dilated convolutions in the last stages; 32: none), a decoder's ops on its own layers, not on
the encoder's channel counts. So MobileNet goes under every decoder (and at opset 17), and every
other encoder under one decoder that asks for stride 8 and one that asks for 32, each decoder on
two of them (``COVER``; ``test_cover_is_complete`` keeps it whole as encoders and decoders are
added). ResNet101 and STDC2 are ResNet50 and STDC1 with more of the same blocks (the same op
types, the same feature names for the decoders): they are converted under SkipNet only. The full
cross was 44 pairs, ~250 worker-seconds of the suite; the cover is 20.

Speed: tf2onnx's time grows with the weight bytes (it deep-copies the graph with its constants in
every optimiser pass: UNet-ResNet101 takes ~100 s at full width on 2 cores). Op types do not depend
on channel counts, so ResNet and VGG are built thin here (every Conv2D with >= 32 filters gets an
eighth of them, set only while building); the MobileNets and ShuffleNet use their own width options.
STDC is thinned the same way. The ResNet pairs are the slowest (~5-10 s each) and are marked slow.
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


#: encoder -> (a decoder asking for output stride 8, one asking for 32), each decoder twice;
#: MobileNet goes under every decoder, the deeper variants (``DEEPER``) under SkipNet
COVER = {
    "mobilenetv2": ("dilation", "rgpnet"),
    "resnet18": ("gum", "skipnet"),
    "resnet50": ("igum", "rgpnet"),
    "shufflenet": ("gum", "unet"),
    "stdc1": ("dilation", "skipnet"),
    "vgg16": ("igum", "unet"),
}


def _rtseg_decoders():
    """The decoders checked here: the SMP-layout ones have their own contract, which converts and
    checks them against both allow-lists on MobileNet (tests/decoders/test_smp_decoders.py)."""
    return [d for d in tfseg.list_decoders() if "smp_reference" not in DECODERS.info(d).extra]


def _pairs():
    for decoder in _rtseg_decoders():
        for encoder in tfseg.list_encoders():
            if encoder == "mobilenet" or decoder in COVER.get(encoder, ()) or (
                encoder in DEEPER and decoder == "skipnet"
            ):
                marks = [pytest.mark.slow] if encoder in HEAVY else []
                yield pytest.param(decoder, encoder, id=f"{decoder}-{encoder}", marks=marks)
    # Zoo networks (registered with a reference row) are checked against both allow-lists by the
    # model contract's export step (tests/models/test_zoo.py), on the graph it converts anyway.
    for name in MODELS.names():
        if "reference" not in MODELS.info(name).extra:
            yield pytest.param(name, None, id=name)


def test_cover_is_complete():
    """Every encoder but MobileNet and the deeper variants is in ``COVER`` under one stride-8 and
    one stride-32 decoder, and every decoder checked here is on two of them."""
    decoders = _rtseg_decoders()
    stride = {d: DECODERS.info(d).encoder_output_stride for d in decoders}
    others = sorted(set(tfseg.list_encoders()) - {"mobilenet", *DEEPER})
    assert sorted(COVER) == others, "add the new encoder to COVER"
    for encoder, pair in COVER.items():
        assert sorted(stride[d] for d in pair) == [8, 32], (encoder, pair)
    uses = {d: sum(d in pair for pair in COVER.values()) for d in decoders}
    assert all(n == 2 for n in uses.values()), f"each decoder on two encoders of COVER: {uses}"


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
