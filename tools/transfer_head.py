"""Initialise a model for another label set from a trained one ("PM" of RGPNet, sec. 4.5).

    python tools/transfer_head.py --source=runs/mapillary/rgpnet_resnet18/model.keras \
        --output=runs/pm/rgpnet_resnet18_cityscapes.keras [--mapping=mapping.json] \
        [--num_classes=N] [--target_model=T.keras] [--unmapped=mean|init]

The target model is the source's architecture with ``num_classes`` outputs (or ``--target_model``).
Every weight whose shape matches is copied; the layers that produce the class scores (the
classifier, and any label-space layers after it) get their class rows/columns gathered from the
source classes that the mapping names for each target class (the mean of several, when a list is
given). Target classes without a source get the mean of all source classes (``--unmapped=mean``) or
keep the target's fresh initialisation (``--unmapped=init``). The result is written atomically.

Mapping file (JSON): ``{"target class": "source class" | ["source", ...] | null, ...}`` or
``{"mapping": {...}, "source_classes": [...], "target_classes": [...]}``. Classes are names or
indices. Without ``source_classes`` names resolve against Mapillary Vistas v1.2 when the source has
65 classes (machine names such as ``construction--flat--road`` or readable names such as ``Road``);
without ``target_classes`` against the Cityscapes train classes when the target has 19 (the default
target class count). Without ``--mapping`` the built-in Mapillary v1.2 -> Cityscapes mapping is used
(every Cityscapes class has a source).

The class layers are found by walking back from the output through the layers whose output has the
class count; a model whose features happen to have exactly that many channels right before the
classifier would confuse the walk (then pass ``--target_model``).
"""

import json
import os
import sys

from absl import app, flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402

from tfseg.data.labels import MAPILLARY_V12_CLASSES  # noqa: E402  (65 (machine, readable) names)

# Cityscapes train class -> Mapillary v1.2 class: the closest single class for each of the 19.
MAPILLARY_TO_CITYSCAPES = {
    "road": "construction--flat--road",
    "sidewalk": "construction--flat--sidewalk",
    "building": "construction--structure--building",
    "wall": "construction--barrier--wall",
    "fence": "construction--barrier--fence",
    "pole": "object--support--pole",
    "traffic light": "object--traffic-light",
    "traffic sign": "object--traffic-sign--front",
    "vegetation": "nature--vegetation",
    "terrain": "nature--terrain",
    "sky": "nature--sky",
    "person": "human--person",
    "rider": "human--rider--bicyclist",
    "car": "object--vehicle--car",
    "truck": "object--vehicle--truck",
    "bus": "object--vehicle--bus",
    "train": "object--vehicle--on-rails",
    "motorcycle": "object--vehicle--motorcycle",
    "bicycle": "object--vehicle--bicycle",
}

FLAGS = flags.FLAGS


class TransferError(ValueError):
    """A bad source/target model or mapping; the message names the culprit."""


def define_flags(fv=FLAGS):
    flags.DEFINE_string("source", None, "Trained source model (.keras).", flag_values=fv)
    flags.DEFINE_string("output", None, "Where to write the target model (.keras).", flag_values=fv)
    flags.DEFINE_string(
        "mapping",
        None,
        "Mapping JSON (target class -> source class(es)); default: Mapillary v1.2 -> Cityscapes.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Target classes (default: the mapping's target class list; 19 for the built-in one).",
        lower_bound=2,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "target_model",
        None,
        "Optional .keras model to fill instead of re-targeting the source's architecture.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "unmapped",
        "mean",
        ["mean", "init"],
        "Target classes without a source: mean of all source classes, or keep the fresh init.",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["source", "output"], flag_values=fv)


# ---------------------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------------------


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise TransferError(f"mapping lists {k!r} twice")
        out[k] = v
    return out


def _lookup(names):
    table = {}
    for i, entry in enumerate(names):
        for n in (entry if isinstance(entry, (tuple, list)) else (entry,)):
            table.setdefault(str(n).strip().lower(), i)
    return table


