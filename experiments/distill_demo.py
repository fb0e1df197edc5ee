"""Knowledge-distillation demonstration on the synthetic street scenes (docs/training.md).

A small student is trained with the zoo's short recipe twice per seed, without and with
``--teacher_model`` (a larger network trained with the same recipe); the table compares val mIoU,
the pixel agreement of the student's argmax with the teacher's on the val split, and the mean
per-pixel KL divergence of the student's softmax from the teacher's there.

    PYTHONPATH=. python experiments/distill_demo.py --teacher=runs/zoo/regseg/model.keras \\
        --student=fastscnn --seeds=0,1 --out_dir=runs/distill

Runs that already finished (their ``metrics.json`` exists) are read, not retrained.
"""

import json
import os
import subprocess
import sys

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", "runs/zoo/regseg/model.keras", "Trained teacher .keras model.")
flags.DEFINE_string("student", "fastscnn", "Student network (tfseg.train --model).")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds; each trains the student with and without KD.")
flags.DEFINE_string("out_dir", "runs/distill", "Run directories go here.")
flags.DEFINE_string("data_dir", "data/synthetic", "Synthetic data set.")
flags.DEFINE_string("kd_loss", "kl", "Distillation loss.")
flags.DEFINE_float("kd_weight", 1.0, "Weight of the distillation loss.")
flags.DEFINE_float("kd_temperature", 4.0, "Temperature of kl / cwd.")
flags.DEFINE_string("tag", "", "Suffix of the distilled runs' directories (several KD settings).")
flags.DEFINE_string("json", None, "Also write the rows here.")
flags.DEFINE_integer("labelled", None, "Train the students on this many labelled train images "
                     "(a split train_l<N> of symlinks, spread evenly over the cities, made in "
                     "--data_dir); the teacher keeps what it was trained on. Epochs stay 75 steps.")
flags.DEFINE_bool("unlabelled", False, "With --labelled=N: the other train images stay in the "
                  "students' split without labels (label files of the ignore id only), so only "
                  "--kd_pixels=all distillation learns from them (split train_l<N>u).")
flags.DEFINE_integer("repeat_labelled", 1, "With --unlabelled: each labelled image appears this "
                     "many times in the split (symlinks), so that more batches hold labelled "
                     "images (split train_l<N>u_r<K>).")
flags.DEFINE_string("kd_pixels", "labelled", "--kd_pixels of the distilled runs.")
flags.DEFINE_enum("runs", "both", ["both", "plain", "kd"], "Which students to train per seed.")
flags.DEFINE_integer("epochs", 2, "Epochs of 75 steps (the zoo's short recipe: 2); runs of other "
                     "lengths get an _e<epochs> suffix.")

# The short recipe of docs/zoo.md's table (the same for every network there).
RECIPE = [
    "--dataset=synthetic", "--crop_size=256x256", "--min_scale=0.75", "--max_scale=1.25",
    "--nocolor_jitter", "--batch_size=4", "--optimizer=adam",
    "--learning_rate=5e-3", "--weight_decay=1e-4", "--lr_schedule=poly", "--loss=ohem",
]


