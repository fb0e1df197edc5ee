"""train -> resume -> evaluate (vs cityscapesscripts) -> predict on a tiny synthetic set."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfseg.config import Config, DataConfig, ModelConfig, TrainConfig

pytestmark = pytest.mark.slow

SYNTH = {"num_train": 8, "num_val": 3, "height": 64, "width": 128, "seed": 1}


def _config(tmp, epochs):
    return Config(
        model=ModelConfig(name="skipnet", encoder="mobilenet", encoder_kwargs={"alpha": 0.25}),
        data=DataConfig(
            dataset="synthetic",
            data_dir=str(tmp / "data"),
            dataset_options=SYNTH,
            crop_size=(64, 64),
            batch_size=4,
        ),
        train=TrainConfig(run_dir=str(tmp / "run"), epochs=epochs, learning_rate=1e-3, resume=True),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tfseg.training import train

    tmp = tmp_path_factory.mktemp("e2e")
    first = train(_config(tmp, epochs=1))
    second = train(_config(tmp, epochs=2))  # resumes after epoch 1
    return tmp, first, second


def test_run_dir_contents_and_metrics_schema(trained):
    tmp, _, metrics = trained
    run = tmp / "run"
    for name in ("config.json", "model.keras", "metrics.json", "checkpoints/last.keras",
                 "checkpoints/best.keras", "checkpoints/state.json"):
        assert (run / name).is_file(), name
    assert os.listdir(run / "logs")
    on_disk = json.loads((run / "metrics.json").read_text())
    assert set(on_disk["val"]) >= {"miou", "per_class_iou", "pixel_accuracy"}
    assert 0.0 <= on_disk["val"]["miou"] <= 1.0
    assert len(on_disk["val"]["per_class_iou"]) == 19
    assert [h["epoch"] for h in on_disk["history"]] == [1, 2]
    for h in on_disk["history"]:
        assert set(h) >= {"epoch", "loss", "val_miou", "seconds"}
    assert on_disk["train_seconds"] > 0 and on_disk["images_per_second"] > 0
    assert Config.from_json((run / "config.json").read_text()).train.epochs == 2
    assert not glob.glob(str(run / "**" / "*.tmp*"), recursive=True)


def test_resume_continues_epochs_and_optimizer_state(trained):
    import keras

    tmp, first, second = trained
    assert second["history"][0] == first["history"][0]
    model = keras.models.load_model(tmp / "run" / "checkpoints" / "last.keras")
    steps = SYNTH["num_train"] // 4
    assert int(model.optimizer.iterations.numpy()) == 2 * steps


def test_refuses_to_overwrite_a_run_without_resume(trained):
    import dataclasses

    from tfseg.training import TrainingError, train

    tmp, _, _ = trained
    config = _config(tmp, epochs=1)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, resume=False))
    before = (tmp / "run" / "checkpoints" / "last.keras").stat().st_mtime
    with pytest.raises(TrainingError, match="--resume"):
        train(config)
    assert (tmp / "run" / "checkpoints" / "last.keras").stat().st_mtime == before


def test_evaluation_agrees_with_cityscapesscripts(trained, tmp_path):
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as official

    from tfseg.data import get_dataset
    from tfseg.evaluation import evaluate_model
    from tfseg.models.saving import load_model

    tmp, _, _ = trained
    spec = get_dataset("synthetic", str(tmp / "data"), **SYNTH)
    model = load_model(tmp / "run" / "model.keras")
    ours = evaluate_model(model, spec, "val", save_predictions=str(tmp_path), verbose=False)
    preds, gts = [], []
    for ex in spec.examples("val"):
        preds.append(str(tmp_path / f"{ex.id}_leftImg8bit.png"))
        gts.append(ex.label)
        assert Image.open(preds[-1]).size == Image.open(ex.label).size
    official.args.quiet = True
    official.args.JSONOutput = False
    official.args.evalPixelAccuracy = True
    official.args.exportFile = str(tmp_path / "official.json")
    result = official.evaluateImgLists(preds, gts, official.args)
    assert ours["miou"] == pytest.approx(result["averageScoreClasses"], abs=1e-6)
    for name, iou in ours["per_class_iou"].items():
        theirs = result["classScores"][name]
        if iou is None:
            assert np.isnan(theirs)
        else:
            assert iou == pytest.approx(theirs, abs=1e-6)


def _run(args, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_evaluate_cli_multiscale_tiled(trained, tmp_path):
    """--scales with --max_pixels tiles the large passes (memory-bounded MS evaluation);
    a tile smaller than the model's stride squared is refused by name, with nothing written."""
    tmp, _, _ = trained
    common = ["tfseg.evaluate", f"--model_path={tmp / 'run' / 'model.keras'}",
              f"--data_dir={tmp / 'data'}", f"--dataset_options={json.dumps(SYNTH)}",
              "--scales=1.0,1.5", "--flip"]
    bad = tmp_path / "bad.json"
    proc = _run([*common, "--max_pixels=100", f"--output_json={bad}"])
    assert proc.returncode != 0 and "max_pixels" in proc.stderr and not bad.exists()
    out = tmp_path / "ms.json"
    proc = _run([*common, "--max_pixels=4096", f"--output_json={out}"])  # 96x192 at 1.5: tiled
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["num_images"] == 3 and result["scales"] == [1.0, 1.5] and result["flip"]
    assert 0.0 <= result["miou"] <= 1.0


def test_predict_writes_masks_for_any_input_size(trained, tmp_path):
    tmp, _, _ = trained
    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(images / "odd.png")
    Image.fromarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(images / "b.jpg")
    (images / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    proc = _run(["tfseg.predict", f"--model_path={tmp / 'run' / 'model.keras'}",
                 f"--input={images}", f"--output={out}"])
    # The corrupt file is reported by name and makes the exit non-zero; the others are written.
    assert proc.returncode != 0 and "broken.png" in proc.stderr
    labels = np.asarray(Image.open(out / "odd_labels.png"))
    assert labels.shape == (50, 70) and labels.max() < 19
    assert Image.open(out / "odd_overlay.png").size == (70, 50)
    assert (out / "b_color.png").is_file()


def test_bad_input_fails_before_writing(tmp_path):
    proc = _run(["tfseg.train", "--model=segnetz", f"--run_dir={tmp_path / 'run'}"])
    assert proc.returncode != 0 and "segnetz" in proc.stderr and "skipnet" in proc.stderr
    proc = _run(["tfseg.train", f"--data_dir={tmp_path / 'missing'}", "--dataset=cityscapes",
                 f"--run_dir={tmp_path / 'run'}"])
    assert proc.returncode != 0 and "missing" in proc.stderr
    assert not (tmp_path / "run").exists()
    proc = _run(["tfseg.evaluate", f"--model_path={tmp_path / 'nope.keras'}",
                 f"--data_dir={tmp_path / 'd'}"])
    assert proc.returncode != 0 and "nope.keras" in proc.stderr
