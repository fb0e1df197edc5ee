"""Instance module: targets, iterative sampling, loss, post-processing, AP vs cityscapesscripts."""

import numpy as np
import pytest
from PIL import Image

from tfseg.instance.evaluation import evaluate_files, write_cityscapes_predictions
from tfseg.instance.module import (
    InstanceSampling,
    InstanceUpsample,
    instance_loss,
    iterative_sampling,
)
from tfseg.instance.postprocess import centres_to_instances
from tfseg.instance.targets import instance_targets, instance_targets_tf
from tfseg.layers.sampler import pixel_grid

CAR, PERSON, RIDER, BICYCLE, TRUCK = 26, 24, 25, 33, 27  # Cityscapes labelIds


def test_centre_targets_from_hand_made_instance_map():
    ids = np.full((6, 8), 7, np.int32)  # road
    ids[0:2, 0:3] = CAR * 1000 + 0  # rows 0-1, cols 0-2: centre (0.5, 1)
    ids[3:6, 6] = PERSON * 1000 + 2  # rows 3-5, col 6: centre (4, 6)
    ids[5, 0:2] = CAR  # a car group (< 1000): no instance, no target
    ids[2, 5:8] = 29 * 1000 + 1  # caravan instance: not an evaluated thing class
    centres, mask = instance_targets(ids)
    expected = np.zeros((6, 8), bool)
    expected[0:2, 0:3] = True
    expected[3:6, 6] = True
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_allclose(centres[0, 0], [0.5, 1.0])
    np.testing.assert_allclose(centres[1, 2], [0.5, 1.0])
    np.testing.assert_allclose(centres[4, 6], [4.0, 6.0])
    assert not centres[~mask].any()
    tf_target = np.asarray(instance_targets_tf(ids))
    np.testing.assert_allclose(tf_target[..., :2], centres, atol=1e-6)
    np.testing.assert_array_equal(tf_target[..., 2] > 0, mask)
    with pytest.raises(ValueError, match="2-D"):
        instance_targets(ids[None])


def test_zero_offsets_return_the_grid_and_a_converging_field_reaches_the_centre():
    import keras

    grid = pixel_grid(1, 5, 9)
    out = iterative_sampling(grid, keras.ops.zeros((1, 5, 9, 2)), iterations=7)
    np.testing.assert_allclose(np.asarray(out), np.asarray(grid), atol=1e-6)
    # offsets that point one pixel towards column 4 on every row: after 4 steps all pixels hold x=4
    dx = np.sign(4 - np.arange(9)).astype(np.float32)
    offsets = np.zeros((1, 5, 9, 2), np.float32)
    offsets[..., 1] = dx
    for t, spread in ((2, {2, 3, 4, 5, 6}), (4, set(range(9)))):
        x = np.asarray(iterative_sampling(grid, offsets, iterations=t))[0, 2, :, 1]
        assert {i for i in range(9) if x[i] == 4.0} == spread, (t, x)
    with pytest.raises(ValueError, match="iterations"):
        iterative_sampling(grid, offsets, iterations=0)


