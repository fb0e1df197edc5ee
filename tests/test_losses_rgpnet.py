"""OHEM and label relaxation (RGPNet) against plain numpy references on hand-made label maps."""

import numpy as np
import pytest

from tfseg.losses import (
    OhemCrossEntropy,
    SegmentationCrossEntropy,
    border_mask,
    cross_entropy,
    make_loss,
    multi_hot_targets,
    ohem_cross_entropy,
    ohem_keep_mask,
    pixel_losses,
)

IGN = 255


def _np_log_softmax(logits):
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))


def _np_window_sets(labels, k, num_classes, ignore=IGN):
    """For each pixel: the set of valid classes in its k x k window (empty at ignore pixels)."""
    b, h, w = labels.shape
    r = k // 2
    out = np.zeros((b, h, w, num_classes), bool)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                if labels[n, y, x] == ignore:
                    continue
                win = labels[n, max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
                for c in np.unique(win):
                    if c != ignore:
                        out[n, y, x, c] = True
    return out


def _np_pixel_nll(labels, logits, k, ignore=IGN):
    logp = _np_log_softmax(logits)
    num_classes = logits.shape[-1]
    sets = _np_window_sets(labels, k if k > 1 else 1, num_classes, ignore)
    p = np.exp(logp)
    nll = -np.log(np.where(sets, p, 0).sum(-1).clip(1e-300))
    valid = labels != ignore
    return np.where(valid, nll, 0.0).reshape(-1), valid.reshape(-1)


def _np_ohem_keep(nll, valid, threshold, min_kept):
    p = np.exp(-nll)
    keep = valid & (p < threshold)
    vp = np.sort(p[valid])
    if min_kept > 0:
        cut = vp[min_kept - 1] if len(vp) >= min_kept else np.inf
        keep |= valid & (p <= cut)
    return keep


@pytest.fixture
def scene():
    """Two images 6x7, 4 classes: a vertical boundary, a small square, a stripe and ignore
    pixels."""
    lab = np.zeros((2, 6, 7), np.int32)
    lab[0, :, 4:] = 1
    lab[0, 1:3, 1:3] = 2
    lab[0, 5, :] = IGN
    lab[1] = 3
    lab[1, 2:4, :] = 0
    lab[1, 0, 0] = IGN
    logits = np.random.default_rng(3).normal(size=(2, 6, 7, 4)).astype(np.float32) * 2
    return lab, logits


def test_multi_hot_targets_and_border_match_numpy(scene):
    lab, _ = scene
    for k in (3, 5):
        got = np.asarray(multi_hot_targets(lab, 4, k, IGN)) > 0.5
        want = _np_window_sets(lab, k, 4)
        np.testing.assert_array_equal(got, want)
        border = np.asarray(border_mask(lab, 4, k, IGN))
        np.testing.assert_array_equal(border, want.sum(-1) > 1)
    # hand-checked: 3x3 border columns 3 and 4 of image 0 (rows 0..4), the square's ring, no ignore
    border = np.asarray(border_mask(lab, 4, 3, IGN))
    assert border[0, 0, 3] and border[0, 0, 4] and not border[0, 0, 5] and not border[0, 0, 6]
    assert not border[0, 5].any()  # ignore row: never a border pixel
    assert not border[0, 4, 0]  # next to the ignore row only: ignore adds no class
    assert border[1, 1].all() and border[1, 4].all() and not border[1, 5].any()


def test_relaxed_loss_matches_numpy_and_equals_ce_off_border(scene):
    lab, logits = scene
    nll, _, valid = pixel_losses(lab, logits, ignore_label=IGN, label_relaxation_kernel=3)
    want, want_valid = _np_pixel_nll(lab, logits, 3)
    np.testing.assert_allclose(np.asarray(nll), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(valid) > 0.5, want_valid)
    ce, _, _ = pixel_losses(lab, logits, ignore_label=IGN)
    inner = ~np.asarray(border_mask(lab, 4, 3, IGN)).reshape(-1)
    np.testing.assert_allclose(np.asarray(nll)[inner], np.asarray(ce)[inner], rtol=1e-5, atol=1e-6)
    # on border pixels relaxation can only lower the loss
    assert (np.asarray(nll) <= np.asarray(ce) + 1e-6).all()
    total = float(cross_entropy(lab, logits, label_relaxation_kernel=3))
    assert total == pytest.approx(want[want_valid].mean(), rel=1e-5)
    w = np.array([0.5, 2.0, 1.0, 3.0])
    weighted = float(cross_entropy(lab, logits, class_weights=w, label_relaxation_kernel=3))
    pw = np.where(want_valid, w[np.where(lab == IGN, 0, lab).reshape(-1)], 0)
    assert weighted == pytest.approx((want * pw).sum() / pw.sum(), rel=1e-5)


def test_relaxed_loss_ignores_ignore_pixels_and_off_is_plain_ce(scene):
    lab, logits = scene
    changed = logits.copy()
    changed[lab == IGN] = 1e3
    a = float(cross_entropy(lab, logits, label_relaxation_kernel=3))
    b = float(cross_entropy(lab, changed, label_relaxation_kernel=3))
    assert np.isfinite(a) and a == pytest.approx(b, rel=1e-6)
    for off in (0, 1):
        assert float(cross_entropy(lab, logits, label_relaxation_kernel=off)) == pytest.approx(
            float(cross_entropy(lab, logits)), rel=1e-6
        )


def test_resized_label_loss_is_the_loss_on_nearest_resized_labels(scene, tmp_path):
    """Auxiliary outputs at stride 2: the loss reads the label at the centre of each 2x2 block;
    the wrapper survives a Keras serialization round trip."""
    import keras

    from tfseg.losses import ResizedLabelLoss, resize_labels_nearest

    rng = np.random.default_rng(3)
    lab = rng.integers(0, 4, (2, 8, 10)).astype(np.int32)
    lab[0, :3, :3] = IGN
    small = rng.normal(size=(2, 4, 5, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(resize_labels_nearest(lab, (4, 5))), lab[:, 1::2, 1::2]
    )
    np.testing.assert_array_equal(np.asarray(resize_labels_nearest(lab, (8, 10))), lab)
    base = make_loss("ohem", ignore_label=IGN, min_kept=5, label_relaxation_kernel=3)
    want = float(base(lab[:, 1::2, 1::2], small))
    loss = ResizedLabelLoss(base)
    assert float(loss(lab, small)) == pytest.approx(want, rel=1e-6)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again.loss, OhemCrossEntropy) and again.loss.min_kept == 5
    assert float(again(lab, small)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize(
    "threshold,min_kept", [(0.6, 0), (0.6, 5), (0.3, 40), (0.05, 3), (0.6, 500)]
)
def test_ohem_keep_mask_and_loss_match_numpy(scene, threshold, min_kept):
    lab, logits = scene
    nll, valid = _np_pixel_nll(lab, logits, 1)
    keep = np.asarray(ohem_keep_mask(nll.astype(np.float32), valid.astype(np.float32),
                                     threshold=threshold, min_kept=min_kept)) > 0.5
    want = _np_ohem_keep(nll, valid, threshold, min_kept)
    np.testing.assert_array_equal(keep, want)
    assert not keep[~valid].any()
    assert keep.sum() >= min(min_kept, valid.sum())
    got = float(ohem_cross_entropy(lab, logits, threshold=threshold, min_kept=min_kept))
    assert got == pytest.approx(nll[want].mean(), rel=1e-5)


def test_ohem_at_least_min_kept_hardest_when_all_are_easy():
    lab = np.zeros((1, 4, 5), np.int32)
    lab[0, 0, :2] = IGN
    logits = np.zeros((1, 4, 5, 3), np.float32)
    logits[..., 0] = 10.0  # every pixel easy (p ~ 1) ...
    logits[0, 3, 4, 0] = -1.0  # ... except three of varying hardness
    logits[0, 2, 1, 0] = 0.0
    logits[0, 1, 3, 0] = 2.0
    logits[0, 0, 0, 0] = -5.0  # the hardest pixel is an ignore pixel: never kept
    nll, _ = _np_pixel_nll(lab, logits, 1)
    keep = np.asarray(ohem_keep_mask(nll.astype(np.float32),
                                     (lab != IGN).reshape(-1).astype(np.float32),
                                     threshold=0.6, min_kept=3)) > 0.5
    assert sorted(np.flatnonzero(keep)) == sorted([3 * 5 + 4, 2 * 5 + 1, 1 * 5 + 3])
    got = float(ohem_cross_entropy(lab, logits, threshold=0.6, min_kept=3))
    assert got == pytest.approx(nll[keep].mean(), rel=1e-5)
    # threshold 0.6 alone keeps the two pixels with p < 0.6 (logit -1 and 0 of three classes)
    got = float(ohem_cross_entropy(lab, logits, threshold=0.6, min_kept=0))
    assert got == pytest.approx(nll[[3 * 5 + 4, 2 * 5 + 1]].mean(), rel=1e-5)
    # fewer valid pixels than min_kept: all valid pixels, i.e. plain CE
    assert float(ohem_cross_entropy(lab, logits, min_kept=5000)) == pytest.approx(
        float(cross_entropy(lab, logits)), rel=1e-6
    )


def test_ohem_class_weights_and_gradient(scene):
    import tensorflow as tf

    lab, logits = scene
    w = np.array([0.5, 2.0, 1.0, 3.0])
    nll, valid = _np_pixel_nll(lab, logits, 1)
    keep = _np_ohem_keep(nll, valid, 0.6, 7)
    pw = w[np.where(lab == IGN, 0, lab).reshape(-1)] * keep
    got = float(ohem_cross_entropy(lab, logits, class_weights=w, min_kept=7))
    assert got == pytest.approx((nll * pw).sum() / pw.sum(), rel=1e-5)
    x = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = ohem_cross_entropy(lab, x, min_kept=7)
    g = tape.gradient(loss, x).numpy().reshape(-1, 4)
    assert np.isfinite(g).all()
    assert np.abs(g[~keep]).max() == 0 and np.abs(g[keep]).max() > 0


def test_loss_objects_registry_and_config_round_trip(scene):
    lab, logits = scene
    loss = make_loss(
        "ohem", class_weights=[1, 2, 3, 4], threshold=0.7, min_kept=11, label_relaxation_kernel=3
    )
    assert isinstance(loss, OhemCrossEntropy)
    clone = OhemCrossEntropy.from_config(loss.get_config())
    assert (clone.threshold, clone.min_kept, clone.label_relaxation_kernel) == (0.7, 11, 3)
    assert float(clone(lab, logits)) == pytest.approx(float(loss(lab, logits)), rel=1e-6)
    ce = make_loss("ce", label_relaxation_kernel=5)
    assert SegmentationCrossEntropy.from_config(ce.get_config()).label_relaxation_kernel == 5
    old = SegmentationCrossEntropy.from_config(
        {"name": "x", "ignore_label": 255, "class_weights": None}
    )
    assert old.label_relaxation_kernel == 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"label_relaxation_kernel": 4}, "odd"),
        ({"label_relaxation_kernel": -3}, "odd"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"min_kept": -1}, "min_kept"),
    ],
)
def test_bad_loss_options_raise_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_loss("ohem", **kwargs)


def test_ohem_options_rejected_for_plain_ce():
    with pytest.raises(ValueError, match="min_kept"):
        make_loss("ce", min_kept=3)
