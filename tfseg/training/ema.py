"""An exponential moving average (EMA) of a model's weights (``--ema_decay``, ``--ema_ramp``).

After every optimizer step, every float weight of the model (trainable weights and the BatchNorm
moving statistics, as timm's ``ModelEmaV2`` and the reference zoo average the whole state dict)
moves towards the trained value::

    ema = d * ema + (1 - d) * weight

with ``d = ema_decay``, or, with ``--ema_ramp``, ``d = min(ema_decay, step / total_steps)``: the
reference zoo's ramp (``ema_decay=1`` gives exactly its ``cur_itr / total_itrs``), which follows the
weights closely early on and freezes late in training.

Validation, ``best.keras`` and hence ``model.keras`` use the averaged weights (``swapped_in``);
``last.keras`` keeps the trained ones, and ``checkpoints/ema.weights.h5`` the average, so
``--resume`` continues both.
"""

import contextlib
import os

import numpy as np
import tensorflow as tf

from tfseg.files import atomic_path


def _averaged(model):
    """The weights the EMA follows: every float variable of ``model`` (not seeds or counters, not
    a distillation teacher's frozen weights)."""
    from tfseg.training.distill import FrozenTeacher

    frozen = {
        id(w) for layer in model.layers if isinstance(layer, FrozenTeacher) for w in layer.weights
    }
    return [w for w in model.weights if "float" in str(w.dtype) and id(w) not in frozen]


class WeightEMA:
    """The EMA of ``model``'s float weights; ``update()`` after each step (see the module doc).

    Args:
      model: the trained model (its variables must exist).
      decay: ``ema_decay`` in (0, 1].
      total_steps: the run's optimizer steps (for the ramp).
      ramp: ``d = min(decay, step / total_steps)`` instead of ``decay``.
    """

    def __init__(self, model, decay, total_steps, *, ramp=False):
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"--ema_decay must be in (0, 1], got {decay}")
        if decay == 1.0 and not ramp:
            raise ValueError("--ema_decay=1 without --ema_ramp would never move the average")
        self.model = model
        self.decay = float(decay)
        self.total_steps = max(1, int(total_steps))
        self.ramp = bool(ramp)
        self.weights = _averaged(model)
        self.average = [
            tf.Variable(w.value, trainable=False, name=f"ema_{i}")
            for i, w in enumerate(self.weights)
        ]
        self._update = tf.function(self._update_all)

    def decay_at(self, step):
        """The decay used after optimizer step ``step`` (1-based; a number or a scalar tensor)."""
        if not self.ramp:
            return tf.constant(self.decay, tf.float32)
        progress = tf.cast(step, tf.float32) / float(self.total_steps)
        return tf.minimum(tf.constant(self.decay, tf.float32), progress)

    def _update_all(self, step):
        decay = self.decay_at(step)
        for avg, w in zip(self.average, self.weights):
            avg.assign(decay * avg + (1.0 - decay) * tf.cast(w.value, avg.dtype))

    def update(self, step):
        """Move the average after optimizer step ``step`` (e.g. the optimizer's ``iterations``
        variable: read inside the compiled update, no host sync)."""
        self._update(tf.convert_to_tensor(step))

    @contextlib.contextmanager
    def swapped_in(self):
        """The model holds the averaged weights inside the block, its own ones again after."""
        trained = [w.numpy() for w in self.weights]
        for w, avg in zip(self.weights, self.average):
            w.assign(avg.numpy())
        try:
            yield self.model
        finally:
            for w, value in zip(self.weights, trained):
                w.assign(value)

    def save(self, path):
        """The averaged weights as a Keras ``.weights.h5`` of the model, written atomically."""
        with self.swapped_in() as model, atomic_path(path, suffix=".weights.h5") as tmp:
            model.save_weights(tmp)

    def load(self, path):
        """Restore the average from ``save``'s file (the model's own weights are kept)."""
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint was written without --ema_decay, or the file "
                "was removed; resume without --ema_decay or start a new run"
            )
        trained = [w.numpy() for w in self.weights]
        try:
            self.model.load_weights(path)
            for avg, w in zip(self.average, self.weights):
                avg.assign(w.numpy())
        finally:
            for w, value in zip(self.weights, trained):
                w.assign(value)

    def max_abs_difference(self):
        """Largest |average - weight| (for tests and logs)."""
        return max(
            float(np.max(np.abs(a.numpy() - w.numpy()))) for a, w in zip(self.average, self.weights)
        )
