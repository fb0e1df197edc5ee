"""tfseg: real-time semantic segmentation with Keras 3 / TensorFlow.

Public API::

    import tfseg
    model = tfseg.build_model("skipnet", 19, encoder="mobilenet")
    tfseg.list_models(), tfseg.list_encoders(), tfseg.list_decoders()
"""

__version__ = "0.1.0"

from tfseg.models import build_model, list_models, model_stride
from tfseg.registry import DECODERS, ENCODERS


def list_encoders():
    """Names accepted by ``build_model(..., encoder=...)``."""
    return ENCODERS.names()


def list_decoders():
    """Decoder (meta-architecture) names; use them with an encoder."""
    return DECODERS.names()


__all__ = ["build_model", "list_models", "list_encoders", "list_decoders", "model_stride"]