def _resolve(value, names, count, what):
    """A class given as index, digit string or name -> index in ``0..count-1``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TransferError(f"{what} class {value!r}: expected a name or an index")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < count:
            raise TransferError(f"{what} class index {value} is out of range 0..{count - 1}")
        return value
    if names is None:
        raise TransferError(f"{what} class {value!r} is a name but no {what} class list is known")
    index = _lookup(names).get(value.strip().lower())
    if index is None:
        known = [n[0] if isinstance(n, (tuple, list)) else n for n in names]
        close = [n for n in known if value.strip().lower()[:4] in str(n).lower()][:8]
        hint = f"; similar: {', '.join(close)}" if close else f"; known: {', '.join(map(str, known[:10]))}, ..."
        raise TransferError(f"unknown {what} class {value!r}{hint}")
    if index >= count:
        raise TransferError(f"{what} class {value!r} is index {index}, but there are only {count}")
    return index


def read_mapping_file(path):
    """Read a mapping JSON file -> (mapping dict, source_classes or None, target_classes or None)."""
    if not os.path.isfile(path):
        raise TransferError(f"mapping file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise TransferError(f"mapping file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise TransferError(f"mapping file {path} must hold a JSON object, got {type(data).__name__}")
    if "mapping" in data:
        unknown = set(data) - {"mapping", "source_classes", "target_classes"}
        if unknown:
            raise TransferError(f"mapping file {path}: unknown keys {sorted(unknown)}")
        mapping = data["mapping"]
        if not isinstance(mapping, dict):
            raise TransferError(f"mapping file {path}: 'mapping' must be an object")
        source, target = data.get("source_classes"), data.get("target_classes")
        for key, lst in (("source_classes", source), ("target_classes", target)):
            if lst is not None and (not isinstance(lst, list) or not lst):
                raise TransferError(f"mapping file {path}: {key!r} must be a non-empty list")
        return mapping, source, target
    return data, None, None


def default_mapping():
    """The built-in Mapillary v1.2 (65) -> Cityscapes (19) mapping as (mapping, source, target)."""
    from tfseg.data.labels import CITYSCAPES_CLASS_NAMES

    return dict(MAPILLARY_TO_CITYSCAPES), MAPILLARY_V12_CLASSES, list(CITYSCAPES_CLASS_NAMES)


def resolve_mapping(mapping, num_source, num_target, source_classes=None, target_classes=None):
    """-> list of ``num_target`` lists of source indices (empty: no source).

    Names resolve against ``source_classes`` / ``target_classes`` (``None``: indices only).
    """
    table = [[] for _ in range(num_target)]
    seen = set()
    for key, value in mapping.items():
        t = _resolve(key, target_classes, num_target, "target")
        if t in seen:
            raise TransferError(f"target class {key!r} (index {t}) is mapped twice")
        seen.add(t)
        values = value if isinstance(value, list) else ([] if value is None else [value])
        table[t] = sorted({_resolve(v, source_classes, num_source, "source") for v in values})
    return table


# ---------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------


def _num_classes(model):
    return int(model.outputs[0].shape[-1])


def class_path(model):
    """Names of the layers between the last feature layer and the output that carry the classes.

    Walks back from the output through every layer whose output has the model's class count; the
    walk stops at the first layer fed by features of another width (the classifier's input).
    Returns ``{layer name: input is on the class path}``.
    """
    num = _num_classes(model)
    layer, node_index, _ = model.outputs[0]._keras_history
    path, stack, visited = {}, [(layer, node_index)], set()
    while stack:
        layer, node_index = stack.pop()
        if (layer.name, node_index) in visited:
            continue
        visited.add((layer.name, node_index))
        node = layer._inbound_nodes[node_index]
        parents = []
        for parent in node.parent_nodes:
            op = parent.operation
            out = parent.outputs[0] if parent.outputs else None
            if out is not None and out.shape[-1] == num and not isinstance(op, _input_layer_type()):
                parents.append(op)
                stack.append((op, op._inbound_nodes.index(parent)))
        path[layer.name] = path.get(layer.name, False) or bool(parents)
    return path


def _input_layer_type():
    import keras

    return keras.layers.InputLayer


def retarget(model, num_classes):
    """A fresh copy of ``model``'s architecture predicting ``num_classes`` classes."""
    import keras

    path = class_path(model)
    old = _num_classes(model)
    changed = []

    def clone(layer):
        config = layer.get_config()
        if layer.name in path:
            for key in ("filters", "units"):
                if config.get(key) == old:
                    config[key] = int(num_classes)
                    changed.append(layer.name)
        return layer.__class__.from_config(config)

    try:
        target = keras.models.clone_model(model, clone_function=clone)
    except Exception as e:  # noqa: BLE001  (Keras raises many types while rebuilding)
        raise TransferError(
            f"cannot rebuild {model.name!r} with {num_classes} classes ({type(e).__name__}: {e}); "
            "pass --target_model"
        ) from e
    if _num_classes(target) != num_classes:
        raise TransferError(
            f"rebuilding {model.name!r} changed no class layer (found {changed or 'none'}); "
            "pass --target_model"
        )
    return target


def _class_axes(layer, weight_index, ndim, in_is_class):
    """Axes of ``layer``'s weight ``weight_index`` that index classes."""
    import keras

    if isinstance(layer, keras.layers.Conv2DTranspose):  # kernel (kh, kw, out, in)
        return ([2] + ([3] if in_is_class else [])) if ndim == 4 else [0]
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # kernel (kh, kw, in, mult)
        return ([2] if ndim == 4 else [0]) if in_is_class else []
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):  # kernel (..., in, out)
        return ([ndim - 1] + ([ndim - 2] if in_is_class else [])) if ndim > 1 else [0]
    return None  # anything else (BatchNormalization, ...): decided by shape


