"""The fit loop: one ``model.fit`` per progressive stage (a single one without a schedule),
skipping the stages a resumed run has finished."""

import os
import time

import keras
import tensorflow as tf

from tfseg.files import write_json_atomic
from tfseg.training.callbacks import EMAUpdate, EpochEnd, StageTimer


def print_plan(model, spec, num_train, steps, plans, dist=None):
    """One line about the run, one about its distribution, and one per progressive stage."""
    from tfseg.layers.teacher import FrozenTeacher

    teacher = next((layer for layer in model.layers if isinstance(layer, FrozenTeacher)), None)
    count = model.count_params() - (teacher.count_params() if teacher is not None else 0)
    frozen = f" (+ a frozen teacher of {teacher.count_params():,})" if teacher is not None else ""
    print(
        f"model {model.name}: {count:,} parameters{frozen}; dataset {spec.name} "
        f"({num_train} train images, {spec.num_classes} classes); {steps} steps/epoch"
    )
    if dist is not None and dist.mode != "none":
        role = "chief" if dist.is_chief else "worker (writes nothing)"
        print(f"--distribute={dist.mode}: {dist.replicas} replicas, {dist.workers} workers; {role}")
    if len(plans) > 1:
        for p in plans:
            print(
                f"stage {p.index}: epochs {p.start + 1}-{p.end}, scale {p.scale:g}, crop "
                f"{p.crop_size[0]}x{p.crop_size[1]}, batch {p.batch_size}, "
                f"{p.steps_per_epoch} steps/epoch"
            )


def fit_stages(model, task, config, spec, plans, paths, state, ema=None, dist=None, hooks=None):
    """Train every unfinished stage; ``state`` (epochs, history, per-stage timings) is updated and
    saved as it goes (by the chief of a distributed run only); ``ema`` (a ``WeightEMA``) follows
    every step; ``hooks.on_validation`` hears every validation."""
    from tfseg.training.distribute import Distribution, shard_by_data

    dist = dist or Distribution()

    from tfseg.models.outputs import output_kinds

    writer = None
    for p in plans:
        if p.end <= state["epoch"]:
            continue
        if writer is None and dist.is_chief:
            writer = tf.summary.create_file_writer(os.path.join(paths.logs, "validation"))
        record = _stage_record(p, state)
        t_start = time.perf_counter()
        train_ds = task.train_dataset(
            config,
            spec,
            p,
            output_kinds=output_kinds(model),
            static_shape=len(plans) == 1,  # progressive: one trace serves every stage
        ).repeat()
        if dist.workers > 1:
            train_ds = shard_by_data(train_ds)
        callbacks = [
            StageTimer(record, t_start),
            *([EMAUpdate(ema)] if ema else []),
            EpochEnd(config, spec, paths, state, writer, ema, dist.is_chief, hooks),
        ]
        if dist.is_chief:
            callbacks.append(
                keras.callbacks.TensorBoard(paths.logs, update_freq="epoch", write_graph=False)
            )
        model.fit(
            train_ds,
            epochs=p.end,
            initial_epoch=max(p.start, state["epoch"]),
            steps_per_epoch=p.steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles (deterministically, by seed)
            verbose=1 if os.environ.get("TFSEG_QUIET") is None else 2,
        )
        state.setdefault("stages", []).append(record)
        if dist.is_chief:
            write_json_atomic(paths.state, state)
    state["train_images"] = sum(
        p.steps_per_epoch * p.batch_size * len(range(p.start, min(p.end, state["epoch"])))
        for p in plans
    )


def _stage_record(p, state):
    """The ``state["stages"]`` entry of stage ``p`` (timings are added by ``StageTimer``)."""
    return {
        "stage": p.index,
        "scale": p.scale,
        "crop_size": list(p.crop_size),
        "batch_size": p.batch_size,
        "steps_per_epoch": p.steps_per_epoch,
        "first_epoch": max(p.start, state["epoch"]) + 1,
    }
