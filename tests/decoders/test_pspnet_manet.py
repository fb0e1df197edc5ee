"""What the SMP-layout ``pspnet`` and ``manet`` decoders add beyond ``test_smp_decoders.py``:
PSPNet's truncated encoder (``encoder_depth=3``) and MAnet's position attention against a numpy
transcription of SMP's ``PAB.forward``."""

import keras
import numpy as np

import tfseg
from tfseg.decoders.manet import PositionAttention
from tfseg.encoders import build_encoder_model, load_encoder_weights
from tfseg.models import get_anatomy


def test_pspnet_holds_the_encoder_up_to_p3_and_loads_its_weights(tmp_path):
    kwargs = {"alpha": 0.25}
    model = tfseg.build_model("pspnet", 5, encoder="mobilenet", encoder_kwargs=kwargs)
    anatomy = get_anatomy(model)
    assert sorted(anatomy.pyramid) == ["P1", "P2", "P3"]
    assert max(anatomy.features) == 8

    full = build_encoder_model("mobilenet", **kwargs)
    rng = np.random.default_rng(0)
    for w in full.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    path = str(tmp_path / "mobilenet.weights.h5")
    full.save_weights(path)
    report = load_encoder_weights(model, "mobilenet", path, **kwargs)
    held = {layer.name for layer in model.layers if layer.weights}
    encoder = {layer.name for layer in full.layers if layer.weights}
    assert report.layers == len(held & encoder) > 0
    assert set(report.skipped) == encoder - held != set()
    for name in held & encoder:
        for a, b in zip(model.get_layer(name).weights, full.get_layer(name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    keras.backend.clear_session()


def smp_pab_attention(top, center, bottom):
    """SMP 0.3.2 ``PAB.forward`` between the three convolutions and the residual sum, on NCHW
    numpy arrays (transcribed operation by operation)."""
    b, c, h, w = bottom.shape
    x_top = top.reshape(b, -1, h * w)  # flatten(2)
    x_center = center.reshape(b, -1, h * w).transpose(0, 2, 1)
    x_bottom = bottom.reshape(b, c, h * w).transpose(0, 2, 1)
    sp_map = x_center @ x_top
    flat = sp_map.reshape(b, -1)
    flat = np.exp(flat - flat.max(axis=1, keepdims=True))
    sp_map = (flat / flat.sum(axis=1, keepdims=True)).reshape(b, h * w, h * w)
    sp_map = sp_map @ x_bottom
    return sp_map.reshape(b, c, h, w)


def test_position_attention_is_smp_pab():
    rng = np.random.default_rng(1)
    top, center = (rng.normal(size=(2, 4, 3, 5)).astype("float32") for _ in range(2))
    bottom = rng.normal(size=(2, 6, 3, 5)).astype("float32")
    expected = smp_pab_attention(top, center, bottom)
    nhwc = [np.transpose(t, (0, 2, 3, 1)) for t in (top, center, bottom)]
    got = keras.ops.convert_to_numpy(PositionAttention()(nhwc))
    np.testing.assert_allclose(np.transpose(got, (0, 3, 1, 2)), expected, rtol=1e-5, atol=1e-6)
    # Dynamic spatial sizes (a traced graph with None H/W) give the same.
    inputs = [keras.Input((None, None, c)) for c in (4, 4, 6)]
    model = keras.Model(inputs, PositionAttention()(inputs))
    np.testing.assert_allclose(
        np.transpose(model.predict(nhwc, verbose=0), (0, 3, 1, 2)),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )
