"""tfseg: real-time semantic segmentation with Keras 3 / TensorFlow.

Public API::

    import tfseg
    model = tfseg.build_model("skipnet", 19, encoder="mobilenet")
    tfseg.list_models(), tfseg.list_encoders(), tfseg.list_decoders()
"""

__version__ = "0.1.0"

# The model API is imported on first use (PEP 562), so that ``import tfseg.cpuinfo`` and the
# ``python -m tfseg.bench.isa`` runner, which only waits for its child, do not load Keras and
# TensorFlow.
_MODEL_API = ("build_model", "list_models", "model_stride")


def __getattr__(name):
    if name in _MODEL_API:
        from tfseg import models

        return getattr(models, name)
    raise AttributeError(f"module 'tfseg' has no attribute {name!r}")


def list_encoders():
    """Names accepted by ``build_model(..., encoder=...)``."""
    from tfseg import models  # noqa: F401  (registers every encoder)
    from tfseg.registry import ENCODERS

    return ENCODERS.names()


def list_decoders():
    """Decoder (meta-architecture) names; use them with an encoder."""
    from tfseg import models  # noqa: F401  (registers every decoder)
    from tfseg.registry import DECODERS

    return DECODERS.names()


__all__ = ["build_model", "list_models", "list_encoders", "list_decoders", "model_stride"]
