"""The real-time zoo against the reference implementation, and the model contract for every network.

Every complete network registered with ``reference="<Model>"`` (the row of
``docs/reference/zoo_reference.csv``, copied from ``shared/reference``: the PyTorch reference zoo's
trainable parameters for 19 classes with auxiliary heads off, and conv/matmul GMACs at 1x3x512x1024)
is checked here: parameters within 1 % and MACs within 5 %. Counting needs no execution (the MACs
come from the layer shapes of a static 512x1024 build). ``test_model_contract`` runs the shared
contract (``tests/model_contract.py``) with LiteRT / ONNX export parity on one small size.
"""

import csv
import os

import keras
import pytest
from model_contract import check_model_contract

from tfseg.flops import count_params, model_macs
from tfseg.models import build_symbolic_model
from tfseg.registry import MODELS

REFERENCE_CSV = os.path.join(
    os.path.dirname(__file__), "..", "..", "docs", "reference", "zoo_reference.csv"
)
PARAM_TOLERANCE = 0.01
MAC_TOLERANCE = 0.05


def reference_rows():
    with open(REFERENCE_CSV) as f:
        return {row["model"]: row for row in csv.DictReader(f)}


def zoo_networks():
    """``(registered name, reference row name)`` of every network that names a reference row."""
    return [
        (name, MODELS.info(name).extra["reference"])
        for name in MODELS.names()
        if "reference" in MODELS.info(name).extra
    ]


ZOO = zoo_networks()


def test_every_reference_name_exists():
    rows = reference_rows()
    missing = [(n, r) for n, r in ZOO if r not in rows]
    assert not missing, f"reference rows not found in {REFERENCE_CSV}: {missing}"


@pytest.mark.parametrize("name,reference", ZOO, ids=[n for n, _ in ZOO])
def test_params_and_macs_match_the_reference(name, reference):
    row = reference_rows()[reference]
    model = build_symbolic_model(name, 19, input_shape=(512, 1024, 3))
    params, macs = count_params(model), model_macs(model) / 1e9
    ref_params, ref_macs = int(row["trainable_params"]), float(row["gmacs_1x512x1024"])
    # ``reference_gmacs=`` at registration: the reference's count less work it does the slow way
    # for the same result (FANet's n x n attention product), explained in the network's docstring.
    ref_macs = float(MODELS.info(name).extra.get("reference_gmacs", ref_macs))
    keras.backend.clear_session()
    assert abs(params - ref_params) / ref_params <= PARAM_TOLERANCE, (
        f"{name}: {params:,} trainable parameters, reference {ref_params:,}"
    )
    assert abs(macs - ref_macs) / ref_macs <= MAC_TOLERANCE, (
        f"{name}: {macs:.3f} GMACs, reference {ref_macs:.3f}"
    )


AUX = [n for n, _ in ZOO if "reference_aux_params" in MODELS.info(n).extra]


@pytest.mark.parametrize("name", AUX)
def test_params_with_auxiliary_heads_match_the_reference(name):
    """Networks registered with ``reference_aux_params=``: the count with ``heads=("aux",)``
    (every auxiliary head the reference trains with) within 1 % of the reference's."""
    want = int(MODELS.info(name).extra["reference_aux_params"])
    model = build_symbolic_model(name, 19, input_shape=(512, 1024, 3), heads=("aux",))
    params = count_params(model)
    keras.backend.clear_session()
    assert len(model.outputs) > 1, f"{name}: heads=('aux',) added no output"
    assert abs(params - want) / want <= PARAM_TOLERANCE, (
        f"{name}: {params:,} trainable parameters with aux heads, reference {want:,}"
    )


# The contract's ``any_size=True`` build (1-3 s a network) on networks of strides 8, 32 and 64, two
# of them with branches that see the image at several resolutions: the padding and the crop are
# the same two layers around every network (tests/model_contract.py).
ANY_SIZE = ("enet", "icnet", "ddrnet", "lite_hrnet")


@pytest.mark.parametrize("name", [n for n, _ in ZOO])
def test_model_contract(name, tmp_path):
    # ``contract_kwargs=`` at registration: builder options for this test only (a thinner build of
    # a large network, same layers and ops; tf2onnx's time grows with the weight bytes).
    kwargs = dict(MODELS.info(name).extra.get("contract_kwargs", {}))
    if MODELS.info(name).extra.get("any_encoder"):
        # a network on any encoder: its decoder on a thin one (ResNet18's 45 MB of weights would
        # dominate the ONNX conversion; the default build is counted above)
        kwargs.setdefault("encoder", "mobilenet")
        kwargs.setdefault("encoder_kwargs", {"alpha": 0.25})
    check_model_contract(name, tmp_path, export=True, any_size=name in ANY_SIZE, **kwargs)
    keras.backend.clear_session()


# Networks whose paper builds on any ImageNet backbone register ``any_encoder=True``: they must
# build on another registered encoder too (symbolically: shapes only, nothing executed).
ANY_ENCODER = [n for n, _ in ZOO if MODELS.info(n).extra.get("any_encoder")]


@pytest.mark.parametrize("name", ANY_ENCODER)
def test_builds_on_another_encoder(name):
    default = MODELS.info(name).default_encoder
    other = "mobilenet" if default != "mobilenet" else "resnet18"
    model = build_symbolic_model(name, 19, encoder=other)
    spec = model.compute_output_spec(keras.KerasTensor((1, 256, 512, 3)))
    keras.backend.clear_session()
    assert model.name == f"{name}_{other}"
    assert tuple(spec.shape) == (1, 256, 512, 19)
