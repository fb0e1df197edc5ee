"""Head transfer: a model for another label set initialised from a trained one (RGPNet's "PM").

The program is ``tools/transfer_head.py``; this module is its logic, with plain arguments.

The target model is the source's architecture with ``num_classes`` outputs (``retarget``) or a given
model. Every weight whose shape matches is copied; the layers that produce the class scores (the
classifier, and any label-space layers after it) get their class rows/columns gathered from the
source classes that the mapping names for each target class (the mean of several, when a list is
given). Target classes without a source get the mean of all source classes (``unmapped="mean"``) or
keep the target's fresh initialisation (``unmapped="init"``) (``transfer``).

Mapping (``resolve_mapping``; JSON files: ``read_mapping_file``):
``{"target class": "source class" | ["source", ...] | None, ...}``; classes are names (resolved
against class lists, case-insensitive; an entry of a list may be a tuple of several names of one
class) or indices.

The class layers are the ``class_path`` that ``build_model`` recorded in the model's anatomy (the
layers from the classifier to the output that carry the class count; ``model_class_path``). For a
``.keras`` file saved before tfseg recorded anatomies, the same walk runs over the model's public
config; a model whose features happen to have exactly that many channels right before the
classifier would confuse that walk (then pass a target model).
"""

import dataclasses
import json
import os

import keras
import numpy as np

from tfseg.encoders.weights import copy_weights_by_name
from tfseg.models import anatomy
from tfseg.models.saving import load_model, save_model_atomic


class TransferError(ValueError):
    """A bad source/target model or mapping; the message names the culprit."""


# --------------------------------------------------------------------------------------------------
# Mapping
# --------------------------------------------------------------------------------------------------


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
        if close:
            hint = f"; similar: {', '.join(close)}"
        else:
            hint = f"; known: {', '.join(map(str, known[:10]))}, ..."
        raise TransferError(f"unknown {what} class {value!r}{hint}")
    if index >= count:
        raise TransferError(f"{what} class {value!r} is index {index}, but there are only {count}")
    return index


