"""The training loop behind ``python -m tfseg.train``: ``train(config) -> metrics``.

Keras ``fit`` with a callback that, at the end of each epoch, evaluates on the validation split at
full resolution, writes ``checkpoints/last.keras`` (model + optimizer + schedule state, atomically),
``checkpoints/best.keras`` when val mIoU improves, and ``checkpoints/state.json``.
"""

import json
import os
import time

import keras
import tensorflow as tf

from tfseg.config import Config
from tfseg.files import write_json_atomic
from tfseg.models.saving import load_model, save_model_atomic
from tfseg.instance.model import semantic_view  # --task=instance (also registers its layers)


class TrainingError(RuntimeError):
    """A training run cannot start or continue (reason in the message)."""


def _paths(run_dir):
    ckpt = os.path.join(run_dir, "checkpoints")
    return {
        "config": os.path.join(run_dir, "config.json"),
        "ckpt_dir": ckpt,
        "last": os.path.join(ckpt, "last.keras"),
        "best": os.path.join(ckpt, "best.keras"),
        "state": os.path.join(ckpt, "state.json"),
        "logs": os.path.join(run_dir, "logs"),
        "model": os.path.join(run_dir, "model.keras"),
        "metrics": os.path.join(run_dir, "metrics.json"),
    }


def load_class_weights(path, spec):
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"class weights file {path} is not valid JSON: {e}") from None
    weights = data["weights"] if isinstance(data, dict) else data
    if len(weights) != spec.num_classes:
        raise ValueError(
            f"class weights file {path} has {len(weights)} weights but dataset {spec.name!r} "
            f"has {spec.num_classes} classes"
        )
    return [float(w) for w in weights]


def make_optimizer(tc, total_steps):
    if tc.lr_schedule == "poly":
        lr = keras.optimizers.schedules.PolynomialDecay(
            tc.learning_rate,
            decay_steps=max(1, total_steps),
            end_learning_rate=0.0,
            power=tc.poly_power,
        )
    else:
        lr = tc.learning_rate
    wd = tc.weight_decay or None
    if tc.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=tc.momentum, weight_decay=wd)
    return keras.optimizers.Adam(lr, weight_decay=wd)


def loss_options(tc):
    """Keyword arguments of ``make_loss`` beyond the class weights, from a ``TrainConfig``."""
    options = {"label_relaxation_kernel": tc.label_relaxation_kernel}
    if tc.loss == "ohem":
        options.update(threshold=tc.ohem_threshold, min_kept=tc.ohem_min_kept)
    return options


def model_stride(config):
    """The input-size multiple the configured model needs (complete networks say; decoders: 32)."""
    from tfseg.models import stride_of

    return stride_of(config.model.name)


def training_plan(config, steps_per_epoch):
    """The training stages (one without ``progressive_schedule``): list of ``StagePlan``."""
    from tfseg.data.progressive import parse_schedule, plan

    dc, tc = config.data, config.train
    return plan(
        parse_schedule(tc.progressive_schedule),
        epochs=tc.epochs,
        batch_size=dc.batch_size,
        steps_per_epoch=steps_per_epoch,
        crop_size=dc.crop_size,
        multiple=model_stride(config),
    )


