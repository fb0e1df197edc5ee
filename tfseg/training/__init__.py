"""Training: ``train(config) -> metrics`` (``python -m tfseg.train`` is its program).

Keras ``fit`` with a callback that, at the end of each epoch, evaluates the main logits on the
validation split at full resolution, writes ``checkpoints/last.keras`` (model + optimizer +
schedule state, atomically), ``checkpoints/best.keras`` when val mIoU improves, and
``checkpoints/state.json``.
What is task-specific (model heads, targets, losses, final metrics) comes from ``tfseg.tasks``.

Modules, in the order a run uses them: ``run_dir`` (paths, resume state), ``data`` (class weights,
stage plan), ``model`` (build / initialise / load), ``optimizer`` (optimizer, schedule, compiled
losses), ``callbacks`` and ``stages`` (the fit loop), ``finalize`` (model.keras, metrics.json);
``loop`` strings them together.
"""

from tfseg.training.data import load_class_weights, training_plan
from tfseg.training.loop import Hooks, train
from tfseg.training.model import build_from_config, init_from_model
from tfseg.training.optimizer import make_optimizer
from tfseg.training.run_dir import TrainingError

__all__ = [
    "Hooks",
    "TrainingError",
    "build_from_config",
    "init_from_model",
    "load_class_weights",
    "make_optimizer",
    "train",
    "training_plan",
]
