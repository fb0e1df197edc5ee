"""Model assembly: ``build_model`` joins a registered encoder and decoder, or builds a complete
network.

Contract (DESIGN.md §4): the returned ``keras.Model`` maps an NHWC float image batch (normalised as
by ``tfseg.data.normalize``) to logits (no softmax), NHWC, at the input resolution; extra heads
(``heads=``) come as further outputs after the logits.

Registries (``tfseg.registry``; registration carries metadata, read with ``REGISTRY.info(name)``):
- ``ENCODERS[name](inputs, *, output_stride=32, name=..., **kw) -> {"P1": .., "P5": ..}``; ``P_k``
  has stride ``2**k`` for ``output_stride=32``. With ``output_stride=8`` the last two downsamplings
  are replaced by dilation 2 and 4, so P4 and P5 keep stride 8.
- ``DECODERS[name](pyramid, num_classes, *, name=..., **kw) -> logits``, registered with
  ``encoder_output_stride`` (default 32) saying what it asks of the encoder.
- ``MODELS[name](inputs, num_classes, **kw) -> logits`` (or ``{"logits": .., "aux": [..]}``) for
  complete networks, registered with ``stride`` (the input-size multiple they need; default 32),
  ``features`` and ``heads``.
- ``HEADS[name](parts, num_classes, **kw) -> tensor``: heads that attach to any model
  (``instance``).

``tfseg.models.anatomy`` records what each built model is made of (``get_anatomy(model)``).
"""

import tfseg.decoders  # noqa: E402,F401

# Importing the packages fills the registries.
import tfseg.encoders  # noqa: E402,F401
import tfseg.models.heads  # noqa: E402,F401

# Complete networks register themselves in MODELS on import.
from tfseg.models import (  # noqa: E402,F401  # noqa: E402,F401  # noqa: E402,F401  # noqa: E402,F401  # noqa: E402,F401
    adscnet,
    aglnet,
    bisenetv1,
    bisenetv2,
    canet,
    cfpnet,
    cgnet,
    contextnet,
    dabnet,
    ddrnet,
    dfanet,
    edanet,
    enet,
    erfnet,
    esnet,
    espnet,
    espnetv2,
    fanet,
    farseenet,
    fastscnn,
    fddwnet,
    fpenet,
    fssnet,
    icnet,
    lednet,
    linknet,
    lite_hrnet,
    liteseg,
    mininet,
    mininetv2,
    pp_liteseg,
    regseg,
    segnet,
    shelfnet,
    sqnet,
    ssn,  # noqa: E402,F401
    stdc,
    swiftnet,
)
from tfseg.models.anatomy import Anatomy, get_anatomy, model_stride
from tfseg.models.build import (
    build_model,
    build_symbolic_model,
    list_models,
    needs_encoder,
    resolve_encoder,
    stride_of,
    takes_encoder,
)

__all__ = [
    "Anatomy",
    "build_model",
    "build_symbolic_model",
    "get_anatomy",
    "list_models",
    "model_stride",
    "needs_encoder",
    "resolve_encoder",
    "stride_of",
    "takes_encoder",
]
