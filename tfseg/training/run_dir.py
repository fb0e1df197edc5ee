"""The run directory: its paths, the refusal to overwrite a run, the resume state, the files written
before training starts (``config.json``, ``class_weights.json``)."""

import dataclasses
import json
import os

from tfseg.files import write_json_atomic


class TrainingError(RuntimeError):
    """A training run cannot start or continue (reason in the message)."""


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Every file and folder of a run directory."""

    run_dir: str

    def _join(self, *parts):
        return os.path.join(self.run_dir, *parts)

    config = property(lambda self: self._join("config.json"))
    class_weights = property(lambda self: self._join("class_weights.json"))
    ckpt_dir = property(lambda self: self._join("checkpoints"))
    last = property(lambda self: self._join("checkpoints", "last.keras"))
    best = property(lambda self: self._join("checkpoints", "best.keras"))
    state = property(lambda self: self._join("checkpoints", "state.json"))
    ema = property(lambda self: self._join("checkpoints", "ema.weights.h5"))
    logs = property(lambda self: self._join("logs"))
    model = property(lambda self: self._join("model.keras"))
    metrics = property(lambda self: self._join("metrics.json"))


def check_run_dir(paths, resume):
    """True when the run resumes from its checkpoint; a TrainingError when ``paths`` holds a
    checkpoint and ``resume`` is off (nothing is overwritten)."""
    has_checkpoint = os.path.exists(paths.last)
    if has_checkpoint and not resume:
        raise TrainingError(
            f"{paths.run_dir} already holds a checkpoint; pass --resume to continue it or choose "
            f"another --run_dir (nothing was overwritten)"
        )
    return resume and has_checkpoint and os.path.exists(paths.state)


def new_state():
    """The state of a run before its first epoch (``checkpoints/state.json``)."""
    return {
        "epoch": 0,
        "best_miou": -1.0,
        "best_epoch": None,
        "history": [],
        "train_seconds": 0.0,
        "train_images": 0,
    }


def load_state(paths, config):
    """The saved state of a resumed run; notes when the config differs from the checkpoint's."""
    from tfseg.config import Config

    with open(paths.state) as f:
        state = json.load(f)
    print(f"resuming {paths.run_dir} after epoch {state['epoch']}")
    if state.get("config") and Config.from_dict(state["config"]) != config:
        print("note: flags differ from the checkpoint's config; the new values apply from here")
    return state


def write_run_files(paths, config, auto_weights=None):
    """Create the run directory and write ``config.json`` (and ``class_weights.json`` when the
    weights were computed for this run)."""
    os.makedirs(paths.ckpt_dir, exist_ok=True)
    if auto_weights is not None:
        write_json_atomic(paths.class_weights, auto_weights)
    with open(paths.config + ".tmp", "w") as f:
        f.write(config.to_json())
    os.replace(paths.config + ".tmp", paths.config)
