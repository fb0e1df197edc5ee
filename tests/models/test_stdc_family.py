"""The STDC-based networks on their second encoder (``encoder="stdc2"``: the reference rows STDC2
and PP-LiteSeg-stdc2; ``test_zoo`` checks the stdc1 rows) and STDC-Seg's training heads against
the reference's counts (aux heads +2,072,448, detail head +295,299 parameters)."""

import keras
import pytest
from test_zoo import MAC_TOLERANCE, PARAM_TOLERANCE, reference_rows

import tfseg
from tfseg.flops import count_params, model_macs

# the reference's MACs less work tfseg does not do (the broadcast attention convolutions of
# STDC-Seg's ARMs and FFM: 1.34 GMACs at 512x1024, see tfseg/models/stdc.py)
SAVED_GMACS = {"stdc": 1.342, "pp_liteseg": 0.0}


@pytest.mark.parametrize("name,row", [("stdc", "STDC2"), ("pp_liteseg", "PP-LiteSeg-stdc2")])
def test_stdc2_variant_matches_the_reference(name, row):
    ref = reference_rows()[row]
    model = tfseg.build_model(name, 19, encoder="stdc2", input_shape=(512, 1024, 3))
    params, macs = count_params(model), model_macs(model) / 1e9
    keras.backend.clear_session()
    ref_params = int(ref["trainable_params"])
    ref_macs = float(ref["gmacs_1x512x1024"]) - SAVED_GMACS[name]
    assert abs(params - ref_params) / ref_params <= PARAM_TOLERANCE, (params, ref_params)
    assert abs(macs - ref_macs) / ref_macs <= MAC_TOLERANCE, (macs, ref_macs)


@pytest.mark.parametrize("heads,extra", [(("aux",), 2_072_448), (("detail",), 295_299)])
def test_stdc_heads_match_the_reference(heads, extra):
    model = tfseg.build_model("stdc", 19, input_shape=(64, 64, 3), heads=heads)
    params = count_params(model)
    outputs = len(model.outputs)
    keras.backend.clear_session()
    assert outputs == 1 + (3 if heads == ("aux",) else 1)
    assert params == 7_788_448 + extra
