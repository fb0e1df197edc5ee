"""CGNet's exportable strided, dilated depthwise convolution and its depth options."""

import keras
import numpy as np
import pytest

import tfseg
from tfseg.models.cgnet import _strided_dilated_depthwise


@pytest.mark.parametrize("dilation", [2, 4])
def test_strided_dilated_depthwise_equals_the_direct_form(dilation):
    # Direct form: the dilated convolution at stride 1 ("same"), then every second pixel from the
    # second one on: the samples of a stride-2 "same" convolution.
    inputs = keras.Input((16, 24, 6))
    exact = keras.Model(inputs, _strided_dilated_depthwise(inputs, dilation, name="sur"))
    direct = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=dilation, use_bias=False)
    direct.build((None, 16, 24, 6))
    direct.set_weights(exact.get_layer("sur").get_weights())
    x = np.random.default_rng(0).normal(size=(2, 16, 24, 6)).astype("float32")
    want = np.asarray(direct(x))[:, 1::2, 1::2]
    np.testing.assert_allclose(np.asarray(exact(x)), want, rtol=1e-5, atol=1e-5)


def test_depth_options():
    def blocks(model, stage):
        return sum(1 for layer in model.layers if layer.name.startswith(f"cgnet_{stage}_") and
                   layer.name.endswith("_glo"))

    model = tfseg.build_model("cgnet", 19, M=3, N=21)
    assert (blocks(model, "stage2"), blocks(model, "stage3")) == (3, 21)
    with pytest.raises(ValueError, match="'n'.*accepted: M, N"):
        tfseg.build_model("cgnet", 19, n=21)
