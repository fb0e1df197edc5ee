"""Training pipeline for the instance task: images, semantic labels and instance-centre targets.

``make_instance_train_dataset`` is ``tfseg.data.make_train_dataset`` plus the instanceIds map of every
example, augmented with the same random scale, crop and flip (the same element seed drives both
``augment`` calls; nearest sampling keeps the ids exact, padding gets id 0 = unlabeled). Centres are
computed *after* augmentation, over the visible part of each instance, so they are in crop pixels.
Yields ``(image (B, h, w, 3), (label (B, h, w), target (B, h, w, 3)))``; ``target`` holds centre
y, x and the thing mask (see ``tfseg.instance.targets``).
"""

import numpy as np
import tensorflow as tf
from PIL import Image

from tfseg.data.core import DataError
from tfseg.data.pipeline import AUTOTUNE, _crop_pair, _make_loader, augment, seeded_batches
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


def make_instance_train_dataset(
    spec,
    split="train",
    *,
    batch_size,
    crop_size=(512, 512),
    scale_range=(0.5, 2.0),
    flip=True,
    color_jitter=True,
    seed=0,
    shuffle=True,
    thing_label_ids=THING_LABEL_IDS,
    num_parallel_calls=AUTOTUNE,
    image_scale=1.0,
    label_relaxation_kernel=0,
    static_shape=True,
    cache=False,
):
    """One epoch of augmented (image, (label, centre target)) batches; see the module docstring.

    ``image_scale`` (progressive resizing) multiplies the random scale range, as in
    ``make_train_dataset``; label relaxation is not supported (``label_relaxation_kernel`` must be
    0 or 1). ``static_shape=False`` leaves batch, height and width unknown in the element spec
    (one trace of the train step serves every progressive stage). ``cache``: decode once and keep
    the decoded images, labels and instance maps in memory (as in ``make_train_dataset``).
    """
    crop = _crop_pair(crop_size)
    if not 0 < float(scale_range[0]) <= float(scale_range[1]):
        raise DataError(f"scale_range must be (low, high) with 0 < low <= high, not {scale_range!r}")
    if int(label_relaxation_kernel or 0) > 1:
        raise DataError("the instance pipeline does not support label relaxation")
    if not float(image_scale) > 0:
        raise DataError(f"image_scale must be > 0, not {image_scale!r}")
    scale_range = (float(scale_range[0]) * image_scale, float(scale_range[1]) * image_scale)
    examples = instance_examples(spec, split)
    if len(examples) < int(batch_size):
        raise DataError(
            f"split {split!r} of {spec.name} has {len(examples)} images, fewer than "
            f"batch_size={batch_size}"
        )
    load = _make_loader(spec, examples)
    ignore = spec.ignore_label

    def decode(paths):
        image, label = load(paths[0], paths[1])
        ids = tf.numpy_function(_read_py, [paths[2]], tf.int32, stateful=False)
        ids.set_shape([None, None])
        same = tf.reduce_all(tf.equal(tf.shape(ids), tf.shape(label)))
        check = tf.debugging.Assert(
            same, [tf.strings.join(["instance map ", paths[2], " and label ", paths[1], " differ in size"])]
        )
        with tf.control_dependencies([check]):
            ids = tf.identity(ids)
        return image, label, ids

    def element(decoded, elem_seed):
        image, label, ids = decoded
        common = dict(crop_size=crop, scale_range=scale_range, flip=flip)
        x, y = augment(image, label, elem_seed, color_jitter=color_jitter, ignore_label=ignore, **common)
        # Same seed -> same scale, crop and flip; the image content is irrelevant here.
        _, ids = augment(tf.zeros_like(image), ids, elem_seed, color_jitter=False, ignore_label=0, **common)
        return x, (y, instance_targets_tf(ids, thing_label_ids))

    paths = tf.constant([[e.image, e.label, e.instance] for e in examples])
    ds = tf.data.Dataset.from_tensor_slices(paths)
    ds = seeded_batches(
        ds, decode, element, len(examples), shuffle, seed, batch_size, num_parallel_calls, cache
    )
    if not static_shape:
        ds = ds.map(_unknown_batch_shape)
    return ds.prefetch(AUTOTUNE)


def _unknown_batch_shape(image, targets):
    relax = tf.compat.v1.placeholder_with_default
    label, centres = targets
    return relax(image, [None, None, None, 3]), (
        relax(label, [None, None, None]),
        relax(centres, [None, None, None, 3]),
    )
