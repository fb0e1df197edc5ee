"""``build_model``: one builder for every tfseg model, its extra heads and its recorded anatomy.

A model is either a decoder over a registered encoder (``DECODERS`` + ``ENCODERS``, joined through
the ``{"P1".."P5"}`` pyramid) or a complete network (``MODELS``). Either way the result has the main
logits as its first output, named ``logits``; ``heads=`` adds outputs after it:

- heads that the network itself builds (``MODELS`` registered with ``heads=("aux",)``, the builder
  then returns ``{"logits": t, "aux": [t1, t2, ...]}``): ``"aux"`` adds every auxiliary output,
  named ``aux1``, ``aux2``, ... in the builder's order; ``"detail"`` adds the detail map;
- heads registered in ``HEADS`` that attach to any model (``"instance"``: the SSN instance module,
  on the model's stride-8 feature map).

Extra outputs come in the order of ``heads``. Every output passes through a float32 linear layer
named after it, so mixed-precision models still return float32.
"""

import dataclasses

import keras

from tfseg.layers import CropToInput, StrideGuard
from tfseg.layers.blocks import BN_MOMENTUM
from tfseg.models.anatomy import LOGITS, describe, set_anatomy
from tfseg.registry import DECODERS, ENCODERS, HEADS, MODELS, check_kwargs

NETWORK_HEADS = ("aux", "detail")


@dataclasses.dataclass
class Parts:
    """What a head builder may attach to (``HEADS`` builders take ``(parts, num_classes, **kw)``).

    ``features`` maps a stride to a feature tensor: the pyramid levels of a decoder model (and,
    for a dilated encoder, its stride-8 levels), a complete network's registered ``features``.
    ``pyramid``/``output_stride`` are set for decoder models only.
    """

    inputs: object
    logits: object
    features: dict
    pyramid: dict = None
    output_stride: int = 32


def list_models():
    """Every name ``build_model`` accepts: decoders (which need ``encoder=``) and complete
    networks."""
    return sorted(set(DECODERS.names()) | set(MODELS.names()))


def needs_encoder(name):
    """True for a decoder, which needs ``encoder=``."""
    return name in DECODERS and name not in MODELS


def takes_encoder(name):
    """True for a decoder and for a complete network built on an encoder (registered with
    ``default_encoder=``): both accept ``encoder=`` / ``--encoder``."""
    return needs_encoder(name) or (name in MODELS and MODELS.info(name).default_encoder is not None)


def resolve_encoder(name, encoder):
    """The encoder model ``name`` is built on: ``encoder``, a network's default when ``None``, and
    ``None`` for a network that takes none (a ValueError if one was given anyway)."""
    if name in MODELS:
        default = MODELS.info(name).default_encoder
        if default is None:
            if encoder is not None:
                raise ValueError(
                    f"model {name!r} is a complete network without an encoder; it does not take "
                    f"encoder={encoder!r} (networks built on an encoder: "
                    f"{', '.join(n for n in MODELS.names() if takes_encoder(n)) or 'none'})"
                )
            return None
        encoder = default if encoder is None else encoder
    if encoder is not None:
        ENCODERS.info(encoder)  # an unknown encoder lists the choices
    return encoder


def stride_of(name):
    """The input-size multiple that model ``name`` needs (decoders: 32, the encoders' stride)."""
    return MODELS.info(name).stride if name in MODELS else 32


