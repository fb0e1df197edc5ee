"""The training data of a run: class weights, steps per epoch and the progressive stage plan."""

import json

from tfseg.models import stride_of


def load_class_weights(path, spec):
    """The class weights in JSON file ``path`` (a list, or ``{"weights": [...]}``), checked
    against ``spec``'s number of classes."""
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"class weights file {path} is not valid JSON: {e}") from None
    weights = data["weights"] if isinstance(data, dict) else data
    if len(weights) != spec.num_classes:
        raise ValueError(
            f"class weights file {path} has {len(weights)} weights but dataset {spec.name!r} "
            f"has {spec.num_classes} classes"
        )
    return [float(w) for w in weights]


def class_weights(config, spec):
    """``(weights or None, record to write as class_weights.json or None)``.

    ``class_weights="auto"``: ENet weights of the training split, computed now.
    """
    source = config.loss.class_weights
    if source == "auto":
        from tfseg.data import enet_class_weights

        record = enet_class_weights(spec, config.data.train_split)
        return record["weights"], record
    return (load_class_weights(source, spec) if source else None), None


def steps_per_epoch(config, num_train):
    """``--steps_per_epoch``, or one pass over the ``num_train`` training images."""
    dc = config.data
    steps = config.train.steps_per_epoch or num_train // dc.batch_size
    if steps < 1:
        raise ValueError(
            f"split {dc.train_split!r} has {num_train} images, fewer than "
            f"--batch_size={dc.batch_size}"
        )
    return steps


def training_plan(config, steps_per_epoch):
    """The training stages (one without a progressive schedule): list of ``StagePlan``."""
    from tfseg.data.progressive import plan

    dc, tc = config.data, config.train
    return plan(
        tc.progressive_schedule,
        epochs=tc.epochs,
        batch_size=dc.batch_size,
        steps_per_epoch=steps_per_epoch,
        crop_size=dc.crop_size,
        multiple=stride_of(config.model.name),
    )
