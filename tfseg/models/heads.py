"""Heads that attach to any tfseg model (``HEADS``; ``build_model(..., heads=(name,))``).

A head builder takes ``(parts, num_classes, **kwargs)`` (``tfseg.models.build.Parts``: the input,
the logits and the model's feature maps by stride) and returns one tensor, which ``build_model``
adds as an output named after the head.
"""

import keras

from tfseg.instance.module import instance_head
from tfseg.layers import BilinearUpsample, conv_bn_act
from tfseg.registry import HEADS


def _pyramid_feature(pyramid, output_stride, stride, name):
    """The deepest pyramid level at ``stride``, with the deepest level (upsampled) concatenated
    when that one is coarser."""
    strides = {k: min(2 ** int(k[1:]), output_stride) for k in pyramid}
    levels = sorted((k for k in pyramid if strides[k] == stride), key=lambda k: int(k[1:]))
    if not levels:
        raise ValueError(
            f"no encoder pyramid level has stride {stride} (levels: {strides}); choose another "
            f"instance stride"
        )
    feature = pyramid[levels[-1]]
    deepest = max(pyramid, key=lambda k: int(k[1:]))
    if strides[deepest] > stride:
        ctx = conv_bn_act(pyramid[deepest], 64, 1, name=f"{name}_context")
        ctx = BilinearUpsample(strides[deepest] // stride, name=f"{name}_context_up")(ctx)
        feature = keras.layers.Concatenate(name=f"{name}_concat")([feature, ctx])
    return feature


@HEADS.register("instance", paper="SSN (Ghazvini et al., 2019), instance segmentation module")
def instance(parts, num_classes, *, iterations=30, offset_scale=1.0, stride=8, filters=64):
    """SSN's instance module: per-pixel instance centres ``(y, x)`` in input pixels.

    Decoder models: the deepest pyramid level at ``stride`` (P5 of a dilated encoder for iGUM, P3
    otherwise), concatenated with the deepest level upsampled when that one is coarser. Complete
    networks: the feature map they register as ``features={stride: layer name}``.
    """
    del num_classes
    if parts.pyramid is not None:
        feature = _pyramid_feature(parts.pyramid, parts.output_stride, stride, "instance")
    elif stride in parts.features:
        feature = parts.features[stride]
    else:
        raise ValueError(
            f"this network registers no feature map at stride {stride} for the instance head "
            f"(registered: {sorted(parts.features) or 'none'}); add features={{{stride}: "
            f"'<layer name>'}} to its MODELS.register(...)"
        )
    return instance_head(
        feature,
        stride=stride,
        iterations=iterations,
        offset_scale=offset_scale,
        filters=filters,
        name="instance",
    )