def _gather(source, target, axes, table, unmapped):
    """Gather ``source`` along ``axes`` through ``table`` into ``target``'s shape."""
    out = np.asarray(source, dtype=np.float64)
    for ax in axes:
        mean = out.mean(axis=ax, keepdims=True)
        parts = [
            np.take(out, src, axis=ax).mean(axis=ax, keepdims=True) if src else mean
            for src in table
        ]
        out = np.concatenate(parts, axis=ax)
    if unmapped == "init":
        target = np.asarray(target)
        for ax in axes:
            for t, src in enumerate(table):
                if not src:
                    index = [slice(None)] * out.ndim
                    index[ax] = t
                    out[tuple(index)] = target[tuple(index)]
    if out.shape != tuple(target.shape):
        raise TransferError(f"gathered shape {out.shape} does not match the target's {target.shape}")
    return out.astype(np.asarray(target).dtype)


def transfer(source, target, table, unmapped="mean"):
    """Copy ``source``'s weights into ``target`` (in place), gathering the class axes.

    Returns a report dict: ``copied`` (tensors copied as they are), ``gathered`` (layer names whose
    class axes were re-ordered), ``unmapped`` (target class indices without a source), ``skipped``
    (target layers with weights but no counterpart in the source).
    """
    if unmapped not in ("mean", "init"):
        raise TransferError(f"unmapped must be 'mean' or 'init', got {unmapped!r}")
    s_classes, t_classes = _num_classes(source), _num_classes(target)
    if len(table) != t_classes:
        raise TransferError(f"the mapping has {len(table)} target classes, the target model {t_classes}")
    for t, src in enumerate(table):
        for s in src:
            if not 0 <= s < s_classes:
                raise TransferError(f"target class {t} maps to source {s}; the source has {s_classes}")
    from tfseg.encoders.weights import copy_weights_by_name

    path = class_path(target)
    src_path = class_path(source)
    src_layers = {layer.name: layer for layer in source.layers}
    report = {"copied": 0, "gathered": [], "unmapped": [t for t, s in enumerate(table) if not s],
              "skipped": []}
    # layers off the class path are copied as they are; the loop handles the rest
    plain = [layer.name for layer in target.layers
             if layer.weights and not (layer.name in path and layer.name in src_path)]
    copied = copy_weights_by_name(src_layers, target, layers=plain, strict=False, nested=False)
    report["copied"] += copied.tensors
    for layer in target.layers:
        if not layer.weights or layer.name in copied.copied:
            continue
        src = src_layers.get(layer.name)
        if src is None or len(src.weights) != len(layer.weights):
            report["skipped"].append(layer.name)
            continue
        values = []
        on_path = layer.name in path and layer.name in src_path
        for i, (sw, tw) in enumerate(zip(src.weights, layer.weights)):
            sv, tv = sw.numpy(), tw.numpy()
            axes = _class_axes(layer, i, sv.ndim, path.get(layer.name, False)) if on_path else []
            if axes is None:  # e.g. a BatchNormalization over classes
                axes = [a for a, d in enumerate(sv.shape) if d == s_classes]
            if not axes:
                if sv.shape != tv.shape:
                    raise TransferError(
                        f"layer {layer.name!r} weight {sw.name!r}: source shape {sv.shape} and "
                        f"target shape {tv.shape} differ outside the class layers"
                    )
                values.append(sv)
                report["copied"] += 1
            else:
                values.append(_gather(sv, tv, axes, table, unmapped))
                if layer.name not in report["gathered"]:
                    report["gathered"].append(layer.name)
        layer.set_weights(values)
    if not report["gathered"]:
        raise TransferError("found no class layer to re-order in the target model")
    return report


