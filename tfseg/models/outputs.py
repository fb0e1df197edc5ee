"""A model's outputs by kind (``Anatomy.outputs``): the main logits for evaluation, prediction and
export; the outputs a task keeps in ``model.keras`` (without training-only heads such as ``aux``).
"""

import dataclasses

import keras

from tfseg.models.anatomy import LOGITS, class_path, get_anatomy, score_layers, set_anatomy


def output_kinds(model):
    """The kinds of ``model``'s outputs in order (``("logits",)`` for a one-output model without a
    recorded anatomy)."""
    try:
        return tuple(kind for _, kind in get_anatomy(model).outputs)
    except ValueError:
        if len(model.outputs) == 1:
            return (LOGITS,)
        raise


def logits_view(model):
    """The main logits as a one-output model sharing ``model``'s layers and weights.

    For evaluation and prediction; to save a model with fewer outputs use ``keep_outputs`` (a view
    still carries the anatomy of every output).
    """
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs[0], model.outputs[0], name=model.name)


def keep_outputs(model, kinds):
    """A model with only the outputs of ``kinds`` (in their order), e.g. without the auxiliary
    heads that only training needs; ``model`` itself when it has no other outputs.

    The result is a new model (its own layers, weights copied) whose recorded anatomy lists just the
    kept outputs, so it can be saved and read back like any tfseg model.
    """
    anatomy = get_anatomy(model)
    keep = [i for i, (_, kind) in enumerate(anatomy.outputs) if kind in kinds]
    if not keep or keep[0] != 0:
        raise ValueError(f"the main logits must be kept, got kinds {tuple(kinds)}")
    if len(keep) == len(anatomy.outputs):
        return model
    tensors = [model.outputs[i] for i in keep]
    outputs = tensors if len(tensors) > 1 else tensors[0]
    view = keras.Model(model.inputs[0], outputs, name=model.name)
    kept = keras.Model.from_config(view.get_config())
    kept.set_weights(view.get_weights())
    n = anatomy.num_classes
    set_anatomy(
        kept,
        dataclasses.replace(
            anatomy,
            outputs=tuple(anatomy.outputs[i] for i in keep),
            score_layers=score_layers(kept, n),
            class_path=class_path(kept, n),
        ),
    )
    return kept
