"""Hyper-parameter search with Optuna:
``python -m tfseg.search --flagfile=BASE.cfg --search_space=SPACE.json --study=NAME [--trials=N]``.

Every trial is a normal ``tfseg.train`` run of the base flags (a flagfile and any ``tfseg.train``
flag on the command line) with the trial's sampled values, in its own run directory
``STUDY_DIR/trial_NNNN``. The val mIoU of each validation is reported to Optuna, which prunes an
unpromising trial (``--pruner=median``, Optuna's default ``MedianPruner``); the trial's value is the
val mIoU of its best epoch (``metrics.json``).

The study lives in ``--storage`` (any URL Optuna accepts; default the SQLite file
``STUDY_DIR/study.db``, ``STUDY_DIR`` = ``--study_dir``, default ``runs/search/NAME``), so several
processes or machines can work on one study: start the same command on each. Trials send a
heartbeat; a process that is killed leaves its trial running until the next process notices the
stale heartbeat (after two ``--heartbeat_seconds``) and marks it failed, and Optuna then re-queues
its parameters once. Restarting the same command continues the study: ``--trials`` counts the trials
this process runs.

After each trial the study directory gets ``best.json`` (the best trial's number, value and
parameters, and the trial counts by state) and ``best.cfg``, a flagfile that reproduces the best
trial with ``python -m tfseg.train --flagfile=STUDY_DIR/best.cfg``.

The search space is a JSON object mapping ``tfseg.train`` flag names to distributions (docs in
``docs/training.md``, "Hyper-parameter search")::

    {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": true},
     "optimizer": {"type": "categorical", "choices": ["sgd", "adam", "adamw"]},
     "epochs": {"type": "int", "low": 2, "high": 8, "step": 2}}

Without ``--search_space`` the default space (``DEFAULT_SPACE``, also in
``configs/search/default.json``) covers what the reference zoo searches.
"""

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
#: What the reference zoo searches (``../shared/reference/zoo_peer_features.md``), on tfseg's flags:
#: its scale range [1 - U(0.1, 0.8), 1 + U(0.25, 1.5)] as min/max_scale, its use_ema as an EMA with
#: decay 0.999 or none, its per-channel jitter strengths as colour jitter on or off, its flip
#: probability as flip on or off. ``configs/search/default.json`` holds the same space as a file.
DEFAULT_SPACE = {
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam", "adamw"]},
    "learning_rate": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
    "ema_decay": {"type": "categorical", "choices": [0.0, 0.999]},
    "min_scale": {"type": "float", "low": 0.2, "high": 0.9},
    "max_scale": {"type": "float", "low": 1.25, "high": 2.5},
    "color_jitter": {"type": "categorical", "choices": [True, False]},
    "flip": {"type": "categorical", "choices": [True, False]},
}
KINDS = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}
OPTIONAL = {"float": ("log", "step"), "int": ("log", "step"), "categorical": ()}
# flags a trial sets itself, or that make no sense to search
NOT_SEARCHABLE = ("run_dir", "resume", "flagfile", "data_dir", "dataset", "task", "distribute")


def define_flags(fv=FLAGS):
    """The training flags plus the search's own."""
    from tfseg import train as train_prog

    train_prog.define_flags(fv)
    flags.DEFINE_string("study", None, "Name of the Optuna study.", flag_values=fv)
    flags.DEFINE_string(
        "study_dir", None, "Folder of the study (trial run directories, best.json, best.cfg); "
        "default runs/search/<study>.", flag_values=fv,
    )
    flags.DEFINE_string(
        "storage", None, "Optuna storage URL shared by every process of the study; default "
        "sqlite:///<study_dir>/study.db.", flag_values=fv,
    )
    flags.DEFINE_string(
        "search_space", None, "JSON search space (default: the reference zoo's, "
        "configs/search/default.json).",
        flag_values=fv,
    )
    flags.DEFINE_integer("trials", 10, "Trials this process runs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_enum(
        "pruner", "median", ["median", "none"], "Pruning of unpromising trials.", flag_values=fv
    )
    flags.DEFINE_integer(
        "heartbeat_seconds", 10, "Heartbeat of running trials; a trial silent for twice this is "
        "marked failed (its process was killed).", lower_bound=1, flag_values=fv,
    )
    flags.DEFINE_integer(
        "search_seed", None, "Seed of the sampler (default: random).", flag_values=fv
    )


