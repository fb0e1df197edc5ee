"""The anatomy of a tfseg model: what ``build_model`` knew when it built it, kept with the model.

Tools that need to know which layers are the encoder, which carry the class scores, where a head can
attach or what each output is read it from here instead of guessing it back from the graph:

- ``tfseg.export`` ``--int8_float_layers=scores`` keeps ``score_layers`` in float;
- ``tools/transfer_head.py`` retargets the ``class_path`` layers to another class count;
- the instance head attaches to ``features[stride]``;
- training gives each entry of ``outputs`` its loss by ``kind``.

The record is a plain dict in the config of the model's ``StrideGuard`` layer, so it survives a
``.keras`` round trip. The graph is read through ``Model.get_config()`` (public, and complete for
layers that are called more than once), never through private Keras attributes.
"""

import dataclasses

import keras

from tfseg.layers import StrideGuard

#: Output kinds: the main logits, auxiliary logits (deep supervision), the STDC-style detail map,
#: the instance centres.
OUTPUT_KINDS = ("logits", "aux", "detail", "instance")
LOGITS = "logits"


@dataclasses.dataclass(frozen=True)
class Anatomy:
    """What a tfseg model is made of.

    Attributes:
      name: registry name (decoder or complete network).
      encoder: encoder name for decoder models, else None.
      num_classes: logits channels.
      stride: the input-size multiple the model needs.
      any_size: the model pads to ``stride`` inside and crops its outputs back.
      outputs: ``((output layer name, kind), ...)`` in the model's output order; the first is the
        main logits.
      encoder_layers: names of the encoder's layers (decoder models; empty for complete networks).
      pyramid: ``{"P1": layer name, ...}`` (decoder models).
      features: ``{stride: layer name}`` feature maps that heads can attach to.
      score_layers: the class-score path in graph order: layers with ``num_classes`` output channels
        that lead to the logits only through such layers.
      class_path: ``{layer name: its input also carries the classes}`` walking back from the logits
        through layers with ``num_classes`` channels (the layers to change for another class count).
    """

    name: str
    encoder: object = None
    num_classes: int = 0
    stride: int = 32
    any_size: bool = False
    outputs: tuple = ((LOGITS, LOGITS),)
    encoder_layers: tuple = ()
    pyramid: dict = dataclasses.field(default_factory=dict)
    features: dict = dataclasses.field(default_factory=dict)
    score_layers: tuple = ()
    class_path: dict = dataclasses.field(default_factory=dict)

    @property
    def output_names(self):
        return tuple(name for name, _ in self.outputs)

    def outputs_of_kind(self, kind):
        return tuple(name for name, k in self.outputs if k == kind)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["outputs"] = [list(o) for o in self.outputs]
        d["features"] = {str(k): v for k, v in self.features.items()}
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["outputs"] = tuple(tuple(o) for o in d.get("outputs", ((LOGITS, LOGITS),)))
        d["encoder_layers"] = tuple(d.get("encoder_layers", ()))
        d["score_layers"] = tuple(d.get("score_layers", ()))
        d["features"] = {int(k): v for k, v in d.get("features", {}).items()}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def guard_layer(model):
    """The model's ``StrideGuard`` layer, or None for a model not built by tfseg."""
    for layer in model.layers:
        if isinstance(layer, StrideGuard):
            return layer
    return None


def get_anatomy(model):
    """The ``Anatomy`` recorded in ``model``; a ValueError for a model that has none."""
    guard = guard_layer(model)
    if guard is None or not guard.anatomy:
        raise ValueError(
            f"model {model.name!r} carries no tfseg anatomy (not built by tfseg.build_model, or "
            f"saved by a tfseg older than the anatomy record); rebuild it with build_model and "
            f"load its weights"
        )
    return Anatomy.from_dict(guard.anatomy)


def model_stride(model):
    """The input-size multiple a tfseg model needs (32 for a model without a ``StrideGuard``)."""
    guard = guard_layer(model)
    return guard.stride if guard is not None else 32


def set_anatomy(model, anatomy):
    """Store ``anatomy`` in ``model``'s ``StrideGuard`` (it is saved with the model)."""
    guard = guard_layer(model)
    if guard is None:
        raise ValueError(f"model {model.name!r} has no StrideGuard layer to hold its anatomy")
    guard.anatomy = anatomy.to_dict()


# --------------------------------------------------------------------------------------------------
# The graph, from the model's public config
# --------------------------------------------------------------------------------------------------


