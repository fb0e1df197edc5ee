"""Callbacks of ``fit``: the stage timer, the weight EMA and the end-of-epoch validation and
checkpoints."""

import contextlib
import time

import keras
import tensorflow as tf

from tfseg.files import write_json_atomic
from tfseg.models.saving import save_model_atomic


class StageTimer(keras.callbacks.Callback):
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


class EMAUpdate(keras.callbacks.Callback):
    """After every training step: move the weight average (``tfseg.training.ema.WeightEMA``)."""

    def __init__(self, ema):
        super().__init__()
        self.ema = ema

    def on_train_batch_end(self, batch, logs=None):
        self.ema.update(self.model.optimizer.iterations)


class EpochEnd(keras.callbacks.Callback):
    """At the end of every epoch: validation mIoU of the main logits at full resolution (every
    ``val_every`` epochs and at the end), ``best.keras`` when it improves, ``last.keras`` (and the
    EMA's ``ema.weights.h5``) and ``state.json``. With an EMA, validation and ``best.keras`` use
    the averaged weights, ``last.keras`` the trained ones."""

    def __init__(self, config, spec, paths, state, writer, ema=None, is_chief=True, hooks=None):
        super().__init__()
        self.config = config
        self.spec = spec
        self.paths = paths
        self.state = state
        self.writer = writer
        self.ema = ema
        self.is_chief = is_chief  # other workers of a distributed run neither validate nor write
        self.on_validation = hooks.on_validation if hooks else None
        self._t0 = None

    def _averaged(self):
        """The model with the EMA weights swapped in (itself without an EMA)."""
        return self.ema.swapped_in() if self.ema else contextlib.nullcontext(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        tc = self.config.train
        seconds = time.perf_counter() - self._t0
        self.state["train_seconds"] += seconds
        val_miou = None
        if self.is_chief:
            with self._averaged() as model:
                if (epoch + 1) % tc.val_every == 0 or epoch + 1 == tc.epochs:
                    val_miou = self._validate(model, epoch)
                self._save_best(model, epoch, val_miou)
        self.state["epoch"] = epoch + 1
        loss = float(logs.get("loss", float("nan"))) if logs else float("nan")
        self.state["history"].append(
            {"epoch": epoch + 1, "loss": loss, "val_miou": val_miou, "seconds": seconds}
        )
        if self.is_chief:
            self._save_last()
        if val_miou is not None and self.on_validation:
            self.on_validation(epoch + 1, val_miou)

    def _validate(self, model, epoch):
        """Val mIoU of the main logits, printed and logged to TensorBoard."""
        from tfseg.evaluation import evaluate_model
        from tfseg.models.outputs import logits_view

        result = evaluate_model(
            logits_view(model),
            self.spec,
            self.config.data.val_split,
            max_images=self.config.train.max_val_images,
            scale=self.config.data.eval_scale,
            verbose=False,
        )
        val_miou = result["miou"]
        print(f"epoch {epoch + 1}: val mIoU {100 * val_miou:.2f} ({result['seconds']:.1f}s)")
        with self.writer.as_default():
            tf.summary.scalar("val_miou", val_miou, step=epoch + 1)
        return val_miou

    def _save_best(self, model, epoch, val_miou):
        """``best.keras`` on a new best."""
        if val_miou is not None and val_miou > self.state["best_miou"]:
            self.state["best_miou"] = val_miou
            self.state["best_epoch"] = epoch + 1
            save_model_atomic(model, self.paths.best)

    def _save_last(self):
        """``last.keras`` (and the EMA), then ``state.json``."""
        # last.keras before state.json: a kill between the two resumes from the older state, which
        # re-runs at most one epoch; the reverse order could skip one.
        save_model_atomic(self.model, self.paths.last)
        if self.ema:
            self.ema.save(self.paths.ema)
        write_json_atomic(self.paths.state, self.state)
