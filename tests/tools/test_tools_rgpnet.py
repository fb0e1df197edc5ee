"""RGPNet tooling: Mapillary -> Cityscapes head transfer, entropy difference maps, MS+F inference.

The scripts under tools/ and experiments/ are loaded from their files; they import the installed
package (here the checkout's: `python -m pytest` runs from the repository root).
"""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

import tfseg
from tfseg.data.labels import CITYSCAPES_CLASS_NAMES
from tfseg.evaluation import make_predict_fn, predict_probabilities
from tfseg.models.anatomy import call_count
from tfseg.models.saving import load_model
from tfseg.models.transfer import TransferError, resolve_mapping, retarget, transfer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name, folder="tools"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, folder, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flags(tool, argv):
    fv = flags.FlagValues()
    tool.define_flags(fv)
    fv(["prog"] + argv)
    return fv


def _conv_model(num_classes, kernel=1, seed=0, bias=None, zero=False):
    """Tiny fully convolutional 'segmentation model' (logits at input size)."""
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(num_classes, kernel, padding="same", name="score")
    model = keras.Model(inputs, conv(inputs))
    rng = np.random.default_rng(seed)
    k = rng.normal(size=conv.kernel.shape).astype("float32")
    b = np.zeros(num_classes, "float32") if bias is None else np.asarray(bias, "float32")
    conv.set_weights([k * 0 if zero else k, b])
    return model


# --------------------------------------------------------------------------------------------------
# tools/transfer_head.py, tfseg/models/transfer.py
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mapillary_model(tmp_path_factory):
    """A tiny RGPNet with 65 outputs and a random classifier, saved as .keras."""
    model = tfseg.build_model(
        "rgpnet", 65, encoder="mobilenet", encoder_kwargs={"alpha": 0.25}, widths=(8, 8, 16, 16)
    )
    score = model.get_layer("rgpnet_score")
    rng = np.random.default_rng(0)
    score.set_weights([rng.normal(size=w.shape).astype("float32") for w in score.weights])
    path = str(tmp_path_factory.mktemp("th") / "mapillary.keras")
    model.save(path)
    return model, path


def test_builtin_mapping_covers_cityscapes():
    th = _tool("transfer_head")
    mapping, source, target = th.default_mapping()
    table = resolve_mapping(mapping, 65, 19, source, target)
    assert len(th.MAPILLARY_V12_CLASSES) == 65
    assert all(len(src) == 1 for src in table)  # every Cityscapes class has one Mapillary source
    names = [n for n, _ in th.MAPILLARY_V12_CLASSES]
    assert table[CITYSCAPES_CLASS_NAMES.index("road")] == [names.index("construction--flat--road")]
    assert table[CITYSCAPES_CLASS_NAMES.index("sky")] == [27]


def test_transfer_reorders_the_classifier(mapillary_model, tmp_path):
    th = _tool("transfer_head")
    source, path = mapillary_model
    out = str(tmp_path / "cityscapes.keras")
    report = th.run(_flags(th, [f"--source={path}", f"--output={out}"]))
    assert report["gathered"] == ["rgpnet_score"] and report["unmapped"] == []
    assert report["skipped"] == []
    target = load_model(out)
    assert target.outputs[0].shape[-1] == 19
    assert call_count(target, "rgpnet_f3_conv") == 2  # F still shared
    names = [n for n, _ in th.MAPILLARY_V12_CLASSES]
    order = [names.index(th.MAPILLARY_TO_CITYSCAPES[c]) for c in CITYSCAPES_CLASS_NAMES]
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype("float32")
    # 1x1 classifier + bilinear upsampling are per-class: the logits are the source's, re-ordered.
    np.testing.assert_allclose(
        np.asarray(target(x, training=False)),
        np.asarray(source(x, training=False))[..., order],
        atol=1e-5,
    )
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []  # atomic: no temp left


@pytest.fixture(scope="module")
def tiny65(tmp_path_factory):
    """A one-layer 65-class model: the classifier alone, cheap to load."""
    model = _conv_model(65, seed=4, bias=np.random.default_rng(4).normal(size=65))
    path = str(tmp_path_factory.mktemp("th65") / "tiny65.keras")
    model.save(path)
    return model, path


