"""Two-output models: semantic logits + instance centres.

``build_instance_model`` is ``build_model(..., heads=("instance",))``: any registered network with
the instance module (``tfseg.models.heads``) on its stride-``s`` feature map (default 8). Outputs,
in this order:

- ``logits`` (B, H, W, num_classes): the semantic logits (unchanged contract);
- ``instance`` (B, H, W, 2): the predicted instance centre ``(y, x)`` of every pixel, in input
  pixels.
"""

from tfseg.models import build_model, get_anatomy

INSTANCE_OUTPUT = "instance"


def build_instance_model(
    name, num_classes, *, iterations=30, offset_scale=1.0, stride=8, filters=64, **kwargs
):
    """Semantic network ``name`` (+ ``encoder``) with the instance module.

    ``iterations`` (t), ``offset_scale`` (one offset unit in stride-``stride`` pixels), ``filters``
    (width of the guidance module) configure the instance head; other keyword arguments go to
    ``tfseg.build_model``.

    >>> model = build_instance_model("skipnet", 19, encoder="mobilenet", iterations=30)
    >>> logits, centres = model(images)
    """
    head = dict(iterations=iterations, offset_scale=offset_scale, stride=stride, filters=filters)
    return build_model(
        name, num_classes, heads=(INSTANCE_OUTPUT,), head_kwargs={INSTANCE_OUTPUT: head}, **kwargs
    )


def has_instance_head(model):
    """True for a model with an ``instance`` output (``heads=("instance",)``): recorded in its
    anatomy and still one of its outputs (a view built from its tensors may have dropped it)."""
    try:
        recorded = INSTANCE_OUTPUT in get_anatomy(model).output_names
    except ValueError:
        return False
    return recorded and INSTANCE_OUTPUT in list(model.output_names)


def require_instance_head(model, what="model"):
    if not has_instance_head(model):
        raise ValueError(
            f"{what} {model.name!r} has no instance head (one output); train it with "
            f"--task=instance"
        )
    return model
