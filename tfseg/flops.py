"""Parameter and multiply-accumulate (MAC) counts of a Keras model built at a static input size.

Convention (stated in the README): 1 MAC = 2 FLOPs; only convolutions, transposed convolutions and
dense layers are counted (BatchNorm folds into the preceding convolution at inference; activations,
additions, pooling and resizing are a few percent at most and are not counted by the papers either).
"""

import keras
import numpy as np


def _shape(t):
    return tuple(int(d) for d in t.shape[1:])


def layer_macs(layer):
    """MACs of one call of ``layer`` at batch 1 (0 for uncounted layer types)."""
    if isinstance(layer, keras.Model):
        return model_macs(layer)
    if isinstance(layer, keras.layers.Conv2DTranspose):
        h, w, cin = _shape(layer.input)
        kh, kw = layer.kernel_size
        return h * w * kh * kw * cin * layer.filters
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        h, w, c = _shape(layer.output)
        kh, kw = layer.kernel_size
        return h * w * kh * kw * c
    if isinstance(layer, keras.layers.SeparableConv2D):
        h, w, cout = _shape(layer.output)
        cin = _shape(layer.input)[-1]
        kh, kw = layer.kernel_size
        return (
            h * w * (kh * kw * cin * layer.depth_multiplier + cin * layer.depth_multiplier * cout)
        )
    if isinstance(layer, keras.layers.Conv2D):
        h, w, cout = _shape(layer.output)
        cin = _shape(layer.input)[-1]
        kh, kw = layer.kernel_size
        return h * w * kh * kw * (cin // layer.groups) * cout
    if isinstance(layer, keras.layers.Dense):
        inp = _shape(layer.input)
        return int(np.prod(inp)) * layer.units
    return int(getattr(layer, "macs", lambda: 0)())


def model_macs(model):
    """Sum of :func:`layer_macs` over every layer of a functional model with a static input
    shape.

    A nested model counts once per call, at the input shape of that call: a sub-model shared by
    several branches (ICNet's encoder, fed the image at 1/2 and 1/4) costs what each branch runs.
    """
    for s in model.inputs[0].shape[1:]:
        if s is None:
            raise ValueError(
                f"model {model.name!r} has a dynamic input shape; build it at a fixed size to "
                "count MACs"
            )
    total = 0
    calls = None
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            calls = _nested_call_shapes(model) if calls is None else calls
            total += sum(_macs_at(layer, shape) for shape in calls.get(layer.name, ()))
        else:
            total += layer_macs(layer)
    return int(total)


def _nested_call_shapes(model):
    """``{layer name: [input shape of each call]}`` from ``model``'s public config."""
    shapes = {}
    for entry in model.get_config()["layers"]:
        calls = shapes.setdefault(entry.get("name") or entry["config"]["name"], [])
        for node in entry.get("inbound_nodes", []):
            args = node.get("args", []) if isinstance(node, dict) else []
            tensor = args[0] if args else None
            if isinstance(tensor, (list, tuple)):
                tensor = tensor[0] if tensor else None
            if isinstance(tensor, dict) and tensor.get("class_name") == "__keras_tensor__":
                calls.append(tuple(tensor["config"]["shape"][1:]))
    return shapes


def _macs_at(model, shape):
    """MACs of one call of the nested functional ``model`` on an input of ``shape`` (no batch)."""
    if tuple(model.inputs[0].shape[1:]) == tuple(shape):
        return model_macs(model)
    if any(s is None for s in shape):
        raise ValueError(
            f"nested model {model.name!r} is called on a dynamic shape {shape}; build the model "
            "at a fixed size to count MACs"
        )
    inputs = keras.Input(batch_shape=(None, *shape))
    if isinstance(model.input, (list, tuple)):
        inputs = [inputs]
    return model_macs(keras.models.clone_model(model, input_tensors=inputs))


def count_params(model, trainable_only=True):
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(int(np.prod(w.shape)) for w in weights))


def gflops(model):
    """GFLOPs at batch 1 (2 FLOPs per MAC)."""
    return 2.0 * model_macs(model) / 1e9
