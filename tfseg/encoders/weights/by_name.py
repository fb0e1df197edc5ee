"""Copy weights between layers matched by name.

The one routine behind encoder weight loading and export, ``--init_model`` and the head transfer
of ``tools/transfer_head.py``::

    report = copy_weights_by_name(source_model, target_model, strict=False)
    report.copied, report.missing, report.mismatched      # target layer names

A source is a ``keras.Model``, a ``{name: layer}`` mapping or a ``{name: [arrays]}`` mapping (e.g.
read from a file); a target is a model or a ``{name: layer}`` mapping. Only Keras' public API is
used (``layers``, ``weights``, ``get_weights``, ``set_weights``). No training or export code here.
"""

import dataclasses

import keras
import numpy as np


@dataclasses.dataclass
class CopyReport:
    """What ``copy_weights_by_name`` did, by target layer name.

    ``copied``: layers whose weights were set; ``missing``: layers with no source of that name;
    ``mismatched``: layers whose weight shapes differ from the source's (not copied); ``tensors``:
    weight tensors copied; ``shapes``: ``{name: (target shapes, source shapes)}`` of the mismatched.
    """

    copied: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    mismatched: list = dataclasses.field(default_factory=list)
    tensors: int = 0
    shapes: dict = dataclasses.field(default_factory=dict)

    @property
    def complete(self):
        """True when every requested layer was copied."""
        return not self.missing and not self.mismatched

    def describe(self, limit=5, source="the source"):
        """``"layers not in <source>: a; shape mismatch: b [(..)] vs [(..)]"`` (``limit`` each)."""
        parts = []
        if self.missing:
            parts.append(f"layers not in {source}: {', '.join(self.missing[:limit])}")
        if self.mismatched:
            shown = [f"{n} {self.shapes[n][0]} vs {self.shapes[n][1]}" for n in self.mismatched]
            parts.append(f"shape mismatch: {', '.join(shown[:limit])}")
        return "; ".join(parts)


class WeightCopyError(ValueError):
    """A strict copy found missing or mismatched layers; ``report`` says which (nothing copied)."""

    def __init__(self, report):
        super().__init__(report.describe())
        self.report = report


def weighted_layers(model, *, nested=True):
    """``{name: layer}`` of every layer with weights in ``model``.

    ``nested=True`` searches nested models and lists their layers; ``nested=False`` lists the
    top-level layers only (a nested model is then one entry).
    """
    found = {}
    for layer in model.layers:
        if nested and isinstance(layer, keras.Model):
            found.update(weighted_layers(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def copy_weights_by_name(source, target, *, layers=None, strict=True, nested=True):
    """Copy the weights of every layer of ``target`` from the ``source`` layer of the same name.

    Args:
      source: a ``keras.Model``, or a mapping from name to a layer or to a list of arrays.
      target: a ``keras.Model`` or a mapping from name to layer.
      layers: the target layer names to copy (default: every target layer with weights).
      strict: when a layer is missing from ``source`` or its weight shapes differ, ``True`` raises
        :class:`WeightCopyError` before copying anything; ``False`` copies the layers that fit and
        reports the others.
      nested: for models, whether nested models' layers are matched one by one (see
        :func:`weighted_layers`).

    Returns:
      A :class:`CopyReport`.
    """
    sources = _as_mapping(source, nested)
    targets = _as_mapping(target, nested)
    names = list(targets) if layers is None else list(layers)
    report = CopyReport()
    plan = []
    for name in names:
        if name not in targets:
            raise KeyError(f"target has no layer {name!r}")
        if name not in sources:
            report.missing.append(name)
            continue
        values = _values(sources[name])
        expected = [tuple(w.shape) for w in targets[name].weights]
        got = [tuple(np.shape(v)) for v in values]
        if expected != got:
            report.mismatched.append(name)
            report.shapes[name] = (expected, got)
            continue
        plan.append((name, values))
    if strict and not report.complete:
        raise WeightCopyError(report)
    for name, values in plan:
        targets[name].set_weights(values)
        report.copied.append(name)
        report.tensors += len(values)
    return report


def _as_mapping(layers, nested):
    """``{name: layer or arrays}`` of a model or mapping."""
    if isinstance(layers, keras.Model):
        return weighted_layers(layers, nested=nested)
    return dict(layers)


def _values(entry):
    """The arrays of a source entry: a layer's current weights, or the list given."""
    if isinstance(entry, keras.layers.Layer):
        return entry.get_weights()
    return list(entry)