def test_mapping_file_lists_means_and_unmapped(tiny65, tmp_path):
    th = _tool("transfer_head")
    source, path = tiny65
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({
        "target_classes": ["flat", "rider", "nothing"],
        "mapping": {"flat": ["Road", "construction--flat--sidewalk"], "rider": 20, "nothing": None},
    }))
    out = str(tmp_path / "three.keras")
    report = th.run(_flags(th, [f"--source={path}", f"--output={out}", f"--mapping={mapping}"]))
    assert report["unmapped"] == [2]
    k_src, b_src = source.get_layer("score").get_weights()
    k, b = load_model(out).get_layer("score").get_weights()
    np.testing.assert_allclose(k[..., 0], k_src[..., [13, 15]].mean(-1), atol=1e-6)
    np.testing.assert_allclose(k[..., 1], k_src[..., 20], atol=1e-6)
    np.testing.assert_allclose(b[2], b_src.mean(), atol=1e-6)  # unmapped: mean of the sources


def _label_space_model():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(5, 1, name="score")(inputs)
    x = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same", name="up")(x)
    return keras.Model(inputs, keras.layers.Activation("linear", name="logits")(x))


def test_class_path_comes_from_the_recorded_anatomy(mapillary_model):
    """build_model records the class layers; the retargeted copy keeps them with its new class
    count; a model built outside tfseg gets the same walk over its public config."""
    from tfseg.models.anatomy import class_path, get_anatomy
    from tfseg.models.transfer import model_class_path

    rgpnet = mapillary_model[0]
    target = retarget(rgpnet, 19)
    assert model_class_path(rgpnet) == dict(get_anatomy(rgpnet).class_path)
    assert model_class_path(rgpnet) == class_path(rgpnet, int(rgpnet.outputs[0].shape[-1]))
    assert get_anatomy(target).num_classes == 19
    assert model_class_path(target) == class_path(target, 19)
    assert model_class_path(_label_space_model()) == {"logits": True, "up": True, "score": False}


def test_gather_on_label_space_layers_and_init_fill():
    """A transposed convolution over classes is gathered on both class axes; init keeps fresh
    rows."""
    source = _label_space_model()
    target = retarget(source, 3)
    assert target.get_layer("up").kernel.shape == (4, 4, 3, 3)
    fresh = target.get_layer("up").get_weights()[0].copy()
    table = [[4], [0, 1], []]
    report = transfer(source, target, table, unmapped="init")
    assert report["gathered"] == ["score", "up"]
    ks = source.get_layer("up").get_weights()[0]
    kt = target.get_layer("up").get_weights()[0]
    np.testing.assert_allclose(kt[:, :, 0, 0], ks[:, :, 4, 4], atol=1e-6)
    np.testing.assert_allclose(kt[:, :, 1, 0], ks[:, :, [0, 1], 4].mean(-1), atol=1e-6)
    np.testing.assert_array_equal(kt[:, :, 2], fresh[:, :, 2])  # unmapped output class: fresh
    np.testing.assert_array_equal(kt[:, :, :, 2], fresh[:, :, :, 2])


def test_transfer_errors_name_the_culprit(tiny65, tmp_path):
    th = _tool("transfer_head")
    _, path = tiny65
    out = f"--output={tmp_path / 'o.keras'}"

    def run(*argv):
        return th.run(_flags(th, list(argv)))

    with pytest.raises(FileNotFoundError, match="nope.keras"):
        run(f"--source={tmp_path / 'nope.keras'}", out)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TransferError, match="not valid JSON"):
        run(f"--source={path}", out, f"--mapping={bad}")
    bad.write_text('{"road": "construction--flat--rood"}')
    with pytest.raises(TransferError, match="unknown source class 'construction--flat--rood'"):
        run(f"--source={path}", out, f"--mapping={bad}")
    bad.write_text('{"roadway": 13}')
    with pytest.raises(TransferError, match="unknown target class 'roadway'"):
        run(f"--source={path}", out, f"--mapping={bad}")
    bad.write_text('{"road": 99}')
    with pytest.raises(TransferError, match="index 99 is out of range 0..64"):
        run(f"--source={path}", out, f"--mapping={bad}")
    bad.write_text('{"road": 13, "road": 14}')
    with pytest.raises(TransferError, match="lists 'road' twice"):
        run(f"--source={path}", out, f"--mapping={bad}")
    with pytest.raises(TransferError, match="must end with .keras"):
        run(f"--source={path}", f"--output={tmp_path / 'o.h5'}")
    small = _conv_model(7)
    small_path = str(tmp_path / "small.keras")
    small.save(small_path)
    with pytest.raises(TransferError, match="predicts 7 classes.*needs 65"):
        run(f"--source={small_path}", out)
    assert not os.path.exists(tmp_path / "o.keras")


