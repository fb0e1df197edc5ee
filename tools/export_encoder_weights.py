"""Extract the encoder of a trained tfseg model into a standalone Keras 3 ``.weights.h5`` file.

The file loads into any model built with the same encoder (and encoder kwargs), e.g. to start a new
training run from it::

    python tools/export_encoder_weights.py --model_path=runs/x/model.keras \\
        --encoder=mobilenet --encoder_kwargs='{"alpha": 0.5}' --output=mobilenet.weights.h5
    python -m tfseg.train --flagfile=... --encoder=mobilenet --encoder_weights=mobilenet.weights.h5

``--encoder`` and ``--encoder_kwargs`` default to the values in the run directory's ``config.json``
(next to the model file) when there is one. The output is written atomically.
"""

import json
import os

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Define the tool's flags on ``fv`` (a fresh ``flags.FlagValues()`` in tests)."""
    flags.DEFINE_string("model_path", None, "trained model (.keras)", flag_values=fv)
    flags.DEFINE_string(
        "encoder", None, "encoder name (default: from config.json beside the model)", flag_values=fv
    )
    flags.DEFINE_string(
        "encoder_kwargs",
        None,
        "encoder kwargs as JSON, e.g. '{\"alpha\": 0.5}' (default: from config.json)",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "prefix",
        None,
        "layer-name prefix of the encoder in the model (default: encoder)",
        flag_values=fv,
    )
    flags.DEFINE_string("output", None, "output file, ending in .weights.h5", flag_values=fv)
    flags.mark_flags_as_required(["model_path", "output"], flag_values=fv)


def resolve_encoder(model_path, encoder=None, encoder_kwargs_json=None):
    """``(encoder, encoder_kwargs)`` from the flags, falling back to the run's ``config.json``."""
    config = {}
    config_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.json")
    if os.path.isfile(config_path):
        with open(config_path) as f:
            config = json.load(f).get("model", {}) or {}
    encoder = encoder or config.get("encoder")
    if not encoder:
        raise app.UsageError(f"--encoder is required (no encoder found in {config_path})")
    if encoder_kwargs_json is not None:
        kwargs = json.loads(encoder_kwargs_json)
        if not isinstance(kwargs, dict):
            raise app.UsageError(
                f"--encoder_kwargs must be a JSON object, got {encoder_kwargs_json}"
            )
    elif config.get("encoder") == encoder:
        kwargs = dict(config.get("encoder_kwargs") or {})
    else:
        kwargs = {}
    return encoder, kwargs


def run(fv=FLAGS):
    """Export with the parsed flags ``fv``; returns the ``LoadReport``."""
    from tfseg.encoders import export_encoder_weights

    encoder, kwargs = resolve_encoder(fv.model_path, fv.encoder, fv.encoder_kwargs)
    report = export_encoder_weights(
        fv.model_path, encoder, fv.output, prefix=fv.prefix, encoder_kwargs=kwargs
    )
    print(
        f"wrote {fv.output}: {report.tensors} tensors from {report.layers} layers of encoder "
        f"{encoder!r} {kwargs or ''}".rstrip()
    )
    return report


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    run(FLAGS)


if __name__ == "__main__":
    define_flags()
    app.run(main)