def load_space(path, fv):
    """The search space in JSON file ``path`` (``None``: ``DEFAULT_SPACE``), checked against the
    training flags ``fv``: an error names an unknown key, a flag that cannot be searched, or a
    malformed distribution."""
    if path is None:
        space, path = DEFAULT_SPACE, "the default space"
    else:
        try:
            with open(path) as f:
                space = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"--search_space file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"--search_space {path} is not valid JSON: {e}") from None
    if not isinstance(space, dict) or not space:
        raise ValueError(f"--search_space {path} must be a non-empty JSON object")
    train_flags = _train_flag_names(fv)
    for key, spec in space.items():
        if key not in train_flags:
            raise ValueError(
                f"unknown search-space key {key!r} in {path}: keys are tfseg.train flags, e.g. "
                f"learning_rate, optimizer, weight_decay, min_scale"
            )
        if key in NOT_SEARCHABLE:
            raise ValueError(f"search-space key {key!r} in {path} cannot be searched")
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            raise ValueError(
                f"search-space key {key!r} in {path} needs a 'type' of {', '.join(KINDS)}"
            )
        kind = spec["type"]
        missing = [k for k in KINDS[kind] if k not in spec]
        extra = sorted(set(spec) - {"type", *KINDS[kind], *OPTIONAL[kind]})
        if missing or extra:
            raise ValueError(
                f"search-space key {key!r} ({kind}) in {path}: missing {missing}, unknown {extra}"
            )
        if kind == "categorical" and (not isinstance(spec["choices"], list) or not spec["choices"]):
            raise ValueError(f"search-space key {key!r} in {path}: 'choices' must be a list")
        if kind != "categorical" and not spec["low"] < spec["high"]:
            raise ValueError(f"search-space key {key!r} in {path}: need low < high")
    return space


def _train_flag_names(fv):
    from tfseg import train as train_prog

    probe = flags.FlagValues()
    train_prog.define_flags(probe)
    return set(probe)


def suggest(trial, space):
    """The trial's value of every key of ``space``."""
    values = {}
    for key, spec in space.items():
        if spec["type"] == "float":
            values[key] = trial.suggest_float(
                key, spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step")
            )
        elif spec["type"] == "int":
            values[key] = trial.suggest_int(
                key, spec["low"], spec["high"], log=spec.get("log", False),
                step=spec.get("step", 1),
            )
        else:
            values[key] = trial.suggest_categorical(key, spec["choices"])
    return values


class _Overrides:
    """Flag values set for one trial, restored afterwards (the base stays intact)."""

    def __init__(self, fv, values):
        self.fv = fv
        self.values = values
        self.saved = {}

    def __enter__(self):
        for key, value in self.values.items():
            self.saved[key] = (self.fv[key].value, self.fv[key].present)
            self.fv[key].value = value
            self.fv[key].present = 1
        return self.fv

    def __exit__(self, *exc):
        for key, (value, present) in self.saved.items():
            self.fv[key].value = value
            self.fv[key].present = present


def trial_config(fv, values, run_dir):
    """The ``Config`` of a trial: the base flags with ``values`` and its own run directory."""
    from tfseg import train as train_prog

    with _Overrides(fv, {**values, "run_dir": run_dir, "resume": False}):
        return train_prog.config_from_flags(fv)


