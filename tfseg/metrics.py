"""Streaming confusion matrix and the scores derived from it.

``ConfusionMatrix`` accumulates in numpy (memory is C x C whatever the number of images);
``MeanIoU`` is the Keras metric used for validation inside ``fit``. Classes that appear neither in
the labels nor in the predictions (union 0) have IoU NaN and are left out of the mean, as in the
Cityscapes evaluation.
"""

import keras
import numpy as np
from keras import ops


class ConfusionMatrix:
    """``matrix[t, p]`` counts pixels of true class ``t`` predicted as ``p``; ignored pixels
    skipped."""

    def __init__(self, num_classes, ignore_label=255):
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, labels, predictions):
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
        if labels.shape != predictions.shape:
            raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ")
        valid = (labels != self.ignore_label) & (labels >= 0) & (labels < self.num_classes)
        idx = labels[valid] * self.num_classes + predictions[valid]
        self.matrix += np.bincount(idx, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def merge(self, matrix):
        self.matrix += np.asarray(matrix, dtype=np.int64)

    def scores(self):
        return scores_from_confusion(self.matrix)


def scores_from_confusion(matrix):
    """Per-class IoU, mIoU, pixel accuracy and mean class accuracy from a confusion matrix."""
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    gt = m.sum(axis=1)
    pred = m.sum(axis=0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        class_acc = np.where(gt > 0, tp / gt, np.nan)
    total = m.sum()
    return {
        "per_class_iou": iou,
        "miou": float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_class_accuracy": (
            float(np.nanmean(class_acc)) if np.any(~np.isnan(class_acc)) else float("nan")
        ),
    }


def category_iou(matrix, categories):
    """IoU of groups of classes (e.g. Cityscapes categories): ``categories`` maps name -> class
    ids."""
    m = np.asarray(matrix, dtype=np.float64)
    names = list(categories)
    k = len(names)
    to_cat = np.full(m.shape[0], -1)
    for ci, name in enumerate(names):
        for c in categories[name]:
            to_cat[c] = ci
    cat = np.zeros((k, k))
    for t in range(m.shape[0]):
        for p in range(m.shape[1]):
            if to_cat[t] >= 0 and to_cat[p] >= 0:
                cat[to_cat[t], to_cat[p]] += m[t, p]
    iou = scores_from_confusion(cat)["per_class_iou"]
    return {name: float(v) for name, v in zip(names, iou)}


@keras.saving.register_keras_serializable(package="tfseg")
class MeanIoU(keras.metrics.Metric):
    """Mean IoU over classes present in labels or predictions, from logits, ignoring a label."""

    def __init__(self, num_classes, ignore_label=255, name="miou", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        self.matrix = self.add_variable(
            shape=(self.num_classes * self.num_classes,),
            initializer="zeros",
            dtype="float32",
            name="confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        pred = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,))
        valid = ops.logical_and(ops.not_equal(labels, self.ignore_label), labels < self.num_classes)
        idx = ops.where(valid, labels * self.num_classes + pred, 0)
        counts = ops.bincount(
            idx, weights=ops.cast(valid, "float32"), minlength=self.num_classes**2
        )
        self.matrix.assign_add(ops.cast(counts[: self.num_classes**2], "float32"))

    def result(self):
        m = ops.reshape(self.matrix, (self.num_classes, self.num_classes))
        tp = ops.diagonal(m)
        union = ops.sum(m, axis=0) + ops.sum(m, axis=1) - tp
        present = ops.cast(union > 0, "float32")
        iou = tp / ops.maximum(union, 1.0)
        return ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
        }
