"""Knowledge distillation (``--teacher_model=PATH.keras --kd_loss=kl|mse|cwd``).

The teacher is any tfseg model, frozen and always in inference mode (``FrozenTeacher``: BatchNorm
statistics and dropout as at test time, no gradient). ``attach_teacher`` adds one output to the
student being trained, ``distill``: the student's main logits and the teacher's, concatenated on
the channel axis. Its target is the label map (only to know which pixels are labelled) and its loss
is ``DistillationLoss`` weighted by ``--kd_weight``; the student's own losses are unchanged. Every
tfseg model returns its logits at the input resolution, so teacher and student logits always have
the same size, whatever their strides. ``model.keras`` keeps the student's outputs only (the
teacher is not on their path); the checkpoints hold the teacher too, so ``--resume`` needs nothing
else.

Losses, over the pixels whose label is not ``ignore_label`` (``s``, ``t``: student and teacher
logits, ``T``: ``--kd_temperature``, ``C``: classes):

- ``kl`` (Hinton et al., 2015, per pixel): ``T^2 * mean_pixels KL(softmax(t/T) || softmax(s/T))``;
- ``mse``: ``mean_{pixels, classes} (s - t)^2``;
- ``cwd``, channel-wise distillation (Shu et al., ICCV 2021): each class channel is a distribution
  over the labelled positions of its image, ``softmax_positions(x_c / T)``;
  ``T^2 * mean_{images, channels} KL(teacher's || student's)``.
"""

import keras
from keras import ops

KD_LOSSES = ("kl", "mse", "cwd")
DISTILL = "distill"  # the output name and kind


@keras.saving.register_keras_serializable(package="tfseg")
class FrozenTeacher(keras.layers.Layer):
    """Runs ``teacher`` (a one-output logits model) in inference mode with no gradient, whatever
    the ``training`` flag of the model it is part of."""

    def __init__(self, teacher, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.teacher = teacher
        self.teacher.trainable = False

    def build(self, input_shape):
        self.built = True

    def call(self, images):
        # no ``training`` argument: the enclosing model cannot switch the teacher to training mode
        return ops.stop_gradient(self.teacher(images, training=False))

    def compute_output_spec(self, images):
        return self.teacher.compute_output_spec(images)

    def get_config(self):
        config = super().get_config()
        config["teacher"] = keras.saving.serialize_keras_object(self.teacher)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        teacher = keras.saving.deserialize_keras_object(config.pop("teacher"))
        return cls(teacher, **config)


def _split(y_pred):
    classes = y_pred.shape[-1] // 2
    return y_pred[..., :classes], y_pred[..., classes:]


def _labelled(y_true, ignore_label):
    """Float mask (N, H, W) of the labelled pixels."""
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == 4:
        y_true = y_true[..., 0]
    return ops.cast(ops.not_equal(ops.cast(y_true, "int32"), ignore_label), "float32")


def kl_distillation(student, teacher, mask, temperature):
    """``T^2`` x the mean over labelled pixels of ``KL(softmax(t/T) || softmax(s/T))``."""
    log_s = ops.log_softmax(student / temperature, axis=-1)
    log_t = ops.log_softmax(teacher / temperature, axis=-1)
    per_pixel = ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1)
    total = ops.sum(per_pixel * mask)
    return temperature**2 * total / ops.maximum(ops.sum(mask), 1.0)


def mse_distillation(student, teacher, mask):
    """Mean squared logit difference over labelled pixels and classes."""
    per_pixel = ops.mean(ops.square(student - teacher), axis=-1)
    return ops.sum(per_pixel * mask) / ops.maximum(ops.sum(mask), 1.0)