def read_mapping_file(path):
    """Read a mapping JSON file -> (mapping dict, source_classes | None, target_classes | None)."""
    if not os.path.isfile(path):
        raise TransferError(f"mapping file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise TransferError(f"mapping file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise TransferError(
            f"mapping file {path} must hold a JSON object, got {type(data).__name__}"
        )
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


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def class_count(model):
    """The class count of ``model``: the channels of its first output."""
    return int(model.outputs[0].shape[-1])


def model_class_path(model):
    """``{layer name: its input also carries the classes}``: the layers to change for another
    class count (the recorded ``Anatomy.class_path``; for a model without a recorded anatomy, the
    walk of ``tfseg.models.anatomy.class_path`` over its public config)."""
    try:
        return dict(anatomy.get_anatomy(model).class_path)
    except ValueError:
        return anatomy.class_path(model, class_count(model))


def retarget(model, num_classes, *, class_path=model_class_path):
    """A fresh copy of ``model``'s architecture predicting ``num_classes`` classes.

    ``class_path(model)`` names the layers whose class count changes (``model_class_path``).
    """
    path = class_path(model)
    old = class_count(model)
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
    if class_count(target) != num_classes:
        raise TransferError(
            f"rebuilding {model.name!r} changed no class layer (found {changed or 'none'}); "
            "pass --target_model"
        )
    _retarget_anatomy(target, num_classes)
    return target


def _retarget_anatomy(model, num_classes):
    """The clone carries the source's anatomy: same layer names, another class count."""
    try:
        recorded = anatomy.get_anatomy(model)
    except ValueError:
        return
    anatomy.set_anatomy(model, dataclasses.replace(recorded, num_classes=int(num_classes)))


def _class_axes(layer, weight_index, ndim, in_is_class):
    """Axes of ``layer``'s weight ``weight_index`` that index classes."""
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
        raise TransferError(
            f"gathered shape {out.shape} does not match the target's {target.shape}"
        )
    return out.astype(np.asarray(target).dtype)


def transfer(source, target, table, unmapped="mean", *, class_path=model_class_path):
    """Copy ``source``'s weights into ``target`` (in place), gathering the class axes.

    ``class_path(model)`` names the class layers of each model (``model_class_path``). Returns a
    report dict: ``copied`` (tensors copied as they are), ``gathered`` (layer names whose class axes
    were re-ordered), ``unmapped`` (target class indices without a source), ``skipped`` (target
    layers with weights but no counterpart in the source).
    """
    if unmapped not in ("mean", "init"):
        raise TransferError(f"unmapped must be 'mean' or 'init', got {unmapped!r}")
    s_classes, t_classes = class_count(source), class_count(target)
    if len(table) != t_classes:
        raise TransferError(
            f"the mapping has {len(table)} target classes, the target model {t_classes}"
        )
    for t, src in enumerate(table):
        for s in src:
            if not 0 <= s < s_classes:
                raise TransferError(
                    f"target class {t} maps to source {s}; the source has {s_classes}"
                )
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


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def transfer_head(
    source,
    output,
    *,
    mapping=None,
    num_classes=None,
    target_model=None,
    unmapped="mean",
    builtin=None,
    builtin_name=None,
    class_path=model_class_path,
):
    """Read the source model, transfer its weights into the target, write it. Returns the report.

    ``source``, ``output`` (``.keras``, written atomically), ``mapping`` (a mapping JSON file) and
    ``target_model`` are paths; the arguments are those of ``tools/transfer_head.py``'s flags, whose
    names the error messages use. ``builtin``: ``(mapping, source_classes, target_classes)``, the
    mapping used without a ``mapping`` file (then the source must have ``len(source_classes)``
    classes); its class lists also name the classes of a source / target with as many classes, and
    the target has ``len(target_classes)`` classes unless ``num_classes``, the target model or the
    mapping file says otherwise. ``builtin_name`` names it in messages. ``class_path``: as for
    ``retarget`` and ``transfer``.
    """
    if not output.endswith(".keras"):
        raise TransferError(f"--output must end with .keras, got {output}")
    builtin_mapping, builtin_source, builtin_target = builtin if builtin else (None, None, None)
    if mapping:
        mapping_dict, source_classes, target_classes = read_mapping_file(mapping)
    elif builtin:
        mapping_dict = dict(builtin_mapping)
        source_classes, target_classes = builtin_source, builtin_target
    else:
        raise TransferError("no class mapping: pass --mapping=FILE")
    source_model = load_model(source)
    s_classes = class_count(source_model)
    if not mapping:
        if s_classes != len(builtin_source):
            name = f"built-in {builtin_name}" if builtin_name else "built-in"
            raise TransferError(
                f"--source predicts {s_classes} classes; the {name} mapping needs "
                f"{len(builtin_source)}. Pass --mapping=FILE"
            )
    if source_classes is not None and mapping and len(source_classes) != s_classes:
        raise TransferError(
            f"{mapping} lists {len(source_classes)} source classes but --source predicts "
            f"{s_classes}"
        )
    target = load_model(target_model) if target_model else None
    num_target = num_classes
    if num_target is None:
        if target is not None:
            num_target = class_count(target)
        elif target_classes is not None:
            num_target = len(target_classes)
        elif builtin_target is not None:
            num_target = len(builtin_target)  # names resolve against the built-in target classes
        else:
            raise TransferError(
                "the number of target classes is unknown: pass --num_classes, --target_model or "
                "target_classes in the mapping file"
            )
    if target_classes is not None and len(target_classes) != num_target:
        raise TransferError(
            f"{len(target_classes)} target classes in the mapping but --num_classes={num_target}"
        )
    if target is not None and class_count(target) != num_target:
        raise TransferError(
            f"--target_model predicts {class_count(target)} classes, expected {num_target}"
        )
    if source_classes is None and builtin_source is not None:
        if s_classes == len(builtin_source):
            source_classes = builtin_source
    if target_classes is None and builtin_target is not None:
        if num_target == len(builtin_target):
            target_classes = list(builtin_target)
    table = resolve_mapping(mapping_dict, s_classes, num_target, source_classes, target_classes)
    if target is None:
        target = retarget(source_model, num_target, class_path=class_path)
    report = transfer(source_model, target, table, unmapped, class_path=class_path)
    save_model_atomic(target, output, include_optimizer=False)
    report["output"] = output
    return report
