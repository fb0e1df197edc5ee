import numpy as np

from tfseg.metrics import ConfusionMatrix, MeanIoU, category_iou, scores_from_confusion


def _np_miou(labels, preds, n, ignore=255):
    ious = []
    for c in range(n):
        v = labels != ignore
        inter = np.sum((labels == c) & (preds == c) & v)
        union = np.sum(((labels == c) | (preds == c)) & v)
        if union:
            ious.append(inter / union)
    return np.mean(ious)


def test_streaming_confusion_matches_numpy():
    rng = np.random.default_rng(0)
    n = 5
    cm = ConfusionMatrix(n)
    all_l, all_p = [], []
    for _ in range(4):
        labels = rng.integers(0, n, size=(13, 17))
        labels[rng.random(labels.shape) < 0.1] = 255
        preds = np.where(
            rng.random(labels.shape) < 0.6, labels % 255 % n, rng.integers(0, n, labels.shape)
        )
        cm.update(labels, preds)
        all_l.append(labels)
        all_p.append(preds)
    labels, preds = np.stack(all_l), np.stack(all_p)
    s = cm.scores()
    assert s["miou"] == np.float64(_np_miou(labels, preds, n))
    v = labels != 255
    assert s["pixel_accuracy"] == np.mean(labels[v] == preds[v])
    assert cm.matrix.sum() == v.sum()


def test_absent_class_is_nan_and_excluded():
    m = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 0]])
    s = scores_from_confusion(m)
    assert np.isnan(s["per_class_iou"][2])
    assert s["miou"] == np.mean([5 / 8, 7 / 10])


def test_category_iou_groups_classes():
    m = np.array([[4, 1, 0], [1, 4, 0], [0, 2, 3]])
    cats = category_iou(m, {"a": [0, 1], "b": [2]})
    assert cats["a"] == 10 / 12
    assert cats["b"] == 3 / 5


def test_keras_mean_iou_equals_numpy():
    rng = np.random.default_rng(1)
    n = 4
    labels = rng.integers(0, n, size=(2, 9, 11))
    labels[0, 0] = 255
    logits = rng.normal(size=(2, 9, 11, n)).astype("float32")
    metric = MeanIoU(n)
    metric.update_state(labels, logits)
    want = _np_miou(labels, logits.argmax(-1), n)
    assert abs(float(metric.result()) - want) < 1e-6
    metric.reset_state()
    assert float(metric.result()) == 0.0
