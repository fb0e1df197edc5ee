"""Every decoder on the encoders added for the zoo (mobilenetv2, stdc1, stdc2): built with
``build_symbolic_model`` and checked symbolically (``compute_output_spec``: shapes only, nothing
executed).

stdc2 gives the decoders the same pyramid (channels and strides) as stdc1, so one decoder is enough
for it; the output-stride-8 decoders (dilation, igum) build the dilated encoders.
"""

import keras
import pytest

from tfseg.models import build_symbolic_model

DECODERS = ("skipnet", "unet", "dilation", "rgpnet", "igum")
CASES = [(d, e) for e in ("mobilenetv2", "stdc1") for d in DECODERS] + [("skipnet", "stdc2")]


@pytest.mark.parametrize("decoder, encoder", CASES)
def test_decoder_on_encoder(decoder, encoder):
    model = build_symbolic_model(decoder, 19, encoder=encoder)
    spec = model.compute_output_spec(keras.KerasTensor((1, 256, 512, 3)))
    keras.backend.clear_session()
    assert model.name == f"{decoder}_{encoder}"
    assert tuple(spec.shape) == (1, 256, 512, 19)
