"""Decoders (meta-architectures) over an encoder pyramid; importing this package registers them."""

from tfseg.decoders import (  # noqa: F401
    deeplabv3,
    deeplabv3plus,
    dilation,
    fpn,
    igum,  # noqa: F401
    manet,
    pan,
    pspnet,
    rgpnet,  # noqa: F401
    skipnet,
    smp_linknet,
    smp_unet,
    unet,
    unetplusplus,
)