def flagfile_text(fv, values, run_dir):
    """A flagfile reproducing the base flags with ``values`` (``best.cfg``)."""
    names = sorted(_train_flag_names(fv) - {"flagfile"})
    lines = ["# written by tfseg.search: the best trial; run with", "#   python -m tfseg.train "
             f"--flagfile={os.path.join(os.path.dirname(run_dir), 'best.cfg')}"]
    with _Overrides(fv, {**values, "run_dir": run_dir, "resume": False}):
        for name in names:
            if fv[name].present:
                lines.append(fv[name].serialize())
    return "\n".join(lines) + "\n"


def write_best(study, fv, study_dir):
    """``best.json`` and ``best.cfg`` of the study (``best.cfg`` once a trial has finished)."""
    import optuna

    from tfseg.files import atomic_path, write_json_atomic

    counts = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    record = {"study": study.study_name, "trials": counts}
    complete = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        record.update(best_trial=best.number, value=best.value, params=best.params)
        text = flagfile_text(fv, best.params, os.path.join(study_dir, "best_run"))
        with atomic_path(os.path.join(study_dir, "best.cfg")) as tmp, open(tmp, "w") as f:
            f.write(text)
    write_json_atomic(os.path.join(study_dir, "best.json"), record)
    return record


def make_study(fv, study_dir):
    """The study (created or loaded) with heartbeat storage, sampler and pruner."""
    import optuna
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    url = fv.storage or f"sqlite:///{os.path.abspath(os.path.join(study_dir, 'study.db'))}"
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        import time

        for attempt in range(6):  # processes started together race to create the schema
            try:
                storage = RDBStorage(
                    url,
                    heartbeat_interval=fv.heartbeat_seconds,
                    grace_period=2 * fv.heartbeat_seconds,
                    failed_trial_callback=RetryFailedTrialCallback(max_retry=1),
                )
                break
            except Exception:  # e.g. "table already exists" from the other process
                if attempt == 5:
                    raise
                time.sleep(1.0 + attempt)
    else:
        storage = url  # e.g. a journal file or gRPC storage URL: Optuna resolves it
    pruner = optuna.pruners.MedianPruner() if fv.pruner == "median" else optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=fv.study,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=fv.search_seed),
        pruner=pruner,
    )


def objective(fv, space, study_dir):
    """The Optuna objective: one training run, reporting each validation."""
    import optuna

    from tfseg.training import Hooks, train

    def run(trial):
        values = suggest(trial, space)
        run_dir = os.path.join(study_dir, f"trial_{trial.number:04d}")
        config = trial_config(fv, values, run_dir)
        print(f"trial {trial.number}: {json.dumps(values)} -> {run_dir}", flush=True)

        def report(epoch, miou):
            trial.report(miou, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} (val mIoU {miou:.4f})")

        metrics = train(config, Hooks(on_validation=report))
        return metrics["val"]["miou"]

    return run


def search(fv):
    """Run ``--trials`` trials of the study; returns the ``best.json`` record."""
    import gc

    import optuna

    if not fv.study:
        raise ValueError("--study is required (the name of the Optuna study)")
    study_dir = fv.study_dir or os.path.join("runs", "search", fv.study)
    space = load_space(fv.search_space, fv)
    from tfseg import train as train_prog

    train_prog.config_from_flags(fv)  # the base flags are valid before any trial starts
    os.makedirs(study_dir, exist_ok=True)
    study = make_study(fv, study_dir)
    study.optimize(
        objective(fv, space, study_dir),
        n_trials=fv.trials,
        callbacks=[lambda s, _: write_best(s, fv, study_dir)],
        gc_after_trial=True,
        catch=(ValueError,),  # a sampled combination the flags refuse fails that trial only
    )
    gc.collect()
    record = write_best(study, fv, study_dir)
    optuna.logging.get_logger("optuna").info("best: %s", json.dumps(record))
    print(json.dumps(record, indent=2))
    return record


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfseg.training import TrainingError

    try:
        search(FLAGS)
    except (ValueError, FileNotFoundError, KeyError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