def build_model(
    name,
    num_classes,
    *,
    encoder=None,
    input_shape=(None, None, 3),
    encoder_kwargs=None,
    bn_momentum=BN_MOMENTUM,
    heads=(),
    head_kwargs=None,
    any_size=False,
    **kwargs,
):
    """Build a segmentation model.

    Args:
      name: a decoder (``skipnet``, ``unet``, ``dilation``, ...) used with ``encoder``, or a
        complete network from ``list_models()``.
      num_classes: number of output channels (logits).
      encoder: encoder name from ``list_encoders()``; required for decoders. Complete networks that
        are built on an ImageNet encoder (registered with ``default_encoder=``) take it too, with
        that default when ``None``; their builder gets ``encoder=`` and ``encoder_kwargs=`` and
        builds the pyramid with ``tfseg.encoders.encoder_pyramid``.
      input_shape: ``(H, W, 3)``; ``None`` dims make a model for any size divisible by its stride.
      encoder_kwargs: keyword arguments for the encoder builder (e.g. ``{"alpha": 0.5}``).
      bn_momentum: momentum of every BatchNormalization's moving statistics
        (``tfseg.layers.blocks.BN_MOMENTUM``, 0.9, by default).
      heads: extra outputs after the logits: ``"aux"``, ``"detail"`` (where the network has them),
        ``"instance"`` (any model with a stride-8 feature map).
      head_kwargs: ``{head: {keyword: value}}`` for registered heads, e.g.
        ``{"instance": {"iterations": 30}}``.
      any_size: pad the input to the stride inside the model and crop the outputs back, so any
        input size works; otherwise a size that does not fit raises the stride-guard message.
      **kwargs: keyword arguments for the decoder / network builder; an unknown key raises a
        ValueError naming it and the accepted ones.

    >>> model = build_model("skipnet", 19, encoder="mobilenet", input_shape=(256, 512, 3))
    >>> model = build_model("ssn", 19, heads=("instance",))  # outputs: logits, instance
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {tuple(input_shape)}")
    heads = _check_heads(name, heads, head_kwargs)
    encoder_kwargs = dict(encoder_kwargs or {})
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    stride = stride_of(name)
    guard = StrideGuard(stride, any_size=any_size, name="stride_guard")
    x = guard(inputs)
    if name in MODELS:
        info = MODELS.info(name)
        check_kwargs(info, kwargs, "model")
        encoder = resolve_encoder(name, encoder)
        if encoder is None:
            if encoder_kwargs:
                raise ValueError(f"model {name!r} has no encoder to take {encoder_kwargs}")
            result = info.fn(x, int(num_classes), **kwargs)
            model_name = name
        else:
            check_kwargs(ENCODERS.info(encoder), encoder_kwargs, "encoder")
            result = info.fn(
                x, int(num_classes), encoder=encoder, encoder_kwargs=encoder_kwargs, **kwargs
            )
            model_name = name if encoder == info.default_encoder else f"{name}_{encoder}"
        built = result if isinstance(result, dict) else {LOGITS: result}
        parts = Parts(inputs=inputs, logits=built[LOGITS], features={})
    else:
        built, parts = _encoder_decoder(name, num_classes, encoder, x, encoder_kwargs, kwargs)
        parts.inputs = inputs
        model_name = f"{name}_{encoder}"
    outputs = [(LOGITS, LOGITS, built[LOGITS])]
    outputs += _network_heads(name, built, heads)
    if name in MODELS:
        parts.features = _network_features(name, inputs, built[LOGITS])
    for head in heads:
        if head not in NETWORK_HEADS:
            kw = (head_kwargs or {}).get(head, {})
            outputs.append((head, head, HEADS.get(head)(parts, int(num_classes), **kw)))
    tensors = []
    for out_name, _, t in outputs:
        if any_size:
            t = CropToInput(name=f"{out_name}_crop")([t, inputs])
        tensors.append(keras.layers.Activation("linear", dtype="float32", name=out_name)(t))
    model = keras.Model(inputs, tensors[0] if len(tensors) == 1 else tensors, name=model_name)
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(bn_momentum)
    anatomy = describe(
        model,
        name=name,
        encoder=encoder,
        num_classes=num_classes,
        stride=stride,
        any_size=any_size,
        outputs=[(n, kind) for n, kind, _ in outputs],
        pyramid=parts.pyramid,
        features=parts.features,
    )
    set_anatomy(model, anatomy)
    return model


def build_symbolic_model(name, num_classes, **kwargs):
    """``build_model(name, num_classes, **kwargs)`` whose variables are never given values, for
    counting and shape checks only.

    Built under ``keras.StatelessScope(initialize_variables=False)``: each variable keeps its
    shape, dtype and initializer and nothing more. Parameter and MAC counts (``tfseg.flops``) and
    ``model.compute_output_spec`` need no more (a trace draws the initializer inside its graph).
    The build skips the backend's variable creation and random draws, 35-45 % of its time on
    TensorFlow (FPENet at 512x1024: 3.2 -> 1.8 s, LEDNet 2.3 -> 1.3 s, AMD Zen 3). Use it for
    nothing else: each read of a variable draws its value from the initializer again, so a call
    is slow and training it is meaningless. Call ``keras.backend.clear_session()`` when done with
    it: that also drops Keras' list of the variables still waiting for values (the next stateless
    scope to close would otherwise initialise them)."""
    with keras.StatelessScope(initialize_variables=False):
        return build_model(name, num_classes, **kwargs)


def _all_layers(model):
    """Every layer of ``model``, the layers of nested models (a shared encoder) included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _check_heads(name, heads, head_kwargs):
    heads = (heads,) if isinstance(heads, str) else tuple(heads or ())
    offered = MODELS.info(name).heads if name in MODELS else ()
    for head in heads:
        if head in NETWORK_HEADS:
            if head not in offered:
                raise ValueError(
                    f"model {name!r} has no {head!r} head; its own heads: "
                    f"{', '.join(offered) or 'none'}; attachable heads: {', '.join(HEADS.names())}"
                )
        else:
            HEADS.info(head)  # an unknown head lists the choices
    if len(set(heads)) != len(heads):
        raise ValueError(f"heads must not repeat, got {heads}")
    unknown = set(head_kwargs or {}) - set(heads)
    if unknown:
        raise ValueError(f"head_kwargs for heads that were not asked for: {sorted(unknown)}")
    return heads


