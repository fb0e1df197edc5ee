"""Two-output models: semantic logits + instance centres.

``build_instance_model`` builds any registered network with the instance module attached to a
stride-``s`` feature map (default 8) and returns a ``keras.Model`` with two outputs, in this order:

- ``logits`` (B, H, W, num_classes): the semantic logits (unchanged contract);
- ``instance`` (B, H, W, 2): the predicted instance centre ``(y, x)`` of every pixel, in input pixels.

Decoders (with ``encoder=``): the head reads the deepest pyramid level at stride ``s`` (P5 of a dilated
encoder for iGUM, P3 otherwise), concatenated with the deepest level upsampled when that one is
coarser. Complete networks (``MODELS``, e.g. ``ssn``): the builder's ``instance_feature`` attribute
(a layer name) if it has one, else the last layer of the graph whose output has stride ``s`` and is
neither the class logits nor a 2-channel offset table (found on a probe build at a static size).
"""

import keras

from tfseg.instance.module import instance_head
from tfseg.layers import BilinearUpsample, conv_bn_act
from tfseg.registry import MODELS

INSTANCE_OUTPUT = "instance"


def _pyramid_feature(pyramid, output_stride, stride, name):
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


def find_feature_layer(model, num_classes, stride=8, probe_size=256):
    """Name of the last layer of ``model`` (a functional semantic model) at ``stride`` that is a
    feature map (not the logits, not a 2-channel offset table). ``model`` must have a static input
    size; callers pass a probe build."""
    h = model.inputs[0].shape[1]
    best = None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        out = layer.output
        if isinstance(out, (list, tuple)) or len(out.shape) != 4:
            continue
        if out.shape[1] and h // out.shape[1] == stride and out.shape[-1] not in (2, num_classes):
            best = layer.name
    if best is None:
        raise ValueError(
            f"model {model.name!r} has no feature map at stride {stride} to attach the instance "
            f"module to; set the builder's instance_feature attribute to a layer name"
        )
    return best


def build_instance_model(
    name,
    num_classes,
    *,
    encoder=None,
    input_shape=(None, None, 3),
    encoder_kwargs=None,
    bn_momentum=0.9,
    iterations=30,
    offset_scale=1.0,
    stride=8,
    filters=64,
    **kwargs,
):
    """Semantic network ``name`` (+ ``encoder``) with the instance module; see the module docstring.

    ``iterations`` (t), ``offset_scale`` (one offset unit in stride-``stride`` pixels), ``filters``
    (width of the guidance module) configure the instance head; other keyword arguments go to the
    decoder / network builder as in ``tfseg.build_model``.

    >>> model = build_instance_model("skipnet", 19, encoder="mobilenet", iterations=30)
    >>> logits, centres = model(images)
    """
    from tfseg.models import build_model, encoder_decoder

    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {tuple(input_shape)}")
    encoder_kwargs = dict(encoder_kwargs or {})
    head = dict(iterations=iterations, offset_scale=offset_scale, filters=filters, name="instance")
    if name in MODELS:
        semantic = build_model(
            name, num_classes, encoder=encoder, input_shape=input_shape,
            encoder_kwargs=encoder_kwargs, bn_momentum=bn_momentum, **kwargs
        )
        layer_name = getattr(MODELS.get(name), "instance_feature", None)
        if layer_name is None:
            s = getattr(MODELS.get(name), "stride", 32)
            size = max(probe := 256, s * (-(-probe // s)))
            probe_model = build_model(
                name, num_classes, encoder=encoder, input_shape=(size, size, 3),
                encoder_kwargs=encoder_kwargs, **kwargs
            )
            layer_name = find_feature_layer(probe_model, num_classes, stride)
            del probe_model
        feature = semantic.get_layer(layer_name).output
        centres = instance_head(feature, stride=stride, **head)
        model = keras.Model(semantic.inputs[0], [semantic.outputs[0], centres], name=semantic.name)
    else:
        inputs, pyramid, logits, output_stride = encoder_decoder(
            name, num_classes, encoder, input_shape, encoder_kwargs, kwargs
        )
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        feature = _pyramid_feature(pyramid, output_stride, stride, "instance")
        centres = instance_head(feature, stride=stride, **head)
        model = keras.Model(inputs, [logits, centres], name=f"{name}_{encoder}")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(bn_momentum)
    return model


def has_instance_head(model):
    """True for a model built by :func:`build_instance_model` (two outputs, the second the centres)."""
    outputs = model.outputs
    return len(outputs) == 2 and any(layer.name == INSTANCE_OUTPUT for layer in model.layers)


def semantic_view(model):
    """The semantic part of a two-output model as a one-output model sharing its weights."""
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs[0], model.outputs[0], name=model.name)


def require_instance_head(model, what="model"):
    if not has_instance_head(model):
        raise ValueError(
            f"{what} {model.name!r} has no instance head (one output); train it with "
            f"--task=instance"
        )
    return model
