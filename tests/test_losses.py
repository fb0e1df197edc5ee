import numpy as np
import pytest

from tfseg.losses import SegmentationCrossEntropy, cross_entropy, make_loss


def _np_ce(labels, logits, ignore=255, weights=None):
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    valid = labels != ignore
    lab = np.where(valid, labels, 0)
    nll = -np.take_along_axis(logp, lab[..., None], -1)[..., 0]
    w = np.ones_like(nll) if weights is None else np.asarray(weights)[lab]
    w = w * valid
    return (nll * w).sum() / w.sum()


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7, 4)).astype("float32")
    labels = rng.integers(0, 4, size=(2, 5, 7)).astype("int32")
    labels[0, :2] = 255
    labels[1, 3, 1:5] = 255
    return labels, logits


def test_ce_matches_numpy(batch):
    labels, logits = batch
    np.testing.assert_allclose(
        float(cross_entropy(labels, logits)), _np_ce(labels, logits), rtol=1e-5
    )


def test_ignore_pixels_contribute_nothing(batch):
    labels, logits = batch
    changed = logits.copy()
    changed[labels == 255] = 1e3 * np.random.default_rng(1).normal(
        size=changed[labels == 255].shape
    )
    assert float(cross_entropy(labels, logits)) == pytest.approx(
        float(cross_entropy(labels, changed)), rel=1e-6
    )


def test_weighted_ce_matches_numpy(batch):
    labels, logits = batch
    w = [0.5, 2.0, 1.0, 4.0]
    got = float(cross_entropy(labels, logits, class_weights=w))
    np.testing.assert_allclose(got, _np_ce(labels, logits, weights=w), rtol=1e-5)


def test_uniform_weights_equal_plain_ce(batch):
    labels, logits = batch
    assert float(cross_entropy(labels, logits, class_weights=[3.0] * 4)) == pytest.approx(
        float(cross_entropy(labels, logits)), rel=1e-6
    )


def test_all_ignored_is_zero_not_nan():
    labels = np.full((1, 2, 2), 255, "int32")
    logits = np.zeros((1, 2, 2, 3), "float32")
    assert float(cross_entropy(labels, logits)) == 0.0


def test_keras_loss_wrapper_and_config(batch):
    labels, logits = batch
    loss = make_loss("weighted_ce", class_weights=[1, 2, 3, 4])
    assert float(loss(labels, logits)) == pytest.approx(
        _np_ce(labels, logits, weights=[1, 2, 3, 4]), rel=1e-5
    )
    clone = SegmentationCrossEntropy.from_config(loss.get_config())
    assert clone.class_weights == [1.0, 2.0, 3.0, 4.0]


def test_weighted_ce_needs_weights_and_unknown_loss_lists_choices():
    with pytest.raises(ValueError, match="class weights"):
        make_loss("weighted_ce")
    with pytest.raises(KeyError, match="choose one of"):
        make_loss("focal_typo")