def test_library_transfer_without_builtin_mapping(tiny65, tmp_path):
    """tfseg.models.transfer.transfer_head on its own: indices, no built-in class lists."""
    from tfseg.models.transfer import transfer_head

    source, path = tiny65
    out = str(tmp_path / "two.keras")
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"0": 13, "1": [19, 20]}))
    with pytest.raises(TransferError, match="no class mapping"):
        transfer_head(path, out)
    with pytest.raises(TransferError, match="number of target classes is unknown"):
        transfer_head(path, out, mapping=str(mapping))
    with pytest.raises(TransferError, match="is a name but no source class list"):
        bad = tmp_path / "names.json"
        bad.write_text(json.dumps({"0": "Road"}))
        transfer_head(path, out, mapping=str(bad), num_classes=2)
    report = transfer_head(path, out, mapping=str(mapping), num_classes=2)
    assert report["gathered"] == ["score"] and report["unmapped"] == []
    k_src = source.get_layer("score").get_weights()[0]
    k = load_model(out).get_layer("score").get_weights()[0]
    np.testing.assert_allclose(k[..., 0], k_src[..., 13], atol=1e-6)
    np.testing.assert_allclose(k[..., 1], k_src[..., [19, 20]].mean(-1), atol=1e-6)


# --------------------------------------------------------------------------------------------------
# experiments/entropy_diff.py
# --------------------------------------------------------------------------------------------------


def test_entropy_diff_maps_and_summary(tmp_path):
    ed = _tool("entropy_diff", "experiments")
    uniform = _conv_model(4, zero=True)  # softmax 1/4 everywhere: entropy log 4
    confident = _conv_model(4, zero=True, bias=[30.0, 0, 0, 0])  # entropy ~0
    paths = {}
    for name, m in (("u", uniform), ("c", confident)):
        paths[name] = str(tmp_path / f"{name}.keras")
        m.save(paths[name])
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(((40, 50), (64, 64))):  # any size: padded to the stride
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images / f"im{i}.png")
    out = tmp_path / "out"
    summary = ed.run(_flags(ed, [
        f"--model_a={paths['c']}", f"--model_b={paths['u']}", f"--input={images}",
        f"--output={out}", "--save_npy",
    ]))
    assert len(summary["images"]) == 2
    row = summary["images"][0]
    assert row["mean_entropy_b"] == pytest.approx(np.log(4), abs=1e-5)
    assert row["mean_entropy_a"] == pytest.approx(0.0, abs=1e-5)
    assert row["mean_diff"] == pytest.approx(-np.log(4), abs=1e-5)
    assert row["boundary_fraction"] == 0.0  # model A predicts class 0 everywhere
    heat = np.asarray(Image.open(out / "im0_entropy_diff.png"))
    assert heat.shape[1] == 50 and heat.shape[0] > 40  # the map plus the colour bar
    assert tuple(heat[20, 25]) == (59, 76, 192)  # fully negative: the blue end
    assert np.load(out / "im1_entropy_a.npy").shape == (64, 64)
    assert json.loads((out / "entropy_diff.json").read_text())["images"][1]["image"].endswith(
        "im1.png"
    )
    # Same model twice: no difference anywhere, white map.
    same = ed.run(_flags(ed, [
        f"--model_a={paths['u']}", f"--model_b={paths['u']}", f"--input={images / 'im1.png'}",
        f"--output={tmp_path / 'same'}", "--normalize",
    ]))
    assert same["images"][0]["mean_entropy_a"] == pytest.approx(1.0, abs=1e-5)
    assert same["images"][0]["mean_diff"] == 0.0


