"""STDC's detail head (``--heads=detail``): boundary targets and the Dice + BCE loss against numpy,
and one training step of ``stdc`` with the detail output through the semantic task."""

import keras
import numpy as np
import pytest

from tfseg.detail_loss import DetailLoss, detail_targets

LAPLACIAN = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], "float64")


def _np_laplacian(labels, stride):
    """``F.conv2d(labels, LAPLACIAN, stride=stride, padding=1)`` of (H, W) labels."""
    h, w = labels.shape
    padded = np.pad(labels.astype("float64"), 1)
    rows, cols = range(0, h, stride), range(0, w, stride)
    window = lambda i, j: padded[i : i + 3, j : j + 3]  # noqa: E731
    return np.array([[np.sum(window(i, j) * LAPLACIAN) for j in cols] for i in rows])


def _np_targets(labels, weights=(0.6, 0.3, 0.1), threshold=0.1):
    """The STDC authors' DetailAggregateLoss targets of (N, H, W) labels, H and W multiples of 4."""
    out = []
    for lab in labels:
        fused = 0.0
        for stride, weight in zip((1, 2, 4), weights):
            edges = (np.maximum(_np_laplacian(lab, stride), 0) > threshold).astype("float64")
            edges = np.kron(edges, np.ones((stride, stride)))  # nearest upsampling by ``stride``
            fused = fused + weight * edges
        out.append((fused > threshold).astype("float32"))
    return np.stack(out)


def _label_map(n=2, h=16, w=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, h, w), "int32")
    for b in range(n):  # a few rectangles of classes, one of them ignored (255)
        for value in (*rng.integers(1, 19, 3), 255):
            i, j = rng.integers(0, h - 4), rng.integers(0, w - 4)
            labels[b, i : i + rng.integers(3, 8), j : j + rng.integers(3, 8)] = value
    return labels


def test_detail_targets_match_numpy():
    labels = _label_map()
    got = np.asarray(detail_targets(labels))
    want = _np_targets(labels)
    assert got.shape == labels.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert 0 < want.mean() < 0.7  # edges exist, and not everywhere
    # (N, H, W, 1) labels give the same; a uniform map of class 0 has no detail at all
    np.testing.assert_array_equal(np.asarray(detail_targets(labels[..., None])), want)
    assert not np.asarray(detail_targets(np.zeros((1, 8, 8), "int32"))).any()


def _np_bilinear_matrix(n_in, n_out):
    """Half-pixel bilinear interpolation as an (n_out, n_in) matrix (align_corners=False)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(np.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        m[i, lo] += 1 - (src - lo)
        m[i, hi] += src - lo
    return m


def test_detail_loss_matches_numpy():
    labels = _label_map(seed=1)
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 4, 5, 1)).astype("float32") * 2  # at stride 4
    rows, cols = _np_bilinear_matrix(4, 16), _np_bilinear_matrix(5, 20)
    up = np.einsum("hi,nij,wj->nhw", rows, logits[..., 0].astype("float64"), cols)
    t = _np_targets(labels).astype("float64")
    p = 1 / (1 + np.exp(-up))
    dice = np.mean(1 - (2 * (p * t).sum((1, 2)) + 1) / (p.sum((1, 2)) + t.sum((1, 2)) + 1))
    bce = np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
    got = float(DetailLoss()(labels, logits))
    assert got == pytest.approx(dice + bce, rel=1e-5)
    weighted = DetailLoss(dice_weight=0.5, bce_weight=2.0)
    assert float(weighted(labels, logits)) == pytest.approx(0.5 * dice + 2 * bce, rel=1e-5)
    # round trip through its config (checkpoints of --heads=detail runs hold it)
    again = DetailLoss.from_config(weighted.get_config())
    assert float(again(labels, logits)) == pytest.approx(0.5 * dice + 2 * bce, rel=1e-5)


def test_stdc_trains_with_the_detail_head(tmp_path):
    """One training step of ``stdc`` with ``heads=("detail",)`` through the semantic task's
    losses (main loss + ``--detail_weight`` x DetailLoss): runs, finite loss."""
    from tfseg.config import Config, DataConfig, LossConfig, ModelConfig, TrainConfig
    from tfseg.flops import count_params
    from tfseg.tasks import get_task
    from tfseg.training.model import build_from_config

    config = Config(
        model=ModelConfig(name="stdc", encoder="stdc1", heads=("detail",)),
        data=DataConfig(dataset="synthetic", data_dir=str(tmp_path), crop_size=(64, 64)),
        train=TrainConfig(run_dir=str(tmp_path / "run"), epochs=1),
        loss=LossConfig(name="ce", detail_weight=0.5),
    )
    task = get_task("semantic")
    keras.utils.set_random_seed(0)
    model = build_from_config(config, task, 19)
    losses = task.losses(config, model, ignore_label=255)
    assert isinstance(losses[1][0], DetailLoss) and losses[1][1] == 0.5
    assert [o.shape[1:] for o in model.outputs] == [(None, None, 19), (None, None, 1)]
    # the reference's count with the detail head: its SegHead(256, 1) and detail_conv (3 weights)
    assert count_params(model) == 7_788_448 + 295_299
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=[loss for loss, _ in losses],
        loss_weights=[weight for _, weight in losses],
        run_eagerly=True,  # one step: tracing the train step would take longer than running it
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 64, 64, 3)).astype("float32")
    y = _label_map(2, 64, 64, seed=3)
    before = model.get_layer("stdc_detail_fuse").kernel.numpy().ravel()
    loss = float(np.asarray(model.train_on_batch(x, [y, y])).ravel()[0])
    assert np.isfinite(loss) and loss > 0
    # the fusion weights get a zero gradient: they stay the STDC authors' (0.6, 0.3, 0.1)
    after = model.get_layer("stdc_detail_fuse").kernel.numpy().ravel()
    np.testing.assert_allclose(before, [0.6, 0.3, 0.1])
    np.testing.assert_allclose(after, before)


def test_detail_weight_flag():
    """``--detail_weight`` reaches ``LossConfig.detail_weight``, only with ``--heads=detail``."""
    from absl import flags

    from tfseg import train as train_prog

    def config(*argv):
        fv = flags.FlagValues()
        train_prog.define_flags(fv)
        fv(["train", "--model=stdc", "--dataset=synthetic", *argv])
        return train_prog.config_from_flags(fv)

    assert config("--heads=detail", "--detail_weight=0.5").loss.detail_weight == 0.5
    assert config("--heads=detail").loss.detail_weight == 1.0
    with pytest.raises(ValueError, match="--detail_weight needs --heads=detail"):
        config("--heads=aux", "--detail_weight=0.5")
