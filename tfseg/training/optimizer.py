"""Optimizer, learning-rate schedule and the compiled per-output losses of a new run."""

import keras


def make_optimizer(tc, total_steps):
    """Adam or SGD (``TrainConfig``), constant or poly learning rate over ``total_steps`` steps,
    decoupled weight decay."""
    if tc.lr_schedule == "poly":
        lr = keras.optimizers.schedules.PolynomialDecay(
            tc.learning_rate,
            decay_steps=max(1, total_steps),
            end_learning_rate=0.0,
            power=tc.poly_power,
        )
    else:
        lr = tc.learning_rate
    wd = tc.weight_decay or None
    if tc.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=tc.momentum, weight_decay=wd)
    return keras.optimizers.Adam(lr, weight_decay=wd)


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