def run(fv=FLAGS):
    """The program: read, transfer, write. Returns the report dict."""
    from tfseg.models.saving import load_model, save_model_atomic

    if not fv.output.endswith(".keras"):
        raise TransferError(f"--output must end with .keras, got {fv.output}")
    if fv.mapping:
        mapping, source_classes, target_classes = read_mapping_file(fv.mapping)
    else:
        mapping, source_classes, target_classes = default_mapping()
    source = load_model(fv.source)
    s_classes = _num_classes(source)
    if not fv.mapping:
        if s_classes != len(MAPILLARY_V12_CLASSES):
            raise TransferError(
                f"--source predicts {s_classes} classes; the built-in Mapillary v1.2 -> Cityscapes "
                f"mapping needs {len(MAPILLARY_V12_CLASSES)}. Pass --mapping=FILE"
            )
    if source_classes is not None and fv.mapping and len(source_classes) != s_classes:
        raise TransferError(
            f"{fv.mapping} lists {len(source_classes)} source classes but --source predicts {s_classes}"
        )
    target_model = load_model(fv.target_model) if fv.target_model else None
    num_target = fv.num_classes
    if num_target is None:
        if target_model is not None:
            num_target = _num_classes(target_model)
        elif target_classes is not None:
            num_target = len(target_classes)
        else:
            num_target = 19  # names resolve against the Cityscapes classes
    if target_classes is not None and len(target_classes) != num_target:
        raise TransferError(
            f"{len(target_classes)} target classes in the mapping but --num_classes={num_target}"
        )
    if target_model is not None and _num_classes(target_model) != num_target:
        raise TransferError(
            f"--target_model predicts {_num_classes(target_model)} classes, expected {num_target}"
        )
    if source_classes is None and s_classes == len(MAPILLARY_V12_CLASSES):
        source_classes = MAPILLARY_V12_CLASSES
    if target_classes is None and num_target == 19:
        from tfseg.data.labels import CITYSCAPES_CLASS_NAMES

        target_classes = list(CITYSCAPES_CLASS_NAMES)
    table = resolve_mapping(mapping, s_classes, num_target, source_classes, target_classes)
    target = target_model if target_model is not None else retarget(source, num_target)
    report = transfer(source, target, table, fv.unmapped)
    save_model_atomic(target, fv.output, include_optimizer=False)
    report["output"] = fv.output
    return report


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        report = run(FLAGS)
    except (TransferError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(
        f"wrote {report['output']}: {report['copied']} weight tensors copied, class axes re-ordered "
        f"in {', '.join(report['gathered'])}; target classes without a source: "
        f"{report['unmapped'] or 'none'} ({FLAGS.unmapped}); skipped layers: "
        f"{report['skipped'] or 'none'}"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
