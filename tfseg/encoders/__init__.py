"""Encoders. Each returns the pyramid {"P1".."P5"} (P_k at stride 2**k); importing this package
registers them in ``tfseg.registry.ENCODERS``.

- ``vgg16``, ``resnet50``, ``resnet101``, ``mobilenet``, ``mobilenetv2`` (``alpha``,
  ``include_last_conv``): layer for layer as keras-applications, so its ImageNet ``.h5`` files load
  (``load_encoder_weights``).
- ``resnet18`` (torchvision layout), ``shufflenet`` (v1, groups 1/2/3/4/8, width ``scale``) and
  ``stdc1`` / ``stdc2`` (STDC, Fan et al. 2021, as the reference zoo's STDC / PP-LiteSeg backbone).

``build_encoder_model`` wraps one in a standalone model; ``load_encoder_weights`` loads weights into
the encoder's layers of any model; ``export_encoder_weights`` extracts them from a trained model.
"""

from tfseg.encoders import (  # noqa: F401  (registration)
    mobilenet,
    mobilenetv2,
    resnet,
    shufflenet,
    stdc,
    vgg,
)
from tfseg.encoders.core import (
    OUTPUT_STRIDES,
    PYRAMID_KEYS,
    StrideSchedule,
    build_encoder_model,
    encoder_pyramid,
)
from tfseg.encoders.weights import export_encoder_weights, load_encoder_weights

__all__ = [
    "OUTPUT_STRIDES",
    "PYRAMID_KEYS",
    "StrideSchedule",
    "build_encoder_model",
    "encoder_pyramid",
    "export_encoder_weights",
    "load_encoder_weights",
]