def labelled_split(data_dir, n, unlabelled=False, repeat=1):
    """A train split of ``n`` labelled images (symlinks into ``train``), evenly spread; with
    ``unlabelled`` the other train images join it with label files that are all ignore (labelId 0,
    "unlabeled"), and each labelled image appears ``repeat`` times (copies named ``<id>_r<k>``)."""
    import glob

    import numpy as np
    from PIL import Image

    if repeat < 1 or (repeat != 1 and not unlabelled):
        raise ValueError(f"--repeat_labelled={repeat}: a positive count, with --unlabelled")
    split = f"train_l{n}" + ("u" if unlabelled else "") + (f"_r{repeat}" if repeat != 1 else "")
    pattern = os.path.join(data_dir, "leftImg8bit", "train", "*", "*_leftImg8bit.png")
    images = sorted(glob.glob(pattern))
    if not 0 < n <= len(images):
        raise ValueError(f"--labelled={n}: the train split of {data_dir} has {len(images)} images")
    files = {"leftImg8bit": ["_leftImg8bit.png"],
             "gtFine": ["_gtFine_labelIds.png", "_gtFine_instanceIds.png", "_gtFine_color.png"]}
    chosen = set(images[:: len(images) // n][:n])
    for path in images if unlabelled else sorted(chosen):
        city = os.path.basename(os.path.dirname(path))
        stem = os.path.basename(path)[: -len("_leftImg8bit.png")]
        if path not in chosen:
            link = os.path.join(data_dir, "leftImg8bit", split, city, stem + "_leftImg8bit.png")
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(path), link)
            out = os.path.join(data_dir, "gtFine", split, city)
            os.makedirs(out, exist_ok=True)
            width, height = Image.open(path).size
            for suffix in ("_gtFine_labelIds.png", "_gtFine_instanceIds.png"):
                if not os.path.exists(os.path.join(out, stem + suffix)):
                    Image.fromarray(np.zeros((height, width), np.uint8)).save(
                        os.path.join(out, stem + suffix))
            continue
        for root, suffixes in files.items():
            out = os.path.join(data_dir, root, split, city)
            os.makedirs(out, exist_ok=True)
            for copy in range(repeat):
                name = stem if copy == 0 else f"{stem}_r{copy}"
                for suffix in suffixes:
                    link = os.path.join(out, name + suffix)
                    if not os.path.lexists(link):
                        os.symlink(os.path.abspath(os.path.join(data_dir, root, "train", city,
                                                                stem + suffix)), link)
    return split


def train(run_dir, seed, teacher=None):
    if os.path.exists(os.path.join(run_dir, "metrics.json")):
        return
    args = [sys.executable, "-m", "tfseg.train", f"--model={FLAGS.student}",
            f"--data_dir={FLAGS.data_dir}", f"--run_dir={run_dir}", f"--seed={seed}", "--resume",
            f"--epochs={FLAGS.epochs}", f"--val_every={FLAGS.epochs}", *RECIPE]
    if FLAGS.labelled:
        split = labelled_split(FLAGS.data_dir, FLAGS.labelled, FLAGS.unlabelled,
                               FLAGS.repeat_labelled)
        args += [f"--train_split={split}",
                 "--steps_per_epoch=75"]
    if teacher:
        args += [f"--teacher_model={teacher}", f"--kd_loss={FLAGS.kd_loss}",
                 f"--kd_weight={FLAGS.kd_weight}", f"--kd_temperature={FLAGS.kd_temperature}",
                 f"--kd_pixels={FLAGS.kd_pixels}"]
    env = dict(os.environ, TFSEG_QUIET="1")
    subprocess.run(args, check=True, env=env)


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def agreement(student_path, teacher_path):
    """``(agreement, kl)`` on the val split: the share of pixels where the student's argmax
    equals the teacher's, and the mean per-pixel KL(teacher || student) of their softmaxes."""
    from tfseg.data import get_dataset
    from tfseg.data.files import read_image
    from tfseg.evaluation import make_predict_fn, predict_logits
    from tfseg.models import model_stride
    from tfseg.models.saving import load_model

    spec = get_dataset("synthetic", FLAGS.data_dir)
    student, teacher = load_model(student_path), load_model(teacher_path)
    fs, ft = make_predict_fn(student), make_predict_fn(teacher)

    same = total = 0
    kl = 0.0
    for ex in spec.examples("val"):
        image = read_image(ex.image)
        s = predict_logits(fs, image, model_stride(student))
        t = predict_logits(ft, image, model_stride(teacher))
        same += int(np.sum(s.argmax(-1) == t.argmax(-1)))
        total += s.shape[0] * s.shape[1]
        lt = _log_softmax(t.astype(np.float64))
        kl += float(np.sum(np.exp(lt) * (lt - _log_softmax(s.astype(np.float64)))))
    return same / total, kl / total


def main(argv):
    del argv
    rows = []
    for seed in FLAGS.seeds:
        for kd in {"both": (False, True), "plain": (False,), "kd": (True,)}[FLAGS.runs]:
            length = "" if FLAGS.epochs == 2 else f"_e{FLAGS.epochs}"
            length += f"_l{FLAGS.labelled}" if FLAGS.labelled else ""
            length += "u" if FLAGS.labelled and FLAGS.unlabelled else ""
            length += f"_r{FLAGS.repeat_labelled}" if FLAGS.repeat_labelled != 1 else ""
            name = f"{FLAGS.student}_{'kd' + FLAGS.tag if kd else 'plain'}{length}_s{seed}"
            run_dir = os.path.join(FLAGS.out_dir, name)
            train(run_dir, seed, FLAGS.teacher if kd else None)
            with open(os.path.join(run_dir, "metrics.json")) as f:
                metrics = json.load(f)
            agree, kl = agreement(os.path.join(run_dir, "model.keras"), FLAGS.teacher)
            rows.append({
                "seed": int(seed), "kd": kd, "val_miou": metrics["val"]["miou"],
                "agreement": agree, "kl_teacher_student": kl,
                "train_seconds": metrics["train_seconds"],
            })
    print("| seed | student | val mIoU % | agreement with the teacher % | KL(teacher, student) | "
          "train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        temperature = "" if FLAGS.kd_loss == "mse" else f", T={FLAGS.kd_temperature:g}"
        kd = f"{FLAGS.kd_loss}{temperature}, weight {FLAGS.kd_weight:g}"  # mse has no T
        name = f"{FLAGS.student} + KD ({kd})" if r["kd"] else FLAGS.student
        print(f"| {r['seed']} | {name} | {100 * r['val_miou']:.1f} | {100 * r['agreement']:.1f} | "
              f"{r['kl_teacher_student']:.3f} | {r['train_seconds']:.0f} |")
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    app.run(main)