def _network_heads(name, built, heads):
    """``[(output name, kind, tensor), ...]`` of the network-built heads asked for."""
    out = []
    for head in heads:
        if head == "aux":
            aux = built.get("aux")
            aux = list(aux.values()) if isinstance(aux, dict) else list(aux or [])
            if not aux:
                raise ValueError(f"model {name!r} registered an 'aux' head but returned none")
            out += [(f"aux{i + 1}", "aux", t) for i, t in enumerate(aux)]
        elif head == "detail":
            if built.get("detail") is None:
                raise ValueError(f"model {name!r} registered a 'detail' head but returned none")
            out.append(("detail", "detail", built["detail"]))
    return out


def _network_features(name, inputs, logits):
    """A complete network's registered ``features`` as ``{stride: tensor}``."""
    declared = MODELS.info(name).features
    if not declared:
        return {}
    probe = keras.Model(inputs, logits)
    return {int(s): probe.get_layer(layer).output for s, layer in declared.items()}


def _encoder_decoder(name, num_classes, encoder, x, encoder_kwargs, kwargs):
    """Decoder ``name`` over ``encoder`` on the guarded input ``x``: ``(built, parts)``."""
    info = DECODERS.info(name)
    if encoder is None:
        raise ValueError(
            f"decoder {name!r} needs an encoder; choose one of: {', '.join(ENCODERS.names())}"
        )
    encoder_info = ENCODERS.info(encoder)
    check_kwargs(info, kwargs, "decoder")
    check_kwargs(encoder_info, encoder_kwargs, "encoder")
    output_stride = info.encoder_output_stride
    depth = info.extra.get("encoder_depth")
    # A decoder whose options change what it asks of the encoder (``dilation``'s ``variant``) is
    # registered with ``encoder_setup(**decoder kwargs) -> (output_stride, depth or None)``.
    setup = info.extra.get("encoder_setup")
    if setup is not None:
        output_stride, depth = setup(**kwargs)
    pyramid = encoder_info.fn(x, output_stride=output_stride, name=encoder, **encoder_kwargs)
    # A decoder registered with ``encoder_depth=k`` (SMP's PSPNet: 3) reads P1..Pk only; the deeper
    # levels are left out of the pyramid (and so of the model, its anatomy and its heads).
    depth = int(depth or len(pyramid))
    pyramid = {k: v for k, v in pyramid.items() if int(k[1:]) <= depth}
    logits = info.fn(pyramid, int(num_classes), name=name, **kwargs)
    strides = {k: min(2 ** int(k[1:]), output_stride) for k in pyramid}
    features = {}
    for level in sorted(pyramid, key=lambda k: int(k[1:])):
        features[strides[level]] = pyramid[level]  # the deepest level of each stride
    parts = Parts(
        inputs=None, logits=logits, features=features, pyramid=pyramid, output_stride=output_stride
    )
    return {LOGITS: logits}, parts
