"""Optimizer, learning-rate schedule and the compiled per-output losses of a new run."""

import keras
import tensorflow as tf

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


@keras.saving.register_keras_serializable(package="tfseg")
class ReplicaMeanLoss(keras.losses.Loss):
    """``loss`` as one replica's share of the global batch's loss (itself outside a
    ``tf.distribute`` strategy), so that the strategy's sum of the replicas' gradients is the
    gradient of the one-process run.

    Keras divides its own mean-reduced losses by the replica count, but not a loss that returns
    one scalar per batch, as every tfseg loss does. Moreover a tfseg loss is a mean over the
    *labelled* pixels, and replicas hold different numbers of them: with ``ignore_label`` the
    replica's loss is weighted by its share of the global batch's labelled pixels (an all-reduce
    of the counts), which makes the sum exactly the global mean for the cross-entropy and the
    kl / mse distillation losses (auxiliary outputs are weighted by the full-size counts, their
    labels being resized inside their loss; OHEM's selection, class weights, label relaxation and
    cwd's per-image terms stay per replica, a close approximation).
    Outputs whose target is not a label map (``ignore_label=None``) are divided by the replica
    count. Keras' loss tracker multiplies the reported value back.
    """

    def __init__(self, loss, ignore_label=None, name=None, **kwargs):
        kwargs.pop("reduction", None)
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        super().__init__(name=name or loss.name, reduction="sum", **kwargs)
        self.loss = loss
        self.ignore_label = None if ignore_label is None else int(ignore_label)

    def call(self, y_true, y_pred):
        value = self.loss(y_true, y_pred)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas == 1:
            return value
        context = tf.distribute.get_replica_context()
        if self.ignore_label is None or context is None:
            return value / replicas
        labels = tf.cast(tf.convert_to_tensor(y_true), tf.int32)
        mine = tf.reduce_sum(tf.cast(tf.not_equal(labels, self.ignore_label), value.dtype))
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, mine)
        return value * mine / tf.maximum(total, 1.0)

    def get_config(self):
        return {
            "name": self.name,
            "loss": keras.saving.serialize_keras_object(self.loss),
            "ignore_label": self.ignore_label,
        }


def compile_model(model, task, config, spec, class_weights, total_steps):
    """Compile ``model`` with the task's loss and weight for every output (one output: its loss
    alone; each a ``ReplicaMeanLoss``, so a distributed run follows the one-process run) and the
    optimizer over ``total_steps``."""
    from tfseg.models.outputs import output_kinds

    pairs = task.losses(config, model, ignore_label=spec.ignore_label, class_weights=class_weights)
    label_kinds = ("logits", "aux", "distill")  # outputs whose target is the label map
    pairs = [
        (ReplicaMeanLoss(loss, spec.ignore_label if kind in label_kinds else None), weight)
        for (loss, weight), kind in zip(pairs, output_kinds(model), strict=True)
    ]
    if len(pairs) == 1:
        losses = {"loss": pairs[0][0]}
    else:
        losses = {"loss": [p[0] for p in pairs], "loss_weights": [float(p[1]) for p in pairs]}
    optimizer = make_optimizer(config.train, total_steps)
    model.compile(optimizer=optimizer, jit_compile="auto", **losses)
    # The optimizer's slots now, eagerly, as Keras does itself under a distribution strategy:
    # otherwise TensorFlow's Keras creates them inside the first traced training step, which then
    # traces twice (DABNet's first step at batch 4, 256x256: 33 s -> 17 s on a 2-core Zen 3).
    model.optimizer.build(model.trainable_variables)
