"""Optimizer, learning-rate schedule and the compiled per-output losses of a new run."""

import keras

from tfseg.training.schedules import LearningRate


def warmup_steps(tc, total_steps):
    """Steps of ``--warmup_epochs``: the same share of ``total_steps`` as of the epochs (the
    reference zoo's ``pct_start = warmup_epochs / total_epoch``)."""
    if not tc.warmup_epochs:
        return 0
    if tc.warmup_epochs >= tc.epochs:
        raise ValueError(f"--warmup_epochs={tc.warmup_epochs} must be below --epochs={tc.epochs}")
    return max(1, round(total_steps * tc.warmup_epochs / tc.epochs))


def make_optimizer(tc, total_steps):
    """The optimizer of ``TrainConfig``: Adam, AdamW or SGD with momentum (``weight_decay``
    decoupled in all three), the ``lr_schedule`` over ``total_steps`` steps with warm-up
    (``tfseg.training.schedules``), and optional global-norm gradient clipping."""
    lr = LearningRate(
        tc.learning_rate,
        total_steps,
        kind=tc.lr_schedule,
        warmup_steps=warmup_steps(tc, total_steps),
        power=tc.poly_power,
    )
    wd = tc.weight_decay or None
    clip = {"global_clipnorm": tc.clip_norm} if tc.clip_norm else {}
    if tc.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=tc.momentum, weight_decay=wd, **clip)
    if tc.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=tc.weight_decay, **clip)
    return keras.optimizers.Adam(lr, weight_decay=wd, **clip)


def compile_model(model, task, config, spec, class_weights, total_steps):
    """Compile ``model`` with the task's loss and weight for every output (one output: its loss
    alone) and the optimizer over ``total_steps``."""
    pairs = task.losses(config, model, ignore_label=spec.ignore_label, class_weights=class_weights)
    if len(pairs) == 1:
        losses = {"loss": pairs[0][0]}
    else:
        losses = {"loss": [p[0] for p in pairs], "loss_weights": [float(p[1]) for p in pairs]}
    optimizer = make_optimizer(config.train, total_steps)
    model.compile(optimizer=optimizer, jit_compile="auto", **losses)
