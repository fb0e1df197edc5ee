"""--task=instance: flags -> train (multi-task) -> evaluate --task=instance -> predict overlays."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from tfseg import train as train_prog
from tfseg.config import Config

pytestmark = pytest.mark.slow

SYNTH = {"num_train": 4, "num_val": 2, "height": 64, "width": 128, "seed": 1}


def _config(tmp, *extra):
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv([
        "train", "--model=skipnet", "--encoder=mobilenet", '--encoder_kwargs={"alpha": 0.25}',
        "--dataset=synthetic", f"--data_dir={tmp / 'data'}",
        f"--dataset_options={json.dumps(SYNTH)}",
        "--crop_size=64x64", "--batch_size=2", "--epochs=1", f"--run_dir={tmp / 'run'}",
        "--task=instance", "--instance_iterations=5", "--instance_loss=smooth_l1",
        "--instance_loss_weight=0.5", "--min_instance_area=5", *extra,
    ])
    return train_prog.config_from_flags(fv)


def test_instance_flags_parse_into_the_config(tmp_path):
    config = _config(tmp_path)
    ic = config.instance
    assert config.task == "instance"
    assert ic.iterations == 5 and ic.loss == "smooth_l1" and ic.loss_weight == 0.5
    assert Config.from_json(config.to_json()) == config
    assert Config.from_dict({}).task == "semantic"
    # a config.json written before the task section (instance.enabled) still loads
    old = Config.from_dict({"instance": {"enabled": True, "iterations": 7}})
    assert old.task == "instance" and old.instance.iterations == 7
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train", "--instance_iterations=3"])
    with pytest.raises(ValueError, match="--instance_iterations need --task=instance"):
        train_prog.config_from_flags(fv)
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train", "--task=instance", "--dataset=camvid"])
    with pytest.raises(ValueError, match="instanceIds"):
        train_prog.config_from_flags(fv)


def _run(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_train_evaluate_predict(tmp_path):
    from tfseg.models.saving import load_model
    from tfseg.training import train

    metrics = train(_config(tmp_path))
    inst = metrics["val_instance"]
    assert set(inst) >= {"ap", "ap50", "per_class", "num_images", "ms_per_image"}
    assert inst["num_images"] == 2 and len(inst["per_class"]) == 8
    run = tmp_path / "run"
    model = load_model(run / "model.keras")
    assert [o.shape[-1] for o in model.outputs] == [19, 2]

    out_json = tmp_path / "ap.json"
    preds = tmp_path / "preds"
    proc = _run([
        "tfseg.evaluate", "--task=instance", f"--model_path={run / 'model.keras'}",
        f"--data_dir={tmp_path / 'data'}", f"--dataset_options={json.dumps(SYNTH)}",
        "--min_instance_area=5", f"--output_json={out_json}", f"--save_predictions={preds}",
    ])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "AP50" in proc.stdout and "mean" in proc.stdout
    result = json.loads(out_json.read_text())
    # same model, same post-processing: the program reproduces the training-time AP
    assert result["ap"] == inst["ap"] and result["ap50"] == inst["ap50"]
    assert len(list(preds.glob("*.txt"))) == 2

    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(images / "odd.png")
    proc = _run([
        "tfseg.predict", f"--model_path={run / 'model.keras'}", f"--input={images}",
        f"--output={tmp_path / 'out'}", "--min_instance_area=1",
    ])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Image.open(tmp_path / "out" / "odd_instances.png").size == (70, 50)
    ids = np.asarray(Image.open(tmp_path / "out" / "odd_instance_ids.png"))
    listed = json.loads((tmp_path / "out" / "odd_instances.json").read_text())
    assert ids.shape == (50, 70) and sorted({int(i) for i in np.unique(ids)} - {0}) == sorted(
        i["id"] for i in listed
    )
    assert (tmp_path / "out" / "odd_labels.png").is_file()

    # a semantic-only model is refused with a clear message
    proc = _run([
        "tfseg.evaluate", "--task=instance", f"--model_path={_semantic_model(tmp_path)}",
        f"--data_dir={tmp_path / 'data'}", f"--dataset_options={json.dumps(SYNTH)}",
    ])
    assert proc.returncode != 0 and "no instance head" in proc.stderr


def _semantic_model(tmp_path):
    from tfseg import build_model

    path = tmp_path / "semantic.keras"
    build_model("skipnet", 19, encoder="mobilenet", encoder_kwargs={"alpha": 0.25}).save(path)
    return path
