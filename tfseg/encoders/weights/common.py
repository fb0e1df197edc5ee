"""What every encoder-weight format shares: the report, the input statistics, layer pairing.

An encoder's layers are named ``<prefix>_<layer>`` inside a model (``prefix`` defaults to the
encoder name, as ``build_model`` builds it). Loading goes through a *reference*: a standalone
encoder (``build_encoder_model``) that the file is read into, whose layers are then paired with the
model's by name and copied with :func:`~tfseg.encoders.weights.by_name.copy_weights_by_name`.
"""

from tfseg.encoders.weights.by_name import WeightCopyError, copy_weights_by_name, weighted_layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LoadReport(int):
    """The number of weight tensors loaded (an ``int``), with details as attributes.

    Attributes: ``tensors``, ``layers`` (layers loaded), ``skipped`` (layer names in the source that
    the encoder does not have, e.g. a classifier, and the encoder layers of its last stages that a
    model holding only its first stages lacks; for a PyTorch checkpoint: its unused tensor names),
    ``missing`` (PyTorch checkpoints: names of tensors the encoder needs that the file lacks; their
    layers keep their weights), ``notes`` (what the loader changed besides weights, e.g. the
    BatchNorm epsilon), ``source`` (the file read).
    """

    def __new__(cls, tensors, layers, skipped=(), source=None, *, missing=(), notes=()):
        obj = super().__new__(cls, tensors)
        obj.tensors = int(tensors)
        obj.layers = int(layers)
        obj.skipped = tuple(skipped)
        obj.missing = tuple(missing)
        obj.notes = tuple(notes)
        obj.source = source
        return obj

    def __repr__(self):
        return (
            f"LoadReport(tensors={self.tensors}, layers={self.layers}, "
            f"skipped={len(self.skipped)}, missing={len(self.missing)}, source={self.source!r})"
        )


def encoder_layers(model, prefix):
    """The encoder's weighted layers keyed by the name without ``prefix + "_"``."""
    start = f"{prefix}_"
    return {
        name[len(start) :]: layer
        for name, layer in weighted_layers(model).items()
        if name.startswith(start)
    }


def pair_layers(reference, reference_prefix, model, prefix, *, truncated_ok=False):
    """``{model layer name: (reference layer, model layer)}`` for each weighted reference layer.

    ``truncated_ok``: ``model`` may hold only a leading part of the encoder (a decoder registered
    with ``encoder_depth``, e.g. SMP's PSPNet, keeps the layers up to P3): reference layers it does
    not have are left out of the pairs when they all come after the ones it has (in the reference's
    graph order). Returns ``(pairs, left out names)`` then.
    """
    model_layers = weighted_layers(model)
    pairs, absent = {}, []
    for suffix, ref_layer in encoder_layers(reference, reference_prefix).items():
        name = f"{prefix}_{suffix}"
        if name not in model_layers:
            if truncated_ok and pairs:
                absent.append(name)
                continue
            raise ValueError(
                f"model {model.name!r} has no layer {name!r} of the encoder: was it built with "
                f"this encoder, layer prefix {prefix!r} and the same encoder kwargs?"
            )
        if absent:
            raise ValueError(
                f"model {model.name!r} has no layer {absent[0]!r} of the encoder but has the later "
                f"{name!r}: was it built with this encoder, layer prefix {prefix!r} and the same "
                f"encoder kwargs?"
            )
        pairs[name] = (ref_layer, model_layers[name])
    return (pairs, tuple(absent)) if truncated_ok else pairs


def copy_pairs(pairs, *, into_model):
    """Copy weights between paired layers (reference -> model, or model -> reference).

    Returns ``(tensors, layers)``; a shape mismatch raises ``ValueError`` naming the layer (and
    nothing is copied).
    """
    references = {name: ref for name, (ref, _) in pairs.items()}
    models = {name: layer for name, (_, layer) in pairs.items()}
    source, target = (references, models) if into_model else (models, references)
    try:
        report = copy_weights_by_name(source, target)
    except WeightCopyError as e:
        name = e.report.mismatched[0]
        raise shape_error(e.report, name, f"layer {source[name].name!r}") from None
    return report.tensors, len(report.copied)


def shape_error(report, name, source):
    """The ``ValueError`` for the mismatched layer ``name`` of a report, read from ``source``."""
    expected, got = report.shapes[name]
    return ValueError(
        f"layer {name!r}: weight shapes {got} from {source} do not match the encoder's "
        f"{expected} (different encoder or encoder kwargs?)"
    )
