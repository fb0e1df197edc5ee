"""``train(config) -> metrics``: the training run as a sequence of named steps.

1. ``prepare``: the task, the run directory (refuse to overwrite, or resume), the dataset, class
   weights, steps per epoch and the progressive stage plan; nothing is written yet.
2. ``model_and_state``: seed, then the task's model (with a distillation teacher attached, for
   ``--teacher_model``) compiled with its per-output losses and the optimizer, or the checkpoint
   and state of a resumed run.
3. ``write_run_files``: ``config.json`` (and ``class_weights.json``).
4. ``make_ema`` (with ``--ema_decay``) and ``fit_stages``: one ``fit`` per progressive stage,
   validating and checkpointing every epoch.
5. ``finalize``: ``model.keras`` and ``metrics.json``.
"""

import dataclasses

import keras

from tfseg.config import Config
from tfseg.training.data import class_weights, steps_per_epoch, training_plan
from tfseg.training.finalize import finalize
from tfseg.training.model import build_from_config, load_checkpoint
from tfseg.training.optimizer import compile_model
from tfseg.training.precision import dtype_policy
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
    teacher: object = None


@dataclasses.dataclass
class Hooks:
    """Calls into a run from the program that started it (``tfseg.search``, tests).

    Attributes:
      on_validation: ``f(epoch, val_miou)`` after each validation (the chief only; an exception
        raised there, e.g. Optuna's ``TrialPruned``, stops the run and propagates).
      on_end: ``f(model)`` on every worker when training ends, before ``model.keras`` is written.
    """

    on_validation: object = None
    on_end: object = None


def train(config: Config, hooks: Hooks = None):
    """Train as described by ``config``; returns the metrics dict also written to metrics.json
    (a worker that is not the chief writes nothing and returns ``{"chief": False, "history"}``)."""
    from tfseg.training.distribute import make_distribution

    hooks = hooks or Hooks()
    dist = make_distribution(config.train.distribute)  # before any other TF op of the process
    run = prepare(config, dist)
    with dist.scope():
        model, state = model_and_state(run)
    set_batchnorm_sync(model, config.train.sync_bn)
    ema = make_ema(run, model)
    if dist.is_chief:
        write_run_files(run.paths, config, run.auto_weights)
    print_plan(model, run.spec, run.num_train, run.steps, run.plans, dist)
    fit_stages(model, run.task, config, run.spec, run.plans, run.paths, state, ema, dist, hooks)
    if hooks.on_end:
        hooks.on_end(model)
    if not dist.is_chief:
        return {"chief": False, "history": state["history"]}
    return finalize(run.task, config, run.spec, run.paths, state)


def set_batchnorm_sync(model, sync):
    """``--sync_bn`` on or off for every BatchNorm layer (a resumed checkpoint keeps the flag it
    was saved with otherwise)."""
    from tfseg.training.distribute import synchronize_batchnorm, unsynchronize_batchnorm

    if sync:
        synchronize_batchnorm(model)
    else:
        unsynchronize_batchnorm(model)


def prepare(config, dist=None):
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
    if dist is not None:
        for p in plans:
            dist.check_batch(p.batch_size, "--batch_size" if len(plans) == 1 else "stage batch")
    teacher = None
    if config.train.teacher_model and not resuming:  # a resumed checkpoint holds its teacher
        from tfseg.training.distill import load_teacher

        crops = sorted({d for p in plans for d in p.crop_size})
        teacher = load_teacher(config.train.teacher_model, spec.num_classes, crops)
    return Run(
        config, task, paths, resuming, spec, weights, auto_weights, num_train, steps, plans, teacher
    )


def total_steps(plans):
    """Optimizer steps of the whole run (every progressive stage)."""
    return sum(p.epochs * p.steps_per_epoch for p in plans)


def make_ema(run, model):
    """The run's ``WeightEMA`` (``None`` without ``--ema_decay``), restored when resuming."""
    from tfseg.training.ema import WeightEMA

    tc = run.config.train
    if not tc.ema_decay:
        return None
    ema = WeightEMA(model, tc.ema_decay, total_steps(run.plans), ramp=tc.ema_ramp)
    if run.resuming:
        ema.load(run.paths.ema)
    return ema


def quantize_for_training(model):
    """``--qat``: the fake-quant copy of the initialised ``model`` (``tfseg.training.qat``) and
    what was quantised."""
    from tfseg.training.qat import quantize_model

    qat, info = quantize_model(model)
    print(
        f"--qat: {info['quantized_kernels']} kernels int8 per channel, "
        f"{info['activation_quantizers']} activations 8-bit, {info['frozen_batchnorms']} "
        "BatchNorm layers frozen; validation below is of the simulated int8 model"
        + (f"; left in float: {', '.join(info['unquantized_kernels'])}"
           if info["unquantized_kernels"] else "")
    )
    return qat, info


def model_and_state(run):
    """Seed the run; then the resumed checkpoint and its state, or a new compiled model."""
    keras.utils.set_random_seed(run.config.train.seed)
    if run.resuming:
        state = load_state(run.paths, run.config)
        # under the run's policy: a mixed_float16 model gets its LossScaleOptimizer back
        with dtype_policy(run.config.train.precision):
            model = load_checkpoint(run.paths.last)
    else:
        with dtype_policy(run.config.train.precision):
            model = build_from_config(run.config, run.task, run.spec.num_classes)
        qat_info = None
        if run.config.train.qat:
            model, qat_info = quantize_for_training(model)
        if run.teacher is not None:
            from tfseg.training.distill import attach_teacher

            model = attach_teacher(model, run.teacher)
        total = total_steps(run.plans)
        compile_model(model, run.task, run.config, run.spec, run.class_weights, total)
        state = new_state()
        if qat_info is not None:
            state["qat"] = qat_info
    state["config"] = run.config.to_dict()
    return model, state
