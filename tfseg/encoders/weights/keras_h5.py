"""Keras 3 ``.weights.h5`` files of a standalone encoder: read them, and write them from a model.

Such a file is what ``reference.save_weights`` writes for ``build_encoder_model(name, **kwargs)``;
it holds tfseg-trained weights (any encoder) and is never input-adapted.
"""

import os
import re
import warnings

import h5py
import keras

from tfseg.encoders.core import build_encoder_model
from tfseg.encoders.weights.common import LoadReport, copy_pairs, pair_layers
from tfseg.files import atomic_path


def load_keras_weights(reference, encoder_name, path, encoder_kwargs):
    """Load the ``.weights.h5`` file ``path`` into the standalone encoder ``reference``."""
    description = f"encoder {encoder_name!r} with kwargs {encoder_kwargs or {}}"
    n_expected = sum(1 for layer in reference.layers if layer.weights)
    n_file = _count_layers(path)
    if n_file != n_expected:
        raise ValueError(
            f"{path} holds weights for {n_file} layers but {description} has {n_expected}: "
            "it was written for another encoder or other encoder kwargs"
        )
    try:
        with warnings.catch_warnings():
            # Keras warns about every layer it skips before raising; the error below says it all.
            warnings.filterwarnings("ignore", message="Skipping nested container")
            reference.load_weights(path)
    except ValueError as e:
        names = re.findall(r"name=([\w./-]+)", str(e))
        layer = f"layer {names[0]!r}" if names else "a layer"
        raise ValueError(
            f"{path} does not fit {description}: {layer} could not be loaded "
            f"({str(e).splitlines()[0][:200]})"
        ) from None


def _count_layers(path):
    """Number of layers with weights in a Keras 3 weights file."""
    with h5py.File(path, "r") as f:
        if "layers" not in f:
            raise ValueError(f"{path} is not a Keras 3 .weights.h5 file (no 'layers' group)")
        return sum(
            1
            for group in f["layers"].values()
            if isinstance(group, h5py.Group) and len(group.get("vars", ())) > 0
        )


def export_encoder_weights(model, encoder_name, output, *, prefix=None, encoder_kwargs=None):
    """Write the encoder part of a trained model as a standalone Keras 3 ``.weights.h5`` file.

    Args:
      model: a ``keras.Model`` or the path of a ``.keras`` file holding the encoder's layers.
      encoder_name: registered encoder name.
      output: destination, ending in ``.weights.h5``; written atomically (temporary file + rename).
      prefix: layer-name prefix of the encoder inside ``model`` (default ``encoder_name``).
      encoder_kwargs: the encoder's hyper-parameters the model was built with.

    Returns:
      A :class:`LoadReport` of the tensors copied out. The file loads back with
      ``load_encoder_weights(model, encoder_name, output, **encoder_kwargs)``.
    """
    output = os.fspath(output)
    if not output.endswith(".weights.h5"):
        raise ValueError(f"output must end with .weights.h5, got {output}")
    encoder_kwargs = dict(encoder_kwargs or {})
    source = None
    if not isinstance(model, keras.Model):
        source = os.fspath(model)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"model file not found: {source}")
        model = keras.saving.load_model(source, compile=False)
    prefix = prefix or encoder_name
    reference = build_encoder_model(encoder_name, **encoder_kwargs)
    pairs = pair_layers(reference, encoder_name, model, prefix)
    tensors, layers_loaded = copy_pairs(pairs, into_model=False)
    with atomic_path(output, suffix=".weights.h5") as tmp:
        reference.save_weights(tmp)
    return LoadReport(tensors, layers_loaded, (), source)
