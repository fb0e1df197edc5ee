"""The encoder-decoder library decoders (segmentation_models_pytorch layouts) against SMP's figures.

Every decoder registered with ``smp_reference="<decoder>"`` (the ``decoder`` column of
``docs/reference/smp_reference.csv``: SMP 0.3.2's trainable parameters for 19 classes, random init,
and conv/matmul GMACs at 1x3x512x1024, per encoder) is checked here over each encoder of that table:

- ``resnet18``: tfseg's ``resnet18`` (torchvision's layout already);
- ``resnet50`` / ``resnet101``: tfseg's with ``layout="torchvision"`` (SMP wraps torchvision's; the
  default keras-applications layout has conv biases and strides its 1x1 convolutions);
- ``mobilenet_v2``: tfseg's ``mobilenetv2`` with ``include_last_conv=True`` (SMP's deepest feature
  is torchvision's ``features[18]``, the 1x1 convolution to 1280 channels).

So whole models are compared, parameter for parameter: within 1 %, MACs within 5 %. Where SMP counts
parameters its forward never runs (PSPNet's encoder stages below ``encoder_depth``; the count is in
the row's note), a Keras functional model holds only the layers its outputs depend on, so the
reference less those is compared. Counting needs no execution (the MACs come from the layer shapes
of a static 512x1024 build).

``test_smp_decoder_contract`` runs the shared model contract, export parity included, on a
quarter-width MobileNet; ``test_smp_decoder_on_every_encoder`` builds each decoder symbolically on
the other encoder families.
"""

import csv
import os
import re

import keras
import pytest
from model_contract import check_model_contract

from tfseg.flops import count_params, model_macs
from tfseg.models import build_symbolic_model
from tfseg.registry import DECODERS, ENCODERS

REFERENCE_CSV = os.path.join(
    os.path.dirname(__file__), "..", "..", "docs", "reference", "smp_reference.csv"
)
PARAM_TOLERANCE = 0.01
MAC_TOLERANCE = 0.05

# SMP encoder name -> (tfseg encoder, encoder_kwargs) with SMP's layout.
SMP_ENCODERS = {
    "resnet18": ("resnet18", {}),
    "resnet50": ("resnet50", {"layout": "torchvision"}),
    "resnet101": ("resnet101", {"layout": "torchvision"}),
    "mobilenet_v2": ("mobilenetv2", {"include_last_conv": True}),
}
UNUSED = re.compile(r"(\d+) params sit in encoder stages the forward never runs")


def reference_rows():
    with open(REFERENCE_CSV) as f:
        return {(row["decoder"], row["encoder"]): row for row in csv.DictReader(f)}


def smp_decoders():
    return [n for n in DECODERS.names() if "smp_reference" in DECODERS.info(n).extra]


def smp_cases():
    rows = reference_rows()
    return [
        (name, encoder)
        for name in smp_decoders()
        for (decoder, encoder) in rows
        if decoder == DECODERS.info(name).extra["smp_reference"]
    ]


CASES = smp_cases()


def test_every_smp_reference_exists_for_the_four_encoders():
    rows = reference_rows()
    for name in smp_decoders():
        ref = DECODERS.info(name).extra["smp_reference"]
        assert {e for d, e in rows if d == ref} == set(SMP_ENCODERS), name


@pytest.mark.parametrize("name,smp_encoder", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_params_and_macs_match_smp(name, smp_encoder):
    row = reference_rows()[(DECODERS.info(name).extra["smp_reference"], smp_encoder)]
    encoder, encoder_kwargs = SMP_ENCODERS[smp_encoder]
    model = build_symbolic_model(
        name, 19, encoder=encoder, encoder_kwargs=encoder_kwargs, input_shape=(512, 1024, 3)
    )
    params, macs = count_params(model), model_macs(model) / 1e9
    keras.backend.clear_session()
    unused = UNUSED.search(row["note"])
    ref_params = int(row["trainable_params"]) - (int(unused.group(1)) if unused else 0)
    ref_macs = float(row["gmacs_1x512x1024"])
    assert abs(params - ref_params) / ref_params <= PARAM_TOLERANCE, (
        f"{name} on {smp_encoder}: {params:,} trainable parameters, SMP {ref_params:,}"
    )
    assert abs(macs - ref_macs) / ref_macs <= MAC_TOLERANCE, (
        f"{name} on {smp_encoder}: {macs:.3f} GMACs, SMP {ref_macs:.3f}"
    )


@pytest.mark.parametrize("name", smp_decoders())
def test_smp_decoder_contract(name, tmp_path):
    # On a quarter-width MobileNet: the decoder's layers and ops, without ResNet's 45 MB of weights
    # in the ONNX conversion. ``contract_kwargs=`` at registration: decoder options for this test.
    kwargs = dict(DECODERS.info(name).extra.get("contract_kwargs", {}))
    # (The any_size build is left to tests/models/test_contract.py's decoders: the same two layers
    # around any network.)
    check_model_contract(
        name, tmp_path, encoder="mobilenet", encoder_kwargs={"alpha": 0.25}, export=True,
        any_size=False, **kwargs
    )
    keras.backend.clear_session()


# The encoder families the SMP table does not cover (stdc2 has stdc1's pyramid).
OTHER_ENCODERS = [
    e for e in ENCODERS.names() if e not in {"resnet18", "resnet50", "resnet101", "stdc2"}
]


@pytest.mark.parametrize("name", smp_decoders())
def test_smp_decoder_on_every_encoder(name):
    for encoder in OTHER_ENCODERS:
        model = build_symbolic_model(name, 19, encoder=encoder)
        spec = model.compute_output_spec(keras.KerasTensor((1, 256, 512, 3)))
        keras.backend.clear_session()
        assert model.name == f"{name}_{encoder}"
        assert tuple(spec.shape) == (1, 256, 512, 19), encoder
