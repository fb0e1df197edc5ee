"""Ops a target cannot run fail the export with the op and the Keras layer named."""

import keras
import pytest

from tfseg.export_lib import ExportError
from tfseg.export_lib.onnx_export import check_onnx_model, convert_onnx, format_problems
from tfseg.export_lib.tflite import convert_tflite


class CumulativeProduct(keras.layers.Layer):
    """A layer whose op (tf.Cumprod) has no TFLite built-in kernel."""

    def call(self, x):
        return keras.ops.cumprod(x, axis=-1)


class Reciprocal(keras.layers.Layer):
    """ONNX Reciprocal: supported by TensorRT 8.5's ONNX parser, not by 8.2's."""

    def call(self, x):
        import tensorflow as tf

        return tf.math.reciprocal(x)


def _model(layer):
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    return keras.Model(inp, layer(x))


def test_tflite_names_the_op_and_layer_that_needs_flex():
    model = _model(CumulativeProduct(name="my_cumprod"))
    with pytest.raises(ExportError) as info:
        convert_tflite(model, input_size=(32, 32))
    message = str(info.value)
    assert "Cumprod" in message and "my_cumprod" in message and "built-ins" in message


def test_onnx_allow_list_differs_between_tx2_and_xavier():
    model = _model(Reciprocal(name="my_reciprocal"))
    proto = convert_onnx(model, opset=13, input_shape=(1, 32, 32))
    layer_names = [layer.name for layer in model.layers]
    problems = check_onnx_model(proto, "tx2", layer_names)
    assert [(p["op"], p["layer"]) for p in problems] == [("Reciprocal", "my_reciprocal")]
    message = format_problems(problems, "tx2")
    assert "Reciprocal" in message and "my_reciprocal" in message and "TensorRT 8.2" in message
    assert check_onnx_model(proto, "xavier", layer_names) == []
    assert check_onnx_model(proto, "generic", layer_names) == []


def test_onnx_resize_restrictions():
    """Cubic resize is outside TensorRT 8.x's Resize modes (a node-level restriction)."""

    class Cubic(keras.layers.Layer):
        def call(self, x):
            import tensorflow as tf

            return tf.image.resize(x, (64, 64), method="bicubic")

    model = _model(Cubic(name="cubic_up"))
    proto = convert_onnx(model, opset=13, input_shape=(1, 32, 32))
    problems = check_onnx_model(proto, "tx2", [layer.name for layer in model.layers])
    assert any(
        p["op"] == "Resize" and "cubic" in p["reason"] and p["layer"] == "cubic_up"
        for p in problems
    )


def test_tf2onnx_pass_failing_in_place_reruns_in_careful_mode(monkeypatch):
    """tf2onnx's optimizers run in place; a conversion that raises there runs again with
    tf2onnx's own copies (the variable unset), and the caller's setting comes back."""
    import tf2onnx

    from tfseg.export_lib import onnx_export

    seen = []

    def fake(fn, input_signature, opset):
        value = onnx_export.os.environ.get("TF2ONNX_CATCH_ERRORS")
        seen.append(value)
        if value is not None:
            raise RuntimeError("an optimizer pass failed")
        return "proto", None

    monkeypatch.setattr(tf2onnx.convert, "from_function", fake)
    monkeypatch.setenv("TF2ONNX_CATCH_ERRORS", "mine")
    assert onnx_export._tf2onnx_from_function(None, [], 13) == "proto"
    assert seen == ["FALSE", None]
    assert onnx_export.os.environ["TF2ONNX_CATCH_ERRORS"] == "mine"
    monkeypatch.setattr(tf2onnx.convert, "from_function", lambda *a, **k: 1 / 0)
    with pytest.raises(ExportError, match="tf2onnx could not convert the model: ZeroDivision"):
        convert_onnx(_model(keras.layers.ReLU()), opset=13, input_shape=(1, 32, 32))
