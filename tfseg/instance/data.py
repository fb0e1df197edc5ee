"""Training pipeline for the instance task: images, semantic labels and instance-centre targets.

``make_instance_train_dataset`` is ``tfseg.data.make_train_dataset`` with one ``ExtraTarget``: the
instanceIds map of every example, augmented with the label (same random scale, crop and flip;
nearest sampling keeps the ids exact, padding gets id 0 = unlabeled). Centres are computed *after*
augmentation, over the visible part of each instance, so they are in crop pixels. Yields
``(image (B, h, w, 3), (label (B, h, w), target (B, h, w, 3)))``; ``target`` holds centre y, x and
the thing mask (see ``tfseg.instance.targets``).
"""

import numpy as np
import tensorflow as tf
from PIL import Image

from tfseg.data.core import DataError
from tfseg.data.pipeline import ExtraTarget, make_train_dataset
from tfseg.instance.targets import THING_LABEL_IDS, instance_targets_tf


def read_instance_ids(path):
    """int32 (H, W) instanceIds map of a Cityscapes-format ``*_instanceIds.png`` (8/16/32-bit)."""
    try:
        with Image.open(path) as im:
            ids = np.asarray(im)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read instance map {path}: {e}") from None
    if ids.ndim != 2:
        raise DataError(f"instance map {path} must be single-channel, got shape {ids.shape}")
    return ids.astype(np.int32)


def instance_examples(spec, split):
    """``spec.examples(split)``, checked to have an instanceIds file each."""
    examples = spec.examples(split)
    missing = [e for e in examples if not e.instance]
    if missing:
        raise DataError(
            f"the instance task needs *_instanceIds.png ground truth; {len(missing)} of "
            f"{len(examples)} images of {spec.name}/{split} have none (first: {missing[0].image})"
        )
    return examples


def _read_py(path):
    return read_instance_ids(path.decode() if isinstance(path, bytes) else str(path))


def _read_ids_tf(path):
    """tf.data side of ``read_instance_ids``: int32 (H, W)."""
    ids = tf.numpy_function(_read_py, [path], tf.int32, stateful=False)
    ids.set_shape([None, None])
    return ids


def instance_centre_target(thing_label_ids=THING_LABEL_IDS):
    """The ``ExtraTarget`` of the instance task: instanceIds map -> centre targets (h, w, 3)."""
    return ExtraTarget(
        name="instance map",
        path=lambda example: example.instance,
        read=_read_ids_tf,
        fill=0,
        target=lambda ids: instance_targets_tf(ids, thing_label_ids),
    )


def make_instance_train_dataset(spec, split="train", *, thing_label_ids=THING_LABEL_IDS, **kwargs):
    """One epoch of augmented ``(image, (label, centre target))`` batches; see the module docstring.

    ``kwargs`` are those of ``tfseg.data.make_train_dataset`` (batch size, crop, scale range,
    flip, colour jitter, seed, progressive ``image_scale``, ``static_shape``, ``cache``).
    """
    instance_examples(spec, split)
    target = instance_centre_target(thing_label_ids)
    return make_train_dataset(spec, split, extra_targets=(target,), **kwargs)