def cwd_distillation(student, teacher, mask, temperature):
    """Channel-wise distillation: per image and channel, KL between the teacher's and the student's
    spatial softmax over the labelled positions, times ``T^2``, averaged over images and
    channels (an image without labelled pixels counts zero)."""
    n, c = ops.shape(student)[0], student.shape[-1]
    s = ops.reshape(ops.transpose(student, (0, 3, 1, 2)), (n, c, -1)) / temperature
    t = ops.reshape(ops.transpose(teacher, (0, 3, 1, 2)), (n, c, -1)) / temperature
    m = ops.reshape(mask, (n, 1, -1))
    # unlabelled positions leave the distributions: a large negative logit, and their terms zeroed
    offset = (1.0 - m) * -1e4
    log_s = ops.log_softmax(s + offset, axis=-1)
    log_t = ops.log_softmax(t + offset, axis=-1)
    terms = ops.where(m > 0, ops.exp(log_t) * (log_t - log_s), 0.0)
    per_channel = ops.sum(terms, axis=-1)  # (n, c)
    has_labels = ops.cast(ops.sum(m, axis=(1, 2)) > 0, "float32")  # (n,)
    total = ops.sum(per_channel * has_labels[:, None])
    return temperature**2 * total / ops.cast(n * c, "float32")


@keras.saving.register_keras_serializable(package="tfseg")
class DistillationLoss(keras.losses.Loss):
    """The loss of the ``distill`` output (student and teacher logits concatenated; see the module
    docstring). ``y_true`` is the label map, used only for its ``ignore_label`` pixels."""

    def __init__(self, kind="kl", temperature=4.0, ignore_label=255, name="distillation", **kw):
        kw.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kw)
        if kind not in KD_LOSSES:
            raise ValueError(f"unknown --kd_loss {kind!r}; choose one of {', '.join(KD_LOSSES)}")
        if temperature <= 0:
            raise ValueError(f"--kd_temperature must be > 0, got {temperature}")
        self.kind = kind
        self.temperature = float(temperature)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        student, teacher = _split(ops.cast(y_pred, "float32"))
        mask = _labelled(y_true, self.ignore_label)
        if self.kind == "kl":
            return kl_distillation(student, teacher, mask, self.temperature)
        if self.kind == "mse":
            return mse_distillation(student, teacher, mask)
        return cwd_distillation(student, teacher, mask, self.temperature)

    def get_config(self):
        return {
            "name": self.name,
            "kind": self.kind,
            "temperature": self.temperature,
            "ignore_label": self.ignore_label,
        }


def load_teacher(path, num_classes, strides=()):
    """The teacher at ``path`` as a one-output logits model; errors name the file when it is not
    a model for ``num_classes`` classes or cannot take crops that are multiples of ``strides``."""
    from tfseg.models import model_stride
    from tfseg.models.outputs import logits_view
    from tfseg.models.saving import load_model

    teacher = logits_view(load_model(path))
    classes = teacher.outputs[0].shape[-1]
    if classes != num_classes:
        raise ValueError(
            f"--teacher_model={path} predicts {classes} classes but the dataset has {num_classes}"
        )
    stride = model_stride(teacher)
    bad = [s for s in strides if s % stride]
    if bad:
        raise ValueError(
            f"--teacher_model={path} needs input sizes that are multiples of {stride}; the "
            f"training crops {bad} are not"
        )
    static = tuple(teacher.inputs[0].shape[1:3])
    if None not in static:
        raise ValueError(
            f"--teacher_model={path} is built for {static[0]}x{static[1]} inputs only; export it "
            "with a dynamic input size (a model.keras written by tfseg.train has one)"
        )
    return teacher


def attach_teacher(model, teacher):
    """``model`` with one more output, ``distill`` (its main logits and ``teacher``'s,
    concatenated), recorded in its anatomy."""
    import dataclasses

    from tfseg.models.anatomy import get_anatomy, set_anatomy

    anatomy = get_anatomy(model)
    image = model.inputs[0]
    outputs = list(model.outputs)
    teacher_logits = FrozenTeacher(teacher, name="teacher")(image)
    pair = keras.layers.Concatenate(axis=-1, dtype="float32", name=DISTILL)(
        [outputs[0], teacher_logits]
    )
    student = keras.Model(image, [*outputs, pair], name=model.name)
    outputs = (*anatomy.outputs, (DISTILL, DISTILL))
    set_anatomy(student, dataclasses.replace(anatomy, outputs=outputs))
    return student