def test_entropy_diff_errors(tmp_path):
    ed = _tool("entropy_diff", "experiments")
    a, b = str(tmp_path / "a.keras"), str(tmp_path / "b.keras")
    _conv_model(4).save(a)
    _conv_model(5).save(b)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    img = f"--input={tmp_path / 'x.png'}"
    out = f"--output={tmp_path / 'o'}"
    with pytest.raises(ed.EntropyDiffError, match="4 classes and --model_b 5.*--normalize"):
        ed.run(_flags(ed, [f"--model_a={a}", f"--model_b={b}", img, out]))
    assert ed.run(_flags(ed, [f"--model_a={a}", f"--model_b={b}", img, out, "--normalize"]))
    with pytest.raises(ed.EntropyDiffError, match="--model_b not found: .*missing.keras"):
        ed.run(_flags(ed, [f"--model_a={a}", f"--model_b={tmp_path / 'missing.keras'}", img, out]))
    with pytest.raises(FileNotFoundError, match="no images found"):
        ed.run(_flags(ed, [
            f"--model_a={a}", f"--model_b={a}", f"--input={tmp_path / '*.jpg'}", out,
        ]))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ed.EntropyDiffError, match="cannot read image .*broken.png"):
        ed.run(_flags(ed, [
            f"--model_a={a}", f"--model_b={a}", f"--input={tmp_path / 'broken.png'}", out,
        ]))
    with pytest.raises(ed.EntropyDiffError, match="--range must be > 0"):
        ed.run(_flags(ed, [f"--model_a={a}", f"--model_b={a}", img, out, "--range=-1"]))


# --------------------------------------------------------------------------------------------------
# Multi-scale + flip inference (tfseg.evaluation.predict_probabilities)
# --------------------------------------------------------------------------------------------------


def test_single_scale_without_flip_is_the_softmax():
    model = _conv_model(5, kernel=3)
    predict = make_predict_fn(model)
    x = np.random.default_rng(0).normal(size=(1, 64, 96, 3)).astype("float32")
    probs = predict_probabilities(predict, x, scales=[1.0], flip=False)
    np.testing.assert_array_equal(np.asarray(probs), np.asarray(tf.nn.softmax(predict(x), -1)))


def test_flip_of_a_symmetric_image_averages_mirrored_probabilities():
    model = _conv_model(5, kernel=3, seed=3)  # an asymmetric kernel: p itself is not symmetric
    predict = make_predict_fn(model)
    half = np.random.default_rng(1).normal(size=(1, 32, 32, 3)).astype("float32")
    x = np.concatenate([half, half[:, :, ::-1]], axis=2)  # x == mirror(x)
    p = np.asarray(tf.nn.softmax(predict(x), -1))
    assert not np.allclose(p, p[:, :, ::-1], atol=1e-3)
    probs = np.asarray(predict_probabilities(predict, x, scales=[1.0], flip=True))
    np.testing.assert_allclose(probs, (p + p[:, :, ::-1]) / 2, atol=1e-6)
    np.testing.assert_allclose(probs, probs[:, :, ::-1], atol=1e-6)  # the average is symmetric


