"""The task interface: what the programs (train, evaluate, predict) ask of a task.

A task decides what a model is trained for: which heads it adds, which targets the input pipeline
yields besides the label, the loss and weight of every output (by its kind, see
``tfseg.models.anatomy``), which outputs ``model.keras`` keeps, how a model is evaluated and what
prediction files are written. Everything else (run directory, optimizer, progressive stages,
checkpoints, per-epoch mIoU) is the same for every task and lives in ``tfseg.training``.

Tasks take plain values and config dataclasses, never flag values. A task's own options are a
section of ``Config`` (``section``, a dataclass ``options`` whose fields are ``tfseg.config.option``
fields); the programs define one flag per field.
"""

import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """How ``Task.evaluate`` runs (``tfseg.evaluate``'s options as plain values)."""

    split: str = "val"
    scales: Tuple[float, ...] = (1.0,)
    flip: bool = False
    scale: float = 1.0
    max_images: Optional[int] = None
    max_pixels: Optional[int] = None
    save_predictions: Optional[str] = None
    verbose: bool = True


class Task:
    """Base class of the tasks in ``tfseg.tasks.TASKS``; see the module docstring.

    Class attributes:
      name: the registry name (``--task``).
      description: one line for the programs' ``--task`` help.
      heads: heads the task adds to every model it trains (``build_model(heads=...)``).
      trainable_kinds: output kinds the task has a loss for; ``--heads`` may ask for these.
      required_kinds: output kinds a model must have for the task to evaluate or predict with it.
      saved_kinds: output kinds kept in ``run_dir/model.keras``.
      section, options: the task's ``Config`` section name and dataclass (None: no options).
    """

    name = ""
    description = ""
    heads: Tuple[str, ...] = ()
    trainable_kinds: Tuple[str, ...] = ("logits",)
    required_kinds: Tuple[str, ...] = ("logits",)
    saved_kinds: Tuple[str, ...] = ("logits",)
    section: Optional[str] = None
    options = None

    def task_options(self, config):
        """This task's section of ``config`` (None for a task without options)."""
        return getattr(config, self.section) if self.section else None

    def check_config(self, config):
        """Raise a ValueError for a configuration the task cannot train (before anything runs)."""
        raise NotImplementedError

    def build_model(self, config, num_classes, input_shape=(None, None, 3)):
        """The model to train: ``config.model`` with its heads and the task's."""
        raise NotImplementedError

    def train_dataset(self, config, spec, stage, *, output_kinds, static_shape=True):
        """One epoch of ``(image, targets)`` batches for progressive stage ``stage`` (a
        ``tfseg.data.progressive.StagePlan``), with one target per output of ``output_kinds`` (a
        bare label for one output)."""
        raise NotImplementedError

    def losses(self, config, model, *, ignore_label, class_weights=None):
        """``[(loss, weight), ...]``: one per output of ``model``, in output order."""
        raise NotImplementedError

    def final_model(self, model):
        """The model to write as ``model.keras``: the outputs of ``saved_kinds`` only."""
        from tfseg.models.outputs import keep_outputs

        return keep_outputs(model, self.saved_kinds)

    def final_metrics(self, model, spec, config):
        """Entries added to ``metrics.json`` after training (besides the semantic ``val``)."""
        return {}

    def evaluate(self, model, spec, options, task_options=None):
        """Scores of ``model`` on ``spec`` (``options``: an ``EvalOptions``) as a dict."""
        raise NotImplementedError

    def report(self, result, title):
        """``evaluate``'s result as printable text."""
        raise NotImplementedError

    def prediction_writer(self, model, task_options=None):
        """``write(image uint8 (H, W, 3), stem, output_dir) -> train-id labels (H, W)``; writes the
        task's own files (if any) into ``output_dir``."""
        raise NotImplementedError