class _StageTimer(keras.callbacks.Callback):
    """Per stage: seconds from building its dataset to the end of its first step (dataset, iterator,
    tracing / retracing of the train function for the new shapes, one step) and the median step."""

    def __init__(self, record, t_start):
        super().__init__()
        self.record = record
        self.t_start = t_start
        self.steps = []
        self._t = None

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if "first_step_seconds" not in self.record:
            self.record["first_step_seconds"] = now - self.t_start
        elif len(self.steps) < 50:
            self.steps.append(now - self._t)

    def on_train_end(self, logs=None):
        if self.steps and "first_step_seconds" in self.record:
            median = sorted(self.steps)[len(self.steps) // 2]
            self.record["median_step_seconds"] = median
            self.record["switch_seconds"] = self.record["first_step_seconds"] - median


def build_from_config(config, num_classes, input_shape=(None, None, 3)):
    from tfseg.models import build_model

    if config.instance.enabled:  # --task=instance: + instance output (tfseg.instance)
        from tfseg.instance.training import instance_model_builder

        build_model = instance_model_builder(config)

    mc = config.model
    model = build_model(
        mc.name,
        num_classes,
        encoder=mc.encoder,
        input_shape=input_shape,
        encoder_kwargs=mc.encoder_kwargs,
        **mc.model_kwargs,
    )
    if mc.encoder_weights:
        from tfseg.encoders.weights import load_encoder_weights

        n = load_encoder_weights(model, mc.encoder, mc.encoder_weights, **mc.encoder_kwargs)
        print(f"loaded {n} encoder weight tensors from {mc.encoder_weights}")
    if mc.init_model:
        n = init_from_model(model, mc.init_model)
        print(f"initialised {n} weight tensors from {mc.init_model}")
    return model


def init_from_model(model, path):
    """Copy every weight of the ``.keras`` model at ``path`` into ``model``, layer by layer (by name).

    Both must have the same architecture (same layer names and weight shapes), as
    ``tools/transfer_head.py`` writes it; any difference is an error naming the layers.
    """
    from tfseg.encoders.weights import copy_weights_by_name

    source = {layer.name: layer for layer in load_model(path).layers}
    report = copy_weights_by_name(source, model, strict=False, nested=False)
    if not report.complete:
        raise TrainingError(
            f"--init_model={path} does not match the model being trained ({model.name}): "
            + report.describe(source="the file")
        )
    return report.tensors


class _EpochEnd(keras.callbacks.Callback):
    """Validation at full resolution, checkpoints and history at the end of every epoch."""

    def __init__(self, config, spec, paths, state, writer):
        super().__init__()
        self.config = config
        self.spec = spec
        self.paths = paths
        self.state = state
        self.writer = writer
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        from tfseg.evaluation import evaluate_model

        tc = self.config.train
        seconds = time.perf_counter() - self._t0
        self.state["train_seconds"] += seconds
        last_epoch = epoch + 1 == tc.epochs
        val_miou = None
        if (epoch + 1) % tc.val_every == 0 or last_epoch:
            result = evaluate_model(
                semantic_view(self.model),  # the logits output of a --task=instance model
                self.spec,
                self.config.data.val_split,
                max_images=tc.max_val_images,
                scale=self.config.data.eval_scale,
                verbose=False,
            )
            val_miou = result["miou"]
            print(f"epoch {epoch + 1}: val mIoU {100 * val_miou:.2f} ({result['seconds']:.1f}s)")
            with self.writer.as_default():
                tf.summary.scalar("val_miou", val_miou, step=epoch + 1)
        self.state["epoch"] = epoch + 1
        self.state["history"].append(
            {
                "epoch": epoch + 1,
                "loss": float(logs.get("loss", float("nan"))) if logs else float("nan"),
                "val_miou": val_miou,
                "seconds": seconds,
            }
        )
        if val_miou is not None and val_miou > self.state["best_miou"]:
            self.state["best_miou"] = val_miou
            self.state["best_epoch"] = epoch + 1
            save_model_atomic(self.model, self.paths["best"])
        # last.keras before state.json: a kill between the two resumes from the older state, which
        # re-runs at most one epoch; the reverse order could skip one.
        save_model_atomic(self.model, self.paths["last"])
        write_json_atomic(self.paths["state"], self.state)


def train(config: Config):
    """Train as described by ``config``; returns the metrics dict also written to metrics.json."""
    from tfseg.data import get_dataset, make_train_dataset
    from tfseg.evaluation import evaluate_model, format_table
    from tfseg.losses import make_loss
    from tfseg.metrics import MeanIoU  # noqa: F401

    dc, tc = config.data, config.train
    paths = _paths(tc.run_dir)

    # Validate everything before anything is written to the run directory.
    resuming = tc.resume and os.path.exists(paths["last"]) and os.path.exists(paths["state"])
    if os.path.exists(paths["last"]) and not tc.resume:
        raise TrainingError(
            f"{tc.run_dir} already holds a checkpoint; pass --resume to continue it or choose "
            f"another --run_dir (nothing was overwritten)"
        )
    spec = get_dataset(dc.dataset, dc.data_dir, **dc.dataset_options)
    if tc.class_weights == "auto":
        from tfseg.data import enet_class_weights

        auto_weights = enet_class_weights(spec, dc.train_split)
        class_weights = auto_weights["weights"]
    else:
        auto_weights = None
        class_weights = load_class_weights(tc.class_weights, spec) if tc.class_weights else None
    num_train = len(spec.examples(dc.train_split))
    steps = tc.steps_per_epoch or num_train // dc.batch_size
    if steps < 1:
        raise ValueError(
            f"split {dc.train_split!r} has {num_train} images, fewer than --batch_size={dc.batch_size}"
        )
    plans = training_plan(config, steps)
    keras.utils.set_random_seed(tc.seed)
    if resuming:
        with open(paths["state"]) as f:
            state = json.load(f)
        model = _load_checkpoint(paths["last"])
        print(f"resuming {tc.run_dir} after epoch {state['epoch']}")
        if state.get("config") and state["config"] != config.to_dict():
            print("note: flags differ from the checkpoint's config; the new values apply from here")
    else:
        model = build_from_config(config, spec.num_classes)
        loss = make_loss(
            tc.loss,
            ignore_label=spec.ignore_label,
            class_weights=class_weights,
            **loss_options(tc),
        )
        total = sum(p.epochs * p.steps_per_epoch for p in plans)
        losses = {"loss": loss}
        if config.instance.enabled:  # --task=instance: semantic + centre losses, weighted
            from tfseg.instance.training import compile_losses

            losses = compile_losses(config, loss)
        model.compile(optimizer=make_optimizer(tc, total), jit_compile="auto", **losses)
        state = {
            "epoch": 0,
            "best_miou": -1.0,
            "best_epoch": None,
            "history": [],
            "train_seconds": 0.0,
            "train_images": 0,
        }
    state["config"] = config.to_dict()

    os.makedirs(paths["ckpt_dir"], exist_ok=True)
    if auto_weights is not None:
        write_json_atomic(os.path.join(tc.run_dir, "class_weights.json"), auto_weights)
    with open(paths["config"] + ".tmp", "w") as f:
        f.write(config.to_json())
    os.replace(paths["config"] + ".tmp", paths["config"])

    print(
        f"model {model.name}: {model.count_params():,} parameters; dataset {spec.name} "
        f"({num_train} train images, {spec.num_classes} classes); {steps} steps/epoch"
    )
    if len(plans) > 1:
        for p in plans:
            print(
                f"stage {p.index}: epochs {p.start + 1}-{p.end}, scale {p.scale:g}, crop "
                f"{p.crop_size[0]}x{p.crop_size[1]}, batch {p.batch_size}, {p.steps_per_epoch} steps/epoch"
            )
    writer = None
    for p in plans:  # one fit per progressive stage (a single one without a schedule)
        if p.end <= state["epoch"]:
            continue
        if writer is None:
            writer = tf.summary.create_file_writer(os.path.join(paths["logs"], "validation"))
        record = {
            "stage": p.index,
            "scale": p.scale,
            "crop_size": list(p.crop_size),
            "batch_size": p.batch_size,
            "steps_per_epoch": p.steps_per_epoch,
            "first_epoch": max(p.start, state["epoch"]) + 1,
        }
        t_start = time.perf_counter()
        make_ds = make_train_dataset
        if config.instance.enabled:  # --task=instance: labels + centre targets
            from tfseg.instance.data import make_instance_train_dataset as make_ds
        train_ds = make_ds(
            spec,
            dc.train_split,
            batch_size=p.batch_size,
            crop_size=p.crop_size,
            scale_range=(dc.min_scale, dc.max_scale),
            flip=dc.flip,
            color_jitter=dc.color_jitter,
            seed=tc.seed + p.index,
            image_scale=p.scale,
            static_shape=len(plans) == 1,  # progressive: one trace serves every stage
            cache=dc.cache_images,
        ).repeat()
        callbacks = [
            _StageTimer(record, t_start),
            _EpochEnd(config, spec, paths, state, writer),
            keras.callbacks.TensorBoard(paths["logs"], update_freq="epoch", write_graph=False),
        ]
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
        write_json_atomic(paths["state"], state)
    state["train_images"] = sum(
        p.steps_per_epoch * p.batch_size * len(range(p.start, min(p.end, state["epoch"])))
        for p in plans
    )

    best_path = paths["best"] if os.path.exists(paths["best"]) else paths["last"]
    best = load_model(best_path)
    save_model_atomic(best, paths["model"], include_optimizer=False)
    result = evaluate_model(
        semantic_view(best), spec, dc.val_split, scale=dc.eval_scale, verbose=False
    )
    print(
        format_table(
            result,
            title=f"{model.name} on {spec.name}/{dc.val_split} (best epoch {state['best_epoch']})",
        )
    )
    metrics = {
        "val": {
            "miou": result["miou"],
            "per_class_iou": result["per_class_iou"],
            "pixel_accuracy": result["pixel_accuracy"],
            "mean_class_accuracy": result["mean_class_accuracy"],
            "category_iou": result.get("category_iou"),
        },
        "history": state["history"],
        "train_seconds": state["train_seconds"],
        "images_per_second": state["train_images"] / max(state["train_seconds"], 1e-9),
        "best_epoch": state["best_epoch"],
        "params": int(best.count_params()),
    }
    if state.get("stages"):
        metrics["stages"] = state["stages"]
    if config.instance.enabled:  # --task=instance: AP / AP50 on the validation split
        from tfseg.instance.training import instance_metrics

        metrics["val_instance"] = instance_metrics(best, spec, config)
    write_json_atomic(paths["metrics"], metrics)
    print(f"wrote {paths['model']} and {paths['metrics']}")
    return metrics


def _load_checkpoint(path):
    """Load ``path`` with its compile state (optimizer variables, schedule, loss)."""
    model = load_model(path, compile=True)
    if model.optimizer is None:
        raise TrainingError(f"checkpoint {path} has no optimizer state to resume from")
    return model
