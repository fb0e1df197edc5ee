"""Green-AI measurement (RGPNet Table 4 analog): full-size training against progressive resizing,
without and with label relaxation, same model, data and number of epochs.

    python experiments/green_ai.py --out_dir=runs/green_ai                  # the default experiment
    python experiments/green_ai.py --out_dir=runs/green_ai_small --scale_down  # a quick check

Each variant is one ``python -m tfseg.train`` process (``--val_every=<epochs>``: validation only at
the end, so validation time stays out of the training time):

- ``full``: every epoch at full size;
- ``pr``: ``--progressive_schedule`` (default ``0:0.25,18:0.5,24:1.0`` over 30 epochs: the paper's
  1/4 -> 1/2 -> full with its proportions, 9/15 - 3/15 - 3/15) with ``--label_relaxation_kernel=0``;
- ``pr_lr``: the same schedule with label relaxation (kernel 3).

Measured per variant: the process's wall-clock and CPU seconds (CPU time is less sensitive to other
jobs on a shared machine), the training seconds reported by the trainer (sum of the epochs, with
tracing and stage switches, without validation), the seconds each stage switch cost, and the final
val mIoU. The speed-up of each progressive variant over ``full`` is set against the schedule's
theoretical cost (mean of scale**2 over the epochs: 0.2875 of full = 3.48x for the default).
The default recipe is the quickstart's (SkipNet-MobileNet with stride-4 scores, OHEM, Adam 1e-2,
poly, scale 0.75-1.25) on the default synthetic set (300 train / 50 val images of 256x512), trained
on whole images (``--crop_size=256x512``, as the paper's Table 4 trains on whole images), with
``--cache_images`` so that PNG decoding, a fixed cost of every epoch, does not compete with the
two CPU cores' training work.
Writes ``<out_dir>/green_ai.json`` and ``<out_dir>/green_ai.md``.

``--border_fraction`` instead measures how much of each stage label relaxation relaxes: the share of
border pixels (more than one class in the k x k window) in the training labels resized to each of
the schedule's scales (nearest neighbour, as the pipeline does), overall and per class. Writes
``<out_dir>/border_fraction.json``.

"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time

from absl import app, flags

from tfseg.data.progressive import parse_schedule, relative_cost
from tfseg.files import write_json_atomic

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the training runs' cwd
FLAGS = flags.FLAGS
VARIANTS = ("full", "pr", "pr_lr")
TITLES = {"full": "Full scale", "pr": "PR w/o LR", "pr_lr": "PR with LR"}

# --scale_down: a 4x smaller problem with the same schedule shape (for a first check).
SCALE_DOWN = {"num_train": 32, "height": 128, "width": 256, "crop_size": "128x128", "num_val": 16}


def define_flags():
    flags.DEFINE_string("out_dir", "runs/green_ai", "Output folder (one run dir per variant).")
    flags.DEFINE_string("data_dir", None, "Synthetic data folder (default: <out_dir>/data).")
    flags.DEFINE_list("variants", list(VARIANTS), f"Variants to run, of {', '.join(VARIANTS)}.")
    flags.DEFINE_integer("epochs", 30, "Epochs of every variant.", lower_bound=1)
    flags.DEFINE_string("schedule", "0:0.25,18:0.5,24:1.0", "Progressive schedule of pr / pr_lr.")
    flags.DEFINE_integer("label_relaxation_kernel", 3, "Kernel of pr_lr.", lower_bound=3)
    flags.DEFINE_integer("num_train", 300, "Synthetic training images.", lower_bound=1)
    flags.DEFINE_integer("num_val", 50, "Synthetic validation images.", lower_bound=1)
    flags.DEFINE_integer("height", 256, "Synthetic image height.", lower_bound=32)
    flags.DEFINE_integer("width", 512, "Synthetic image width.", lower_bound=32)
    flags.DEFINE_string(
        "crop_size",
        "256x512",
        "Full-size training crop HxW (default: the whole synthetic image, as RGPNet's Table 4 "
        "trains on whole 1024x2048 images; each stage scales it).",
    )
    flags.DEFINE_integer("batch_size", 4, "Batch size.", lower_bound=1)
    flags.DEFINE_string("model", "skipnet", "Model (decoder or complete network).")
    flags.DEFINE_string("encoder", "mobilenet", "Encoder.")
    flags.DEFINE_list(
        "train_flags",
        [
            '--model_kwargs={"finest": "P2"}',
            "--optimizer=adam",
            "--learning_rate=1e-2",
            "--weight_decay=1e-4",
            "--lr_schedule=poly",
            "--min_scale=0.75",
            "--max_scale=1.25",
            "--nocolor_jitter",
            "--loss=ohem",
            "--cache_images",
            "--seed=0",
        ],
        "Further tfseg.train flags shared by all variants (comma-separated).",
    )
    flags.DEFINE_bool("scale_down", False, f"Smaller problem for a quick check: {SCALE_DOWN}.")
    flags.DEFINE_bool("force", False, "Re-run variants whose run dir already holds metrics.json.")
    flags.DEFINE_bool(
        "border_fraction", False, "Measure the share of border pixels at each stage instead."
    )


def border_fractions(spec, scales, kernel, *, split="train", max_images=100):
    """Share of border pixels (``tfseg.losses.border_mask``) in ``split``'s labels resized by
    nearest neighbour to each of ``scales`` of their own size:
    ``{scale: {"size": [h, w], "border": fraction of valid pixels, "per_class": {name: fraction of
    that class's pixels}}}``."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from tfseg.losses import border_mask

    labels = []
    for example in spec.examples(split)[:max_images]:
        raw = np.array(Image.open(example.label))
        labels.append(spec.lut[raw].astype(np.int32))
    labels = np.stack(labels)
    full = labels.shape[1:3]
    result = {}
    for scale in scales:
        h, w = max(1, round(full[0] * scale)), max(1, round(full[1] * scale))
        small = tf.image.resize(labels[..., None], (h, w), method="nearest")[..., 0].numpy()
        border = np.asarray(border_mask(small, spec.num_classes, kernel, spec.ignore_label))
        valid = small != spec.ignore_label
        per_class = {}
        for c, name in enumerate(spec.class_names):
            mask = small == c
            if mask.any():
                per_class[name] = float(border[mask].mean())
        result[float(scale)] = {
            "size": [h, w],
            "border": float(border[valid].mean()) if valid.any() else 0.0,
            "per_class": per_class,
        }
    return result


def _settings():
    s = {
        "num_train": FLAGS.num_train,
        "num_val": FLAGS.num_val,
        "height": FLAGS.height,
        "width": FLAGS.width,
        "crop_size": FLAGS.crop_size,
    }
    if FLAGS.scale_down:
        s.update(SCALE_DOWN)
    return s


def _train_argv(variant, s, run_dir, data_dir):
    options = {"num_train": s["num_train"], "num_val": s["num_val"], "height": s["height"],
               "width": s["width"], "seed": 0}
    argv = [
        f"--model={FLAGS.model}",
        f"--encoder={FLAGS.encoder}",
        "--dataset=synthetic",
        f"--data_dir={data_dir}",
        f"--dataset_options={json.dumps(options)}",
        f"--crop_size={s['crop_size']}",
        f"--batch_size={FLAGS.batch_size}",
        f"--epochs={FLAGS.epochs}",
        f"--val_every={FLAGS.epochs}",
        f"--run_dir={run_dir}",
        *FLAGS.train_flags,
    ]
    if variant == "pr":
        argv += [f"--progressive_schedule={FLAGS.schedule}", "--label_relaxation_kernel=0"]
    elif variant == "pr_lr":
        argv += [
            f"--progressive_schedule={FLAGS.schedule}",
            f"--label_relaxation_kernel={FLAGS.label_relaxation_kernel}",
        ]
    return argv


def _run_variant(variant, s, data_dir):
    run_dir = os.path.join(FLAGS.out_dir, variant)
    metrics_path = os.path.join(run_dir, "metrics.json")
    record_path = os.path.join(run_dir, "green_ai_run.json")
    if not FLAGS.force and os.path.exists(metrics_path) and os.path.exists(record_path):
        print(f"{variant}: reusing {run_dir} (--force to re-run)")
        with open(record_path) as f:
            return json.load(f)
    shutil.rmtree(run_dir, ignore_errors=True)
    argv = [sys.executable, "-m", "tfseg.train", *_train_argv(variant, s, run_dir, data_dir)]
    print(f"{variant}: {' '.join(argv[1:])}", flush=True)
    env = dict(os.environ, TFSEG_QUIET="1", TF_CPP_MIN_LOG_LEVEL="2")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=_REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "train.log"), "w") as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(metrics_path) as f:
        metrics = json.load(f)
    stages = metrics.get("stages", [])
    record = {
        "variant": variant,
        "command": "python -m tfseg.train " + " ".join(argv[3:]),
        "wall_seconds": wall,
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "train_seconds": metrics["train_seconds"],
        # the first trace of the train function (same for every variant) taken out
        "train_seconds_after_first_trace": metrics["train_seconds"]
        - (stages[0].get("switch_seconds", 0.0) if stages else 0.0),
        "epoch_seconds": [h["seconds"] for h in metrics["history"]],
        "val_miou": metrics["val"]["miou"],
        "stages": stages,
        "load_average_after": os.getloadavg()[0],
    }
    write_json_atomic(record_path, record)
    print(
        f"{variant}: {wall:.0f} s wall, {record['cpu_seconds']:.0f} s CPU, "
        f"{record['train_seconds']:.0f} s training, val mIoU {100 * record['val_miou']:.2f}",
        flush=True,
    )
    return record


def _table(result):
    rows = result["variants"]
    full = rows.get("full")
    theory = result["theoretical_speedup"]
    lines = [
        (
            f"Green AI on synthetic {result['settings']['height']}x{result['settings']['width']} "
            f"({result['settings']['num_train']} train / {result['settings']['num_val']} val "
            f"images), {result['model']}, {result['epochs']} epochs, schedule "
            f"`{result['schedule']}` (theoretical cost {result['theoretical_cost']:.4f} of full = "
            f"{theory:.2f}x)."
        ),
        "",
        (
            "| scheme | training s | training s after 1st trace | wall s (process) "
            "| CPU s (process) | speed-up training / after 1st trace / wall / CPU "
            "| measured/theoretical (after 1st trace) | stage switches s | val mIoU |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        if v not in rows:
            continue
        r = rows[v]
        if full is not None:
            keys = (
                "train_seconds", "train_seconds_after_first_trace", "wall_seconds", "cpu_seconds"
            )
            sp = [full[k] / r[k] for k in keys]
            speed = " / ".join(f"{x:.2f}x" for x in sp)
            ratio = f"{sp[1] / theory:.2f}" if v != "full" else "-"
        else:
            speed, ratio = "-", "-"
        switches = ", ".join(
            f"{s['switch_seconds']:.1f}" for s in r["stages"][1:] if "switch_seconds" in s
        ) or "-"
        lines.append(
            f"| {TITLES[v]} | {r['train_seconds']:.0f} | "
            f"{r['train_seconds_after_first_trace']:.0f} | "
            f"{r['wall_seconds']:.0f} | "
            f"{r['cpu_seconds']:.0f} | {speed} | {ratio} | {switches} | {100 * r['val_miou']:.2f} |"
        )
    lines += ["", "Commands:", ""] + [f"    {rows[v]['command']}" for v in VARIANTS if v in rows]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.border_fraction:
        s = _settings()
        data_dir = FLAGS.data_dir or os.path.join(FLAGS.out_dir, "data")
        from tfseg.data import get_dataset

        spec = get_dataset("synthetic", data_dir, num_train=s["num_train"], num_val=s["num_val"],
                           height=s["height"], width=s["width"], seed=0)  # fmt: skip
        scales = sorted({st.scale for st in parse_schedule(FLAGS.schedule)})
        result = border_fractions(spec, scales, FLAGS.label_relaxation_kernel)
        for scale, r in result.items():
            worst = sorted(r["per_class"].items(), key=lambda kv: -kv[1])[:4]
            print(f"scale {scale:g} ({r['size'][0]}x{r['size'][1]}): border pixels "
                  f"{100 * r['border']:.1f} %; most relaxed classes: "
                  + ", ".join(f"{n} {100 * f:.0f} %" for n, f in worst))  # fmt: skip
        os.makedirs(FLAGS.out_dir, exist_ok=True)
        write_json_atomic(
            os.path.join(FLAGS.out_dir, "border_fraction.json"),
            {"kernel": FLAGS.label_relaxation_kernel, "data_dir": data_dir,
             "scales": {str(k): v for k, v in result.items()}},
        )  # fmt: skip
        return
    bad = [v for v in FLAGS.variants if v not in VARIANTS]
    if bad:
        raise app.UsageError(f"unknown --variants {bad}; choose from {', '.join(VARIANTS)}")
    stages = parse_schedule(FLAGS.schedule)
    if len(stages) > 1 and stages[-1].start_epoch >= FLAGS.epochs:
        raise app.UsageError(f"--schedule {FLAGS.schedule!r} does not fit --epochs={FLAGS.epochs}")
    s = _settings()
    data_dir = FLAGS.data_dir or os.path.join(FLAGS.out_dir, "data")
    # generate the data set here, outside the timed runs
    from tfseg.data import get_dataset

    get_dataset("synthetic", data_dir, num_train=s["num_train"], num_val=s["num_val"],
                height=s["height"], width=s["width"], seed=0)
    cost = relative_cost(stages, FLAGS.epochs)
    result = {
        "model": f"{FLAGS.model}+{FLAGS.encoder}",
        "epochs": FLAGS.epochs,
        "schedule": FLAGS.schedule,
        "theoretical_cost": cost,
        "theoretical_speedup": 1.0 / cost,
        "settings": {**s, "batch_size": FLAGS.batch_size, "train_flags": FLAGS.train_flags,
                     "scale_down": FLAGS.scale_down},
        "cpu_count": os.cpu_count(),
        "variants": {},
    }
    for v in FLAGS.variants:
        result["variants"][v] = _run_variant(v, s, data_dir)
    table = _table(result)
    write_json_atomic(os.path.join(FLAGS.out_dir, "green_ai.json"), result)
    with open(os.path.join(FLAGS.out_dir, "green_ai.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    define_flags()
    app.run(main)