def test_multi_scale_is_the_mean_of_resized_softmaxes():
    model = _conv_model(3, kernel=3, seed=2)
    predict = make_predict_fn(model)
    x = np.random.default_rng(2).normal(size=(1, 64, 64, 3)).astype("float32")
    got = np.asarray(predict_probabilities(predict, x, scales=[0.5, 1.0, 1.5], flip=True))
    expected = 0
    for s in (0.5, 1.0, 1.5):
        xs = x if s == 1.0 else tf.image.resize(x, (int(64 * s), int(64 * s)))
        for flip in (False, True):
            xi = tf.reverse(xs, [2]) if flip else xs
            p = tf.nn.softmax(predict(xi), -1)
            p = tf.reverse(p, [2]) if flip else p
            expected += np.asarray(tf.image.resize(p, (64, 64)))
    np.testing.assert_allclose(got, expected / 6, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_tiled_inference_matches_whole_image_for_a_pointwise_model():
    model = _conv_model(4, kernel=1, seed=5)  # 1x1: no context, so tiles must agree exactly
    predict = make_predict_fn(model)
    x = np.random.default_rng(3).normal(size=(1, 96, 160, 3)).astype("float32")
    whole = np.asarray(predict_probabilities(predict, x, scales=[1.0, 1.5], flip=True))
    tiled = np.asarray(
        predict_probabilities(predict, x, scales=[1.0, 1.5], flip=True, max_pixels=64 * 64)
    )
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    with pytest.raises(ValueError, match="max_pixels must be at least"):
        predict_probabilities(predict, x, max_pixels=10)
    with pytest.raises(ValueError, match="scales must be positive"):
        predict_probabilities(predict, x, scales=[0.0])


def test_green_ai_table_speedups_against_theory():
    """The green-AI table divides full-size seconds by each variant's and sets the speed-up after
    the first trace against the schedule's theoretical speed-up."""
    green_ai = _tool("green_ai", "experiments")

    def run(train, after, wall, cpu, miou, switches=()):
        stages = [{"stage": 0}] + [
            {"stage": i + 1, "switch_seconds": s} for i, s in enumerate(switches)
        ]
        return {"train_seconds": train, "train_seconds_after_first_trace": after,
                "wall_seconds": wall, "cpu_seconds": cpu, "val_miou": miou, "stages": stages,
                "command": "python -m tfseg.train"}  # fmt: skip

    result = {
        "model": "skipnet+mobilenet", "epochs": 30, "schedule": "0:0.25,18:0.5,24:1.0",
        "theoretical_cost": 0.2875, "theoretical_speedup": 1 / 0.2875,
        "settings": {"height": 256, "width": 512, "num_train": 300, "num_val": 50},
        "variants": {"full": run(3000, 2900, 3100, 6000, 0.7),
                     "pr_lr": run(1000, 1000, 1200, 2000, 0.69, switches=(1.5, 2.0))},
    }  # fmt: skip
    table = green_ai._table(result)
    lines = {
        line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")
    }
    pr = [c.strip() for c in lines["PR with LR"].split("|")[1:-1]]
    assert pr[5] == "3.00x / 2.90x / 2.58x / 3.00x"
    assert pr[6] == f"{2.9 / (1 / 0.2875):.2f}"  # measured / theoretical, after the first trace
    assert pr[7] == "1.5, 2.0" and pr[8] == "69.00"
    assert "PR w/o LR" not in lines  # variants that did not run are left out
    assert "3.48x" in table.splitlines()[0]


def test_green_ai_border_fraction_on_a_two_class_label(tmp_path):
    """A label of two halves: at full size the two columns beside the edge are border pixels
    (k = 3), at half size twice the share; ignore pixels count for neither."""
    from types import SimpleNamespace

    green_ai = _tool("green_ai", "experiments")
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 7
    label[0, 0] = 99  # ignore
    path = str(tmp_path / "label.png")
    Image.fromarray(label).save(path)
    lut = np.full(256, 255, np.uint8)
    lut[0], lut[7] = 0, 1
    spec = SimpleNamespace(
        examples=lambda split: [SimpleNamespace(label=path)], lut=lut, num_classes=2,
        class_names=["left", "right"], ignore_label=255,
    )  # fmt: skip
    result = green_ai.border_fractions(spec, [1.0, 0.5], kernel=3)
    full, half = result[1.0], result[0.5]
    assert full["size"] == [8, 8] and half["size"] == [4, 4]
    # full size: columns 3 and 4 of 63 valid pixels; ignore is no class, so (1, 1) is not a border
    assert full["border"] == pytest.approx(16 / 63)
    assert full["per_class"] == {"left": pytest.approx(8 / 31), "right": pytest.approx(8 / 32)}
    # half size (nearest with half-pixel centres samples rows / columns 1, 3, 5, 7, so the ignore
    # pixel at (0, 0) drops out): columns 1 and 2 of 16
    assert half["border"] == pytest.approx(8 / 16)
    assert half["per_class"]["right"] == pytest.approx(4 / 8)
