"""Learning-rate schedules of tfseg, stepped per iteration, with warm-up.

``LearningRate(base_lr, total_steps, kind=..., warmup_steps=...)`` is one Keras schedule for all of
them, so a checkpoint's optimizer (``last.keras``) carries it and ``--resume`` continues it exactly
(the value depends only on the optimizer's iteration count).

Kinds (``t`` = progress through the steps after the warm-up, 0 -> 1):

- ``constant``: ``base``;
- ``poly``: ``base * (1 - t) ** power`` (DeepLab's poly, the default of tfseg);
- ``cosine``: ``base * (1 + cos(pi t)) / 2``;
- ``linear``: ``base * (1 - t)``;
- ``onecycle``: PyTorch's ``OneCycleLR`` with its defaults, as the reference zoo's ``cos_warmup``
  and ``linear`` policies use it: from ``base / 25`` up to ``base`` over the warm-up steps and down
  to ``base / 25 / 1e4`` at the last step, both with cosine annealing (``anneal="linear"``:
  straight lines). The momentum cycling of ``OneCycleLR`` (``cycle_momentum``) is not reproduced.

Warm-up for every kind but ``onecycle``: the rate rises linearly from ``base / warmup_steps`` to
``base`` over the first ``warmup_steps`` steps, then the decay runs over the remaining steps.
"""

import math

import keras
from keras import ops

KINDS = ("constant", "poly", "cosine", "linear", "onecycle")
ONECYCLE_DIV = 25.0  # OneCycleLR's div_factor: the first rate is base / 25
ONECYCLE_FINAL_DIV = 1e4  # its final_div_factor: the last rate is base / 25 / 1e4


def _anneal(start, end, pct, how):
    """OneCycleLR's annealing from ``start`` to ``end`` at ``pct`` in [0, 1]."""
    if how == "linear":
        return start + (end - start) * pct
    return end + (start - end) / 2.0 * (1.0 + ops.cos(math.pi * pct))


@keras.saving.register_keras_serializable(package="tfseg")
class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The rate at an optimizer step (see the module docstring).

    Args:
      base_lr: the peak rate (``--learning_rate``).
      total_steps: steps of the whole run (every stage of a progressive run).
      kind: one of ``KINDS``.
      warmup_steps: steps of warm-up (``onecycle``: of the rising phase).
      power: exponent of ``poly``.
      anneal: ``onecycle``'s annealing, "cos" or "linear".
    """

    def __init__(self, base_lr, total_steps, kind="poly", warmup_steps=0, power=0.9, anneal="cos"):
        if kind not in KINDS:
            raise ValueError(f"unknown schedule {kind!r}; choose from {', '.join(KINDS)}")
        if anneal not in ("cos", "linear"):
            raise ValueError(f"anneal must be 'cos' or 'linear', got {anneal!r}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"warmup_steps {warmup_steps} must be in [0, total_steps={total_steps}]"
            )
        self.base_lr = float(base_lr)
        self.total_steps = max(1, int(total_steps))
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.power = float(power)
        self.anneal = anneal

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.kind == "onecycle":
            return self._onecycle(step)
        base, warm = self.base_lr, float(self.warmup_steps)
        decay_steps = max(1.0, self.total_steps - warm)
        t = ops.clip((step - warm) / decay_steps, 0.0, 1.0)
        if self.kind == "constant":
            lr = base + 0.0 * t
        elif self.kind == "poly":
            lr = base * ops.power(1.0 - t, self.power)
        elif self.kind == "cosine":
            lr = base * 0.5 * (1.0 + ops.cos(math.pi * t))
        else:
            lr = base * (1.0 - t)
        if self.warmup_steps:
            lr = ops.where(step < warm, base * (step + 1.0) / warm, lr)
        return lr

    def _onecycle(self, step):
        start = self.base_lr / ONECYCLE_DIV
        end = start / ONECYCLE_FINAL_DIV
        # OneCycleLR's phase ends: the peak at step pct_start * total - 1, the end at total - 1.
        peak_at = float(self.warmup_steps) - 1.0
        last = float(self.total_steps) - 1.0
        if peak_at <= 0:  # no rising phase (the reference's ``linear`` policy: pct_start = 0)
            return _anneal(self.base_lr, end, ops.clip(step / max(last, 1.0), 0.0, 1.0),
                           self.anneal)
        up = _anneal(start, self.base_lr, ops.clip(step / peak_at, 0.0, 1.0), self.anneal)
        pct = ops.clip((step - peak_at) / max(last - peak_at, 1.0), 0.0, 1.0)
        down = _anneal(self.base_lr, end, pct, self.anneal)
        return ops.where(step <= peak_at, up, down)

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "total_steps": self.total_steps,
            "kind": self.kind,
            "warmup_steps": self.warmup_steps,
            "power": self.power,
            "anneal": self.anneal,
        }
