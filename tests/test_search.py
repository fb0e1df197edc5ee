"""``python -m tfseg.search``: the search space file, the flagfile of the best trial, and two
processes sharing one SQLite study (two short trials each: four finished trials, best.json, a
best.cfg that ``tfseg.train`` parses back to the best parameters)."""

import json
import os
import subprocess
import sys

import optuna
import pytest
from absl import flags

from tfseg import search
from tfseg import train as train_prog

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flags(argv=()):
    fv = flags.FlagValues()
    search.define_flags(fv)
    fv(["search", *argv])
    return fv


def _write(tmp_path, space):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    return str(path)


def test_default_space_file_is_the_built_in_one():
    with open(os.path.join(REPO, "configs", "search", "default.json")) as f:
        assert json.load(f) == search.DEFAULT_SPACE
    assert search.load_space(None, _flags()) == search.DEFAULT_SPACE


@pytest.mark.parametrize(
    "space,message",
    [
        ({"learning_rat": {"type": "float", "low": 0.1, "high": 1}}, "unknown search-space key"),
        ({"run_dir": {"type": "categorical", "choices": ["a"]}}, "cannot be searched"),
        ({"learning_rate": {"type": "uniform", "low": 0, "high": 1}}, "needs a 'type'"),
        ({"learning_rate": {"type": "float", "low": 1.0}}, r"missing \['high'\]"),
        ({"learning_rate": {"type": "float", "low": 1, "high": 0.1}}, "need low < high"),
        ({"flip": {"type": "categorical", "choices": []}}, "'choices' must be a list"),
    ],
)
def test_bad_search_spaces_name_the_culprit(tmp_path, space, message):
    with pytest.raises(ValueError, match=message):
        search.load_space(_write(tmp_path, space), _flags())


def test_missing_space_file():
    with pytest.raises(FileNotFoundError, match="--search_space file not found"):
        search.load_space("/nonexistent/space.json", _flags())


def test_trial_config_and_best_flagfile(tmp_path):
    fv = _flags(["--flagfile=configs/quickstart.cfg", "--epochs=3"])
    before = (fv.optimizer, fv.learning_rate, fv.run_dir, fv["learning_rate"].present)
    space = search.load_space(None, fv)
    values = search.suggest(optuna.trial.FixedTrial({
        "optimizer": "sgd", "learning_rate": 0.02, "ema_decay": 0.999, "min_scale": 0.5,
        "max_scale": 1.5, "color_jitter": False, "flip": True,
    }), space)
    config = search.trial_config(fv, values, str(tmp_path / "trial_0000"))
    assert (config.train.optimizer, config.train.learning_rate) == ("sgd", 0.02)
    assert config.train.ema_decay == 0.999 and not config.data.color_jitter
    assert config.train.epochs == 3 and config.train.run_dir.endswith("trial_0000")
    # the base flags are restored after the trial
    assert (fv.optimizer, fv.learning_rate, fv.run_dir, fv["learning_rate"].present) == before
    cfg = tmp_path / "best.cfg"
    cfg.write_text(search.flagfile_text(fv, values, str(tmp_path / "best_run")))
    back = flags.FlagValues()
    train_prog.define_flags(back)
    back(["train", f"--flagfile={cfg}"])
    again = train_prog.config_from_flags(back)
    assert again.train.optimizer == "sgd" and again.train.learning_rate == 0.02
    assert again.data == config.data and again.model == config.model
    assert again.train.run_dir == str(tmp_path / "best_run")


SYNTH = {"num_train": 4, "num_val": 1, "height": 64, "width": 64, "seed": 4}


@pytest.mark.slow
def test_two_processes_share_one_study(tmp_path):
    from tfseg.data import get_dataset

    get_dataset("synthetic", str(tmp_path / "data"), **SYNTH)
    space = _write(tmp_path, {
        "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    })
    base = tmp_path / "base.cfg"
    base.write_text("\n".join([
        "--model=skipnet", "--encoder=mobilenet", '--encoder_kwargs={"alpha": 0.25}',
        "--dataset=synthetic", f"--data_dir={tmp_path / 'data'}",
        f"--dataset_options={json.dumps(SYNTH)}", "--crop_size=64x64", "--batch_size=2",
        "--epochs=2", "--steps_per_epoch=1", "--nocolor_jitter",
    ]) + "\n")
    study_dir = tmp_path / "study"
    command = [sys.executable, "-m", "tfseg.search", f"--flagfile={base}",
               f"--search_space={space}", "--study=two", f"--study_dir={study_dir}",
               "--trials=2", "--search_seed=0"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFSEG_QUIET="1")
    procs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, out[-4000:]
    study = optuna.load_study(study_name="two", storage=f"sqlite:///{study_dir / 'study.db'}")
    states = [t.state for t in study.trials]
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert len(states) == 4 and all(s in finished for s in states), states
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)
    best = json.loads((study_dir / "best.json").read_text())
    assert best["best_trial"] == study.best_trial.number and best["params"] == study.best_params
    assert sum(best["trials"].values()) == 4
    for t in study.trials:
        assert (study_dir / f"trial_{t.number:04d}" / "metrics.json").is_file()
    back = flags.FlagValues()
    train_prog.define_flags(back)
    back(["train", f"--flagfile={study_dir / 'best.cfg'}"])
    assert back.learning_rate == pytest.approx(study.best_params["learning_rate"])
    assert back.optimizer == study.best_params["optimizer"]