def test_gradient_reaches_the_guidance_table_through_every_step_but_not_the_grid():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    grid = tf.Variable(np.asarray(pixel_grid(2, 6, 7)))
    offsets = tf.Variable(rng.uniform(-0.8, 0.8, (2, 6, 7, 2)).astype(np.float32))
    weights = tf.constant(rng.normal(size=(2, 6, 7, 2)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        out = iterative_sampling(grid, offsets, iterations=10)
        loss = tf.reduce_sum(out * weights)
    g_off, g_grid = tape.gradient(loss, [offsets, grid])
    assert g_grid is None
    g = np.asarray(g_off)
    assert np.isfinite(g).all() and np.count_nonzero(g) > g.size // 2
    # finite-difference check of one table entry through the 10 steps
    eps = 1e-3
    idx = (0, 3, 3, 1)
    plus, minus = offsets.numpy(), offsets.numpy()
    plus[idx] += eps
    minus[idx] -= eps
    f = lambda o: float(tf.reduce_sum(iterative_sampling(grid, o, iterations=10) * weights))  # noqa: E731
    assert g[idx] == pytest.approx((f(plus) - f(minus)) / (2 * eps), rel=2e-2, abs=2e-3)


def test_layers_convert_to_input_pixels_and_switch_upsampling_mode():
    import keras

    layer = InstanceSampling(iterations=3, stride=4)
    out = np.asarray(layer(keras.ops.zeros((1, 2, 3, 2))))
    np.testing.assert_allclose(out[0, 1, 2], [4 * 1.5 - 0.5, 4 * 2.5 - 0.5])
    assert InstanceSampling.from_config(layer.get_config()).iterations == 3
    src = np.arange(4, dtype=np.float32).reshape(1, 1, 4, 1)
    up = InstanceUpsample()
    zeros = np.zeros((1, 2, 8, 2), np.float32)
    nearest = np.asarray(up([src, zeros], training=False))[0, 0, :, 0]
    bilinear = np.asarray(up([src, zeros], training=True))[0, 0, :, 0]
    np.testing.assert_array_equal(nearest, [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(bilinear, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])


@pytest.mark.parametrize("kind", ["l2", "l1", "smooth_l1"])
def test_instance_losses_against_numpy(kind):
    rng = np.random.default_rng(1)
    true = rng.uniform(0, 50, (2, 4, 5, 2)).astype(np.float32)
    mask = rng.uniform(size=(2, 4, 5)) < 0.5
    pred = (true + rng.normal(0, 2, true.shape)).astype(np.float32)
    y_true = np.concatenate([true, mask[..., None].astype(np.float32)], axis=-1)
    d = pred - true
    if kind == "l2":
        per = np.sqrt((d**2).sum(-1))
    elif kind == "l1":
        per = np.abs(d).sum(-1)
    else:
        a = np.abs(d)
        per = np.where(a < 1, 0.5 * a * a, a - 0.5).sum(-1)
    expected = per[mask].mean()
    assert float(instance_loss(y_true, pred, kind)) == pytest.approx(expected, rel=1e-4)
    y_true[..., 2] = 0
    assert float(instance_loss(y_true, pred, kind)) == 0.0
    with pytest.raises(ValueError, match="huber"):
        instance_loss(y_true, pred, "huber")


def test_postprocess_quantises_filters_small_instances_and_votes_the_class():
    h, w = 10, 12
    semantic = np.zeros((h, w), np.int32)  # road everywhere
    centres = np.zeros((h, w, 2), np.float32)
    # instance A: 24 pixels, centres jitter around (8, 4) (bin (2, 1)); 20 car (13) + 4 truck (14)
    # pixels
    semantic[0:4, 0:6] = 13
    semantic[0, 0:4] = 14
    centres[0:4, 0:6] = [8.0, 4.0] + np.random.default_rng(0).uniform(-0.9, 0.9, (4, 6, 2))
    # instance B: 12 person pixels with centre (7, 9)
    semantic[6:9, 8:12] = 11
    centres[6:9, 8:12] = [7.2, 8.9]
    # a 2-pixel fragment of person pixels with a far centre: dropped by min_area
    semantic[9, 0:2] = 11
    centres[9, 0:2] = [30.0, 30.0]
    # stuff pixels with a centre like A's never join an instance
    centres[5, 0:3] = [8.0, 4.0]
    probs = np.full((h, w, 19), 0.01, np.float32)
    probs[..., 13] = 0.7
    probs[..., 11] = 0.9
    probs[0, 0:4, 13] = 0.01  # the truck-labelled pixels are unsure about car
    inst_map, instances = centres_to_instances(
        centres, semantic, probabilities=probs, quantization=4.0, min_area=5
    )
    assert [(i["id"], i["train_id"], i["label_id"], i["area"]) for i in instances] == [
        (1, 13, CAR, 24),
        (2, 11, PERSON, 12),
    ]
    assert (inst_map == 1).sum() == 24 and (inst_map[0:4, 0:6] == 1).all()
    assert (inst_map[6:9, 8:12] == 2).all() and inst_map[9, 0:2].tolist() == [0, 0]
    assert inst_map[5].max() == 0
    # confidence: mean probability of the voted class (0.7 on the 20 car pixels, 0.01 on trucks)
    assert instances[0]["confidence"] == pytest.approx((20 * 0.7 + 4 * 0.01) / 24, rel=1e-5)
    assert instances[1]["confidence"] == pytest.approx(0.9, rel=1e-5)
    # without probabilities: the class purity; per_class splits the truck pixels off (4 < 5:
    # dropped)
    _, plain = centres_to_instances(centres, semantic, quantization=4.0, min_area=5)
    assert plain[0]["confidence"] == pytest.approx(20 / 24)
    _, split = centres_to_instances(centres, semantic, quantization=4.0, min_area=3, per_class=True)
    assert sorted((i["train_id"], i["area"]) for i in split) == [(11, 12), (13, 20), (14, 4)]
    with pytest.raises(ValueError, match="differ in size"):
        centres_to_instances(centres, semantic[:5])


# --------------------------------------------------------------------------------------------------
# AP against the official cityscapesscripts evaluation on a hand-made set
# --------------------------------------------------------------------------------------------------


def _box(shape, y0, y1, x0, x1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def _hand_made_set(root):
    """Three 64x128 ground truths and predictions covering TP at several IoUs, duplicates, false
    positives on background / void / groups / small instances, classes without gt or preds."""
    shape = (64, 128)
    gts, preds = [], []
    g = np.full(shape, 7, np.uint16)  # road
    g[0:8, :] = 23  # sky
    g[:, 120:] = 1  # ego vehicle: void
    g[10:30, 10:40] = CAR * 1000 + 0  # 600 px
    g[10:30, 50:70] = CAR * 1000 + 1  # 400 px
    g[40:60, 10:25] = PERSON * 1000 + 0  # 300 px
    g[40:48, 40:50] = PERSON * 1000 + 1  # 80 px: below the 100-px minimum, ignored
    g[40:60, 80:100] = CAR  # car group
    g[30:50, 100:115] = RIDER * 1000 + 0  # 300 px
    gts.append(g)
    preds.append([
        (_box(shape, 10, 30, 10, 40), CAR, 0.9),  # perfect
        (_box(shape, 12, 30, 10, 38), CAR, 0.6),  # duplicate of the same car, IoU 0.84
        (_box(shape, 10, 30, 52, 70), CAR, 0.8),  # IoU 0.9 with car 1
        (_box(shape, 40, 60, 80, 100), CAR, 0.95),  # on the group: ignored
        (_box(shape, 40, 60, 112, 128), CAR, 0.3),  # mostly on void: ignored at low thresholds
        (_box(shape, 40, 60, 10, 22), PERSON, 0.7),  # IoU 0.8
        (_box(shape, 40, 48, 40, 50), PERSON, 0.5),  # the small person: ignored
        (_box(shape, 50, 60, 30, 60), PERSON, 0.4),  # false positive on road
        (_box(shape, 32, 52, 100, 115), RIDER, 0.65),  # IoU ~0.82
        (_box(shape, 0, 5, 0, 5), TRUCK, 0.5),  # a class without ground truth
    ])
    g = np.full(shape, 7, np.uint16)
    g[5:35, 5:45] = CAR * 1000 + 3  # 1200 px
    g[5:35, 45:65] = CAR * 1000 + 4  # 600 px
    g[40:62, 60:80] = BICYCLE * 1000 + 0  # 440 px
    gts.append(g)
    preds.append([
        (_box(shape, 5, 35, 5, 40), CAR, 0.9),  # IoU 0.875
        (_box(shape, 5, 35, 40, 65), CAR, 0.9),  # straddles both: IoU 0.6 with the second (tie)
        (_box(shape, 44, 62, 60, 80), BICYCLE, 0.55),  # IoU ~0.82
        (_box(shape, 40, 62, 0, 20), BICYCLE, 0.85),  # false positive
    ])
    g = np.full(shape, 7, np.uint16)
    g[10:50, 10:50] = PERSON * 1000 + 5  # person with no prediction at all
    g[20:40, 70:100] = CAR * 1000 + 0
    gts.append(g)
    preds.append([(_box(shape, 22, 40, 70, 95), CAR, 0.2)])  # IoU 0.75
    txts, gt_files = [], []
    for i, (g, p) in enumerate(zip(gts, preds)):
        image_id = f"hand_{i:06d}_000019"
        gt_file = root / f"{image_id}_gtFine_instanceIds.png"
        Image.fromarray(g).save(gt_file)
        gt_files.append(str(gt_file))
        instances = []
        for k, (mask, label_id, conf) in enumerate(p, 1):
            # overlapping masks cannot share one id map: write each mask file directly
            instances.append({"id": k, "label_id": label_id, "confidence": conf, "mask": mask})
        txts.append(_write_preds(root / "pred", image_id, instances, shape))
    return txts, gt_files


def _write_preds(directory, image_id, instances, shape):
    directory.mkdir(exist_ok=True)
    (directory / "masks").mkdir(exist_ok=True)
    lines = []
    for inst in instances:
        rel = f"masks/{image_id}_{inst['id']:03d}.png"
        Image.fromarray(inst["mask"].astype(np.uint8) * 255).save(directory / rel)
        lines.append(f"{rel} {inst['label_id']} {inst['confidence']}\n")
    path = directory / f"{image_id}.txt"
    path.write_text("".join(lines))
    return str(path)


def test_ap_agrees_with_cityscapesscripts(tmp_path, monkeypatch):
    import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling as official

    txts, gts = _hand_made_set(tmp_path)
    ours = evaluate_files(txts, gts)
    monkeypatch.chdir(tmp_path)  # the official script writes matches.json into the working dir
    args = official.args
    monkeypatch.setattr(args, "predictionPath", str(tmp_path / "pred"))
    monkeypatch.setattr(args, "gtInstancesFile", str(tmp_path / "gtInstances.json"))
    monkeypatch.setattr(args, "JSONOutput", False)
    monkeypatch.setattr(args, "quiet", True)
    # It dumps its intermediate matches to JSON, which fails on the numpy ints of numpy 2.x
    # ("'numpy.int64' object has no attribute '__dict__'"); the scores do not depend on that file.
    monkeypatch.setattr(official, "writeDict2JSON", lambda data, path: None)
    theirs = official.evaluateImgLists(txts, gts, args)
    np.testing.assert_allclose(
        np.asarray(ours["ap_matrix"], float), np.asarray(theirs["resultApMatrix"][0], float),
        atol=1e-9,
    )
    avg = theirs["averages"]
    assert ours["ap"] == pytest.approx(avg["allAp"], abs=1e-9)
    assert ours["ap50"] == pytest.approx(avg["allAp50%"], abs=1e-9)
    for name, v in ours["per_class"].items():
        for key, theirs_key in (("ap", "ap"), ("ap50", "ap50%")):
            t = avg["classes"][name][theirs_key]
            assert (v[key] is None and np.isnan(t)) or v[key] == pytest.approx(t, abs=1e-9)
    # the set exercises every branch: a perfect class, partial APs, zero and n/a
    per = ours["per_class"]
    assert per["truck"]["ap"] is None and per["person"]["ap"] is not None
    assert 0 < ours["ap"] < ours["ap50"] < 1


def test_written_predictions_round_trip(tmp_path):
    inst_map = np.zeros((8, 8), np.int32)
    inst_map[1:4, 1:4] = 1
    inst_map[5:8, 5:8] = 2
    instances = [
        {"id": 1, "label_id": CAR, "confidence": 0.8},
        {"id": 2, "label_id": PERSON, "confidence": 0.4},
    ]
    gt = np.full((8, 8), 7, np.uint16)
    gt[1:4, 1:4] = CAR * 1000
    gt_file = tmp_path / "x_000000_000019_gtFine_instanceIds.png"
    Image.fromarray(gt).save(gt_file)
    txt = write_cityscapes_predictions(str(tmp_path / "p"), "x_000000_000019", inst_map, instances)
    result = evaluate_files([txt], [str(gt_file)])
    # the 9-pixel car is below the 100-pixel minimum: car has no gt (n/a); person only a FP
    assert result["per_class"]["car"]["ap"] is None
    assert result["per_class"]["person"]["ap"] is None


def test_cityscapes_layout_feeds_the_instance_pipeline(tmp_path):
    """``--dataset=cityscapes --task=instance`` reads ``gtFine/*_instanceIds.png``: on a tree in the
    Cityscapes layout (the synthetic generator writes one), an unaugmented batch carries the
    centre targets that numpy computes from the instanceIds files."""
    from tfseg.data import get_dataset
    from tfseg.instance.data import make_instance_train_dataset, read_instance_ids
    from tfseg.instance.targets import instance_targets

    root = str(tmp_path / "cityscapes")
    get_dataset("synthetic", root, num_train=2, num_val=1, height=64, width=128, seed=3)
    spec = get_dataset("cityscapes", root)  # the Cityscapes reader, not the synthetic one
    assert spec.name == "cityscapes"
    ds = make_instance_train_dataset(
        spec, batch_size=2, crop_size=(64, 128), scale_range=(1.0, 1.0), flip=False,
        color_jitter=False, shuffle=False,
    )  # fmt: skip
    _, (labels, targets) = next(iter(ds))
    assert targets.shape == (2, 64, 128, 3)
    for i, example in enumerate(spec.examples("train")):
        centres, mask = instance_targets(read_instance_ids(example.instance))
        assert mask.any()  # the scenes have cars and people
        np.testing.assert_array_equal(targets[i, ..., 2].numpy() > 0, mask)
        np.testing.assert_allclose(targets[i, ..., :2].numpy()[mask], centres[mask], atol=1e-3)
        assert (labels[i].numpy()[mask] != spec.ignore_label).all()
