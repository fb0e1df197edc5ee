"""``train(config) -> metrics``: the training run as a sequence of named steps.

1. ``prepare``: the task, the run directory (refuse to overwrite, or resume), the dataset, class
   weights, steps per epoch and the progressive stage plan; nothing is written yet.
2. ``model_and_state``: seed, then the task's model compiled with its per-output losses and the
   optimizer, or the checkpoint and state of a resumed run.
3. ``write_run_files``: ``config.json`` (and ``class_weights.json``).
4. ``fit_stages``: one ``fit`` per progressive stage, validating and checkpointing every epoch.
5. ``finalize``: ``model.keras`` and ``metrics.json``.
"""

import dataclasses

import keras

from tfseg.config import Config
from tfseg.training.data import class_weights, steps_per_epoch, training_plan
from tfseg.training.finalize import finalize
from tfseg.training.model import build_from_config, load_checkpoint
from tfseg.training.optimizer import compile_model
from tfseg.training.run_dir import RunPaths, check_run_dir, load_state, new_state, write_run_files
from tfseg.training.stages import fit_stages, print_plan


@dataclasses.dataclass
class Run:
    """What the steps of a run share once ``prepare`` has checked the configuration."""

    config: Config
    task: object
    paths: RunPaths
    resuming: bool
    spec: object
    class_weights: object
    auto_weights: object
    num_train: int
    steps: int
    plans: list


def train(config: Config):
    """Train as described by ``config``; returns the metrics dict also written to metrics.json."""
    run = prepare(config)
    model, state = model_and_state(run)
    write_run_files(run.paths, config, run.auto_weights)
    print_plan(model, run.spec, run.num_train, run.steps, run.plans)
    fit_stages(model, run.task, config, run.spec, run.plans, run.paths, state)
    return finalize(run.task, config, run.spec, run.paths, state)


def prepare(config):
    """Validate everything before anything is written to the run directory: a ``Run``."""
    from tfseg.data import get_dataset
    from tfseg.tasks import get_task

    task = get_task(config.task)
    task.check_config(config)
    paths = RunPaths(config.train.run_dir)
    resuming = check_run_dir(paths, config.train.resume)
    dc = config.data
    spec = get_dataset(dc.dataset, dc.data_dir, **dc.dataset_options)
    weights, auto_weights = class_weights(config, spec)
    num_train = len(spec.examples(dc.train_split))
    steps = steps_per_epoch(config, num_train)
    plans = training_plan(config, steps)
    return Run(config, task, paths, resuming, spec, weights, auto_weights, num_train, steps, plans)


def model_and_state(run):
    """Seed the run; then the resumed checkpoint and its state, or a new compiled model."""
    keras.utils.set_random_seed(run.config.train.seed)
    if run.resuming:
        state = load_state(run.paths, run.config)
        model = load_checkpoint(run.paths.last)
    else:
        model = build_from_config(run.config, run.task, run.spec.num_classes)
        total = sum(p.epochs * p.steps_per_epoch for p in run.plans)
        compile_model(model, run.task, run.config, run.spec, run.class_weights, total)
        state = new_state()
    state["config"] = run.config.to_dict()
    return model, state
