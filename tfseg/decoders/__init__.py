"""Decoders (meta-architectures) over an encoder pyramid; importing this package registers them."""

from tfseg.decoders import (  # noqa: F401
    dilation,
    fpn,
    igum,  # noqa: F401
    pan,
    rgpnet,  # noqa: F401
    skipnet,
    smp_linknet,
    unet,
)
