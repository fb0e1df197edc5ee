"""Instance-centre targets from Cityscapes ``*_instanceIds.png`` maps.

Encoding (Cityscapes, also written by the synthetic set): a pixel of a *thing* class that belongs to
an annotated instance holds ``labelId * 1000 + k``; every other pixel holds its plain ``labelId``
(< 1000; for thing classes this marks a *group*, e.g. a crowd of cars, which has no instance).

Targets: every labelled thing pixel regresses the centre of its instance, the mean ``(y, x)`` of the
instance's pixels in pixel coordinates of the map (pixel centres at integers). Pixels that are not
instance pixels of a thing class get centre 0 and mask False and are left out of the loss.
"""

import numpy as np
from cityscapesscripts.helpers import labels as _cs

# Thing classes evaluated by Cityscapes (hasInstances and not ignoreInEval): person, rider, car,
# truck, bus, train, motorcycle, bicycle. Caravan and trailer have instances but are not evaluated.
THING_LABEL_IDS = tuple(
    sorted(lab.id for lab in _cs.labels if lab.hasInstances and not lab.ignoreInEval)
)
THING_TRAIN_IDS = tuple(
    sorted(lab.trainId for lab in _cs.labels if lab.hasInstances and not lab.ignoreInEval)
)
THING_NAMES = tuple(
    lab.name for lab in sorted(_cs.labels, key=lambda lab: lab.id) if lab.id in THING_LABEL_IDS
)
_TRAIN_TO_LABEL = {lab.trainId: lab.id for lab in _cs.labels if 0 <= lab.trainId < 255}


def train_id_to_label_id(train_id):
    """Cityscapes train id (0..18) -> official labelId."""
    try:
        return _TRAIN_TO_LABEL[int(train_id)]
    except KeyError:
        raise ValueError(f"{train_id} is not a Cityscapes train id (0..18)") from None


def thing_mask(instance_ids, thing_label_ids=THING_LABEL_IDS):
    """bool (H, W): pixels that belong to an instance (id >= 1000) of one of ``thing_label_ids``."""
    ids = np.asarray(instance_ids).astype(np.int64)
    return (ids >= 1000) & np.isin(ids // 1000, np.asarray(thing_label_ids, dtype=np.int64))


def instance_targets(instance_ids, thing_label_ids=THING_LABEL_IDS):
    """Centre targets of an instanceIds map.

    Args:
      instance_ids: integer array (H, W) in the Cityscapes instanceIds encoding.
      thing_label_ids: labelIds whose instances are targets (default: the 8 evaluated classes).

    Returns:
      ``(centres, mask)``: float32 (H, W, 2) holding the instance centre ``(y, x)`` of each instance
      pixel (0 elsewhere), and bool (H, W), True on instance pixels of thing classes.
    """
    ids = np.asarray(instance_ids)
    if ids.ndim != 2:
        raise ValueError(f"instance_ids must be a 2-D (H, W) map, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"instance_ids must hold integers, got dtype {ids.dtype}")
    mask = thing_mask(ids, thing_label_ids)
    centres = np.zeros(ids.shape + (2,), np.float32)
    ys, xs = np.nonzero(mask)
    if ys.size:
        _, inverse = np.unique(ids[ys, xs], return_inverse=True)
        counts = np.bincount(inverse)
        centres[ys, xs, 0] = (np.bincount(inverse, weights=ys) / counts)[inverse]
        centres[ys, xs, 1] = (np.bincount(inverse, weights=xs) / counts)[inverse]
    return centres, mask


def instance_targets_tf(instance_ids, thing_label_ids=THING_LABEL_IDS):
    """TensorFlow twin of :func:`instance_targets` for tf.data: int (H, W) -> float32 (H, W, 3).

    Channels: centre y, centre x, mask (1.0 on instance pixels of thing classes, else 0.0).
    """
    import tensorflow as tf

    ids = tf.cast(instance_ids, tf.int32)
    table = np.zeros(256, dtype=bool)
    table[list(thing_label_ids)] = True
    label = tf.clip_by_value(ids // 1000, 0, 255)
    mask = tf.logical_and(ids >= 1000, tf.gather(tf.constant(table), label))
    shape = tf.shape(ids)
    yy, xx = tf.meshgrid(
        tf.range(shape[0], dtype=tf.float32), tf.range(shape[1], dtype=tf.float32), indexing="ij"
    )
    flat = tf.reshape(tf.where(mask, ids, -1), [-1])
    uniq, index = tf.unique(flat)
    n = tf.size(uniq)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(flat, tf.float32), index, n)
    cy = tf.math.unsorted_segment_sum(tf.reshape(yy, [-1]), index, n) / counts
    cx = tf.math.unsorted_segment_sum(tf.reshape(xx, [-1]), index, n) / counts
    m = tf.cast(mask, tf.float32)
    centres = tf.stack(
        [tf.reshape(tf.gather(cy, index), shape), tf.reshape(tf.gather(cx, index), shape)], axis=-1
    )
    return tf.concat([centres * m[:, :, None], m[:, :, None]], axis=-1)
