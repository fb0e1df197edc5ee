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

from tfseg.layers.teacher import FrozenTeacher
from tfseg.losses import KD_LOSSES, DistillationLoss

__all__ = ["DISTILL", "KD_LOSSES", "DistillationLoss", "FrozenTeacher", "attach_teacher",
           "load_teacher"]
DISTILL = "distill"  # the output name and kind


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
