"""ICNet's encoder is one nested model shared by the 1/2 and 1/4 branches: encoder weights load
into it, ``bn_momentum`` reaches it, and ``tfseg.flops`` counts it once per call."""

import keras
import numpy as np

import tfseg
from tfseg.encoders import build_encoder_model
from tfseg.encoders.weights import load_encoder_weights
from tfseg.flops import layer_macs, model_macs


def test_shared_encoder_loads_weights_and_counts_per_call(tmp_path):
    model = tfseg.build_model("icnet", 5, input_shape=(64, 128, 3), bn_momentum=0.7)
    encoder = model.get_layer("resnet18")
    assert isinstance(encoder, keras.Model)
    norms = [b for b in encoder.layers if isinstance(b, keras.layers.BatchNormalization)]
    assert norms and {b.momentum for b in norms} == {0.7}

    reference = build_encoder_model("resnet18")
    rng = np.random.default_rng(0)
    for w in reference.weights:
        w.assign(rng.uniform(0.5, 1.0, w.shape).astype("float32"))
    path = str(tmp_path / "resnet18.weights.h5")
    reference.save_weights(path)
    report = load_encoder_weights(model, "resnet18", path)
    assert report.layers == sum(1 for layer in reference.layers if layer.weights)
    for layer in reference.layers:
        if layer.weights:
            got = encoder.get_layer(layer.name).get_weights()
            assert all(np.array_equal(a, b) for a, b in zip(got, layer.get_weights()))

    # The encoder runs on the 1/4 and the 1/2 image (output stride 8).
    quarter = model_macs(build_encoder_model("resnet18", (16, 32, 3), output_stride=8))
    half = model_macs(build_encoder_model("resnet18", (32, 64, 3), output_stride=8))
    head = sum(layer_macs(layer) for layer in model.layers if not isinstance(layer, keras.Model))
    assert model_macs(model) == quarter + half + head
    keras.backend.clear_session()
