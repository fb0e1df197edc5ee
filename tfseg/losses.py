"""Segmentation losses over logits ``(B, H, W, C)`` and integer labels ``(B, H, W)``.

Every loss ignores pixels labelled ``ignore_label`` (they contribute neither to the sum nor to the
normaliser) and returns a scalar: the (weighted) mean over the valid pixels of the batch. With class
weights the normaliser is the sum of the valid pixels' weights, as in PyTorch's
``CrossEntropyLoss(weight=..., ignore_index=...)``.
"""

import keras
from keras import ops

from tfseg.registry import Registry

LOSSES = Registry("loss")


def _flatten(y_true, y_pred, ignore_label):
    num_classes = ops.shape(y_pred)[-1]
    logits = ops.reshape(ops.cast(y_pred, "float32"), (-1, num_classes))
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    valid = ops.not_equal(labels, ignore_label)
    safe = ops.where(valid, labels, ops.zeros_like(labels))
    return logits, safe, ops.cast(valid, "float32")


def pixel_cross_entropy(y_true, y_pred, ignore_label=255):
    """Per-pixel CE (flattened) with a validity mask: returns ``(ce, labels, valid)``."""
    logits, labels, valid = _flatten(y_true, y_pred, ignore_label)
    ce = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return ce * valid, labels, valid


def cross_entropy(y_true, y_pred, *, ignore_label=255, class_weights=None):
    """Ignore-aware (optionally class-weighted) mean cross-entropy."""
    ce, labels, valid = pixel_cross_entropy(y_true, y_pred, ignore_label)
    if class_weights is not None:
        w = ops.take(ops.convert_to_tensor(class_weights, "float32"), labels) * valid
    else:
        w = valid
    return ops.sum(ce * w) / ops.maximum(ops.sum(w), 1e-6)


@keras.saving.register_keras_serializable(package="tfseg")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Keras loss wrapper of :func:`cross_entropy` (``class_weights=None`` for plain CE)."""

    def __init__(self, ignore_label=255, class_weights=None, name="cross_entropy", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        self.ignore_label = int(ignore_label)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        return cross_entropy(
            y_true, y_pred, ignore_label=self.ignore_label, class_weights=self.class_weights
        )

    def get_config(self):
        return {
            "name": self.name,
            "ignore_label": self.ignore_label,
            "class_weights": self.class_weights,
        }


LOSSES.register("ce")(SegmentationCrossEntropy)
LOSSES.register("weighted_ce")(SegmentationCrossEntropy)


def make_loss(name, *, ignore_label=255, class_weights=None, **kwargs):
    """Build a registered loss by name. ``weighted_ce`` requires ``class_weights``."""
    cls = LOSSES.get(name)
    if name == "weighted_ce" and class_weights is None:
        raise ValueError("loss 'weighted_ce' needs class weights (--class_weights=weights.json)")
    if name == "ce":
        class_weights = None
    return cls(ignore_label=ignore_label, class_weights=class_weights, **kwargs)
