"""Saving and loading tfseg ``.keras`` models (atomically, with clear errors)."""

import os

import keras

from tfseg.files import atomic_path


def save_model_atomic(model, path, include_optimizer=True):
    """``model.save`` to a ``.keras`` file through a temporary file and a rename."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"model path must end with .keras, got {path}")
    with atomic_path(path, suffix=".keras") as tmp:
        if include_optimizer:
            model.save(tmp)
        else:
            clone = keras.Model(model.inputs, model.outputs, name=model.name)
            clone.save(tmp)


def load_model(path, compile=False):
    """Load a tfseg ``.keras`` model with a clear error for a missing or unreadable file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    import tfseg.detail_loss  # noqa: F401  (the detail loss of --heads=detail checkpoints)
    import tfseg.layers.teacher  # noqa: F401  (the teacher layer of distilled runs)
    import tfseg.losses  # noqa: F401  (registers the loss and metric classes of compiled files)
    import tfseg.metrics  # noqa: F401

    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as e:  # keras raises many types for corrupt files
        raise ValueError(f"cannot load model {path}: {type(e).__name__}: {e}") from e
