"""Decoders (meta-architectures) over an encoder pyramid; importing this package registers them."""

from tfseg.decoders import skipnet, unet, dilation  # noqa: F401
from tfseg.decoders import igum  # noqa: F401
from tfseg.decoders import rgpnet  # noqa: F401
