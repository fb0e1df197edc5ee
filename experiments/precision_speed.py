"""Training speed of ``--precision`` on this machine (docs/training.md, "Mixed precision").

Builds the model once per precision exactly as ``tfseg.train`` does (under the dtype policy,
compiled with the same optimizer and loss), then times training steps on one fixed random batch,
the precisions interleaved round by round so that a busy machine slows them alike; prints the
median images/s of each and its ratio to float32, with the CPU's flags.

    PYTHONPATH=. python experiments/precision_speed.py --model=fastscnn --crop=256x256 --batch=4
"""

import os
import statistics
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "fastscnn", "Model (tfseg.train --model).")
flags.DEFINE_string("encoder", None, "Encoder, for decoders.")
flags.DEFINE_string("crop", "256x256", "Training crop HxW.")
flags.DEFINE_integer("batch", 4, "Batch size.")
flags.DEFINE_integer("steps", 5, "Timed steps per round.")
flags.DEFINE_integer("rounds", 4, "Rounds (each times every precision once).")
flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16", "mixed_float16"], "Precisions.")


def compiled(precision, h, w):
    import keras

    from tfseg.losses import make_loss
    from tfseg.models import build_model
    from tfseg.training.precision import dtype_policy

    keras.utils.set_random_seed(0)
    with dtype_policy(precision):
        model = build_model(FLAGS.model, 19, encoder=FLAGS.encoder, input_shape=(h, w, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss("ce", ignore_label=255),
                  jit_compile="auto")
    return model


def main(argv):
    del argv
    h, w = (int(v) for v in FLAGS.crop.split("x"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(FLAGS.batch, h, w, 3)).astype("float32")
    y = rng.integers(0, 19, size=(FLAGS.batch, h, w)).astype("int32")
    models = {p: compiled(p, h, w) for p in FLAGS.precisions}
    for m in models.values():  # trace and warm up
        m.train_on_batch(x, y)
        m.train_on_batch(x, y)
    rates = {p: [] for p in models}
    for _ in range(FLAGS.rounds):
        for p, m in models.items():
            t = time.perf_counter()
            for _ in range(FLAGS.steps):
                loss = m.train_on_batch(x, y)
            rates[p].append(FLAGS.steps * FLAGS.batch / (time.perf_counter() - t))
            assert np.isfinite(loss), (p, loss)
    from tfseg.cpuinfo import cpu_description

    print(f"CPU: {cpu_description()}; {os.cpu_count()} cores; "
          f"{FLAGS.model} {h}x{w} batch {FLAGS.batch}, {FLAGS.rounds} rounds x {FLAGS.steps} steps")
    base = statistics.median(rates[FLAGS.precisions[0]])
    print("| precision | images/s (median of rounds) | vs " + FLAGS.precisions[0] + " |")
    print("|---|---|---|")
    for p, r in rates.items():
        med = statistics.median(r)
        print(f"| {p} | {med:.2f} | {med / base:.2f}x |")


if __name__ == "__main__":
    app.run(main)