def _tensor_refs(obj, found):
    """Collect ``(producer layer name, channels)`` of every serialized Keras tensor in ``obj``."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            config = obj["config"]
            shape = config.get("shape") or [None]
            found.append((config["keras_history"][0], shape[-1]))
            return found
        for value in obj.values():
            _tensor_refs(value, found)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _tensor_refs(value, found)
    return found


def graph(model):
    """``(producers, order, outputs)`` of a functional model.

    ``producers[name]``: ``[(producer name, channels of that tensor), ...]`` over every call of the
    layer; ``order``: layer names in graph order; ``outputs``: output layer names in output order.
    """
    config = model.get_config()
    producers, order = {}, []
    for layer in config["layers"]:
        name = layer.get("name") or layer["config"]["name"]
        order.append(name)
        producers[name] = _tensor_refs(layer.get("inbound_nodes", []), [])
    outputs = config["output_layers"]
    if outputs and not isinstance(outputs[0], (list, tuple)):
        outputs = [outputs]
    return producers, order, [o[0] for o in outputs]


def _input_names(model):
    return {layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer)}


def class_path(model, num_classes, output=None, g=None):
    """``{layer name: its input carries the classes}`` walking back from ``output`` (default: the
    first output) through producers whose tensors have ``num_classes`` channels."""
    producers, _, outputs = g or graph(model)
    inputs = _input_names(model)
    path, stack = {}, [output or outputs[0]]
    while stack:
        name = stack.pop()
        parents = [p for p, ch in producers[name] if ch == num_classes and p not in inputs]
        path[name] = path.get(name, False) or bool(parents)
        stack += [p for p in parents if p not in path]
    return path


def score_layers(model, num_classes, g=None):
    """Layers whose outputs have ``num_classes`` channels and whose every consumer, up to the first
    output, is such a layer too (an encoder layer that happens to have ``num_classes`` channels is
    not one). In graph order."""
    producers, order, outputs = g or graph(model)
    inputs = _input_names(model)
    consumers = {name: [] for name in order}
    for name, refs in producers.items():
        for parent, _ in refs:
            if name not in consumers[parent]:
                consumers[parent].append(name)
    by_name = {layer.name: layer for layer in model.layers}  # get_layer is linear in the layers
    score = set()
    for name in reversed(order):
        if name in inputs:
            continue
        out = by_name[name].output
        outs = out if isinstance(out, (list, tuple)) else [out]
        if not all(len(o.shape) == 4 and o.shape[-1] == num_classes for o in outs):
            continue
        used = consumers[name]
        if (used or name == outputs[0]) and all(c in score for c in used):
            score.add(name)
    return tuple(name for name in order if name in score)


def call_count(model, layer_name):
    """How many times ``model`` calls its layer ``layer_name`` (a shared layer: more than once)."""
    for layer in model.get_config()["layers"]:
        if (layer.get("name") or layer["config"]["name"]) == layer_name:
            return len(layer.get("inbound_nodes", []))
    raise ValueError(f"model {model.name!r} has no layer {layer_name!r}")


def ancestors(model, names, g=None):
    """Names of ``names`` and every layer they depend on (input layers excluded), in graph order."""
    producers, order, _ = g or graph(model)
    inputs = _input_names(model)
    seen, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name in seen or name in inputs:
            continue
        seen.add(name)
        stack += [p for p, _ in producers[name]]
    return tuple(name for name in order if name in seen)


def producer_name(model, tensor):
    """The name of the layer of ``model`` whose (first call's) output is ``tensor``."""
    for layer in model.layers:
        out = layer.output
        outs = out if isinstance(out, (list, tuple)) else [out]
        if any(o is tensor for o in outs):
            return layer.name
    raise ValueError(f"no layer of {model.name!r} produces tensor {tensor!r}")


def describe(model, *, name, encoder, num_classes, stride, any_size, outputs, pyramid=None,
             features=None):
    """Build the ``Anatomy`` of a freshly built model (``pyramid``/``features`` hold tensors)."""
    g = graph(model)
    pyramid_names = {k: producer_name(model, t) for k, t in (pyramid or {}).items()}
    feature_names = {
        int(s): (t if isinstance(t, str) else producer_name(model, t))
        for s, t in (features or {}).items()
    }
    encoder_layers = ancestors(model, pyramid_names.values(), g) if pyramid_names else ()
    return Anatomy(
        name=name,
        encoder=encoder,
        num_classes=int(num_classes),
        stride=int(stride),
        any_size=bool(any_size),
        outputs=tuple(outputs),
        encoder_layers=tuple(n for n in encoder_layers if n != "stride_guard"),
        pyramid=pyramid_names,
        features=feature_names,
        score_layers=score_layers(model, num_classes, g),
        class_path=class_path(model, num_classes, g=g),
    )
