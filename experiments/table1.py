"""SSN Table 1 on tfseg: ERFNet, ENet and ESPNet with their own decoder vs with the iGUM head.

    python experiments/table1.py --input_size=512x1024 --runtimes=keras,tflite --threads=2 \
        --json=runs/table1/table1.json --markdown=runs/table1/table1.md
    # + a short training comparison on the synthetic set (each model trained with the same recipe):
    python experiments/table1.py --runtimes=none --train_epochs=6 --data_dir=data/synthetic \
        --runs_dir=runs/table1 --json=runs/table1/train.json --markdown=runs/table1/train.md

Per network x decoder: trainable parameters, GFLOPs at ``--input_size`` (1 MAC = 2 FLOPs,
``tfseg.flops``), and CPU latency at batch 1 for each runtime of ``--runtimes`` (``keras``: the
model in a ``tf.function``; ``tflite``: the BN-folded LiteRT conversion of ``tfseg.export``). The
two decoders of one network are timed interleaved (one call of each per round, ``tfseg.benchmark``)
so that load from other processes hits both alike; the table reports the median and the iGUM
speed-up.

With ``--train_epochs=N`` each model is also trained by ``python -m tfseg.train`` (a subprocess,
``nice``-d by ``--nice``) on ``--dataset`` with one shared recipe, and the table gets its val mIoU
(``metrics.json`` of the run). ``--reuse_runs`` keeps a run whose ``metrics.json`` already exists.
The paper's own figures (Cityscapes val mIoU and Titan Xp FPS) are printed next to them.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the training runs' cwd

FLAGS = flags.FLAGS
NETWORKS = ("erfnet", "enet", "espnet")
DECODERS = ("original", "igum")
RUNTIMES = ("keras", "tflite", "tflite_fp16", "onnxruntime", "none")
# SSN paper, Table 1: (val mIoU, FPS) with the original decoder and with iGUM
# (Cityscapes, Titan Xp).
PAPER = {
    "erfnet": {"original": (60.7, 59), "igum": (63.7, 81)},
    "enet": {"original": (47.3, 87), "igum": (55.7, 137)},
    "espnet": {"original": (48.2, 172), "igum": (52.9, 206)},
}


def define_flags():
    flags.DEFINE_list("networks", list(NETWORKS), f"Networks, from {NETWORKS}.")
    flags.DEFINE_list("decoders", list(DECODERS), f"Decoders, from {DECODERS}.")
    flags.DEFINE_integer(
        "num_classes", 19, "Classes of the measured models (params, GFLOPs, latency)."
    )
    flags.DEFINE_string("input_size", "512x1024", "HxW for GFLOPs and latency.")
    flags.DEFINE_list("runtimes", ["keras", "tflite"], f"Latency runtimes, from {RUNTIMES}.")
    flags.DEFINE_integer("threads", None, "CPU threads of every runtime (default: the runtime's).")
    flags.DEFINE_integer("warmup", 2, "Untimed calls per runtime.", lower_bound=0)
    flags.DEFINE_integer("runs", 10, "Timed rounds.", lower_bound=1)
    flags.DEFINE_integer("train_epochs", 0, "Train each model this many epochs (0: no training).")
    flags.DEFINE_string("dataset", "synthetic", "Dataset of the training comparison.")
    flags.DEFINE_string("data_dir", "data/synthetic", "Dataset root (synthetic: generated once).")
    flags.DEFINE_string("dataset_options", "{}", "Dataset options as JSON.")
    flags.DEFINE_string("crop_size", "128x256", "Training crop HxW.")
    flags.DEFINE_integer("batch_size", 8, "Training batch size.")
    flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass).")
    flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate (poly schedule).")
    flags.DEFINE_integer("val_every", 1, "Validate every N epochs (and after the last).")
    flags.DEFINE_list("train_flags", [], "Extra tfseg.train flags, e.g. --train_flags=--seed=1.")
    flags.DEFINE_string("runs_dir", "runs/table1", "Run directories of the training comparison.")
    flags.DEFINE_bool("reuse_runs", False, "Keep runs that already have a metrics.json.")
    flags.DEFINE_integer("nice", 10, "Niceness of the training subprocesses.")
    flags.DEFINE_string("json", None, "Write the rows as JSON here.")
    flags.DEFINE_string("markdown", None, "Write the markdown table here.")


def check_choices(values, choices, what):
    bad = [v for v in values if v not in choices]
    if bad:
        raise ValueError(f"unknown {what} {bad}; choose from {', '.join(choices)}")
    if not values:
        raise ValueError(f"no {what} given; choose from {', '.join(choices)}")


def build(network, decoder, num_classes, size):
    import tfseg

    return tfseg.build_model(network, num_classes, decoder=decoder, input_shape=(*size, 3))


def measure_network(network, decoders, *, num_classes, size, runtimes, threads, warmup, runs,
                    log=print):  # fmt: skip
    """Rows (one per decoder) with params, GFLOPs and interleaved latency per runtime."""
    import shutil
    import tempfile

    import numpy as np

    from tfseg.bench.runtimes import RuntimeUnavailable, make_runner
    from tfseg.flops import count_params, model_macs
    from tfseg.timing import latency_stats, time_interleaved

    rows, runners = {}, {}
    workdir = tempfile.mkdtemp(prefix="tfseg_table1_")
    try:
        for decoder in decoders:
            model = build(network, decoder, num_classes, size)
            row = {
                "network": network,
                "decoder": decoder,
                "input_size": f"{size[0]}x{size[1]}",
                "num_classes": num_classes,
                "params": count_params(model),
                "gflops": 2.0 * model_macs(model) / 1e9,
            }
            rows[decoder] = row
            for runtime in runtimes:
                t0 = time.perf_counter()
                try:
                    runners[(decoder, runtime)] = make_runner(
                        runtime, model, size, threads=threads, workdir=workdir, cache={}
                    )
                except RuntimeUnavailable as e:
                    row[runtime] = {"skipped": str(e)}
                log(f"  {network}/{decoder}: {runtime} ready ({time.perf_counter() - t0:.0f}s)")
        if runners:
            x = np.random.default_rng(0).standard_normal((1, *size, 3), dtype=np.float32)
            times = time_interleaved(runners, x, warmup=warmup, runs=runs)
            for (decoder, runtime), t in times.items():
                rows[decoder][runtime] = latency_stats(t)
    finally:
        runners.clear()
        shutil.rmtree(workdir, ignore_errors=True)
    return [rows[d] for d in decoders]


def train_command(network, decoder, run_dir):
    """The ``python -m tfseg.train`` command line of one training run."""
    cmd = [
        sys.executable,
        "-m",
        "tfseg.train",
        f"--model={network}",
        f"--model_kwargs={json.dumps({'decoder': decoder})}",
        f"--dataset={FLAGS.dataset}",
        f"--data_dir={os.path.abspath(FLAGS.data_dir)}",
        f"--dataset_options={FLAGS.dataset_options}",
        f"--run_dir={os.path.abspath(run_dir)}",
        f"--crop_size={FLAGS.crop_size}",
        "--min_scale=0.5",
        "--max_scale=1.5",
        f"--batch_size={FLAGS.batch_size}",
        f"--epochs={FLAGS.train_epochs}",
        "--optimizer=adam",
        f"--learning_rate={FLAGS.learning_rate}",
        "--weight_decay=1e-4",
        "--lr_schedule=poly",
        "--loss=weighted_ce",
        "--class_weights=auto",
        f"--val_every={FLAGS.val_every}",
        "--seed=0",
    ]
    if FLAGS.steps_per_epoch:
        cmd.append(f"--steps_per_epoch={FLAGS.steps_per_epoch}")
    return cmd + list(FLAGS.train_flags)


def train_one(network, decoder, log=print):
    run_dir = os.path.join(FLAGS.runs_dir, f"{network}_{decoder}")
    metrics_path = os.path.join(run_dir, "metrics.json")
    cmd = train_command(network, decoder, run_dir)
    if not (FLAGS.reuse_runs and os.path.exists(metrics_path)):
        if os.path.exists(run_dir) and os.listdir(run_dir):
            raise ValueError(f"{run_dir} exists and is not empty: remove it or pass --reuse_runs")
        log("  " + " ".join(cmd[1:]))
        nice = FLAGS.nice
        t0 = time.perf_counter()
        with open(os.path.join(FLAGS.runs_dir, f"{network}_{decoder}.log"), "w") as out:
            proc = subprocess.run(
                cmd,
                check=False,
                cwd=_REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )
        if proc.returncode:
            raise RuntimeError(
                f"training {network}/{decoder} failed (exit {proc.returncode}); "
                f"see {FLAGS.runs_dir}/{network}_{decoder}.log"
            )
        log(f"  {network}/{decoder}: trained in {time.perf_counter() - t0:.0f}s")
    with open(metrics_path) as f:
        m = json.load(f)
    return {
        "val_miou": m["val"]["miou"],
        "best_epoch": m.get("best_epoch"),
        "train_seconds": m["train_seconds"],
        "images_per_second": m["images_per_second"],
        "run_dir": run_dir,
        "command": "python " + " ".join(cmd[1:]),
    }


def _ms(row, runtime):
    r = row.get(runtime) or {}
    if "skipped" in r:
        return "skipped"
    return f"{r['median_ms']:.0f}" if "median_ms" in r else "-"


def format_markdown(rows, runtimes):
    """One line per network x decoder; iGUM lines also give the speed-up over the original."""
    runtimes = [r for r in runtimes if r != "none"]
    trained = any("train" in r for r in rows)
    head = ["network", "decoder", "params", "GFLOPs"]
    head += [f"{r} ms" for r in runtimes] + [f"{r} speed-up" for r in runtimes]
    head += ["val mIoU (synthetic)"] if trained else []
    head += ["paper mIoU / FPS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_key = {(r["network"], r["decoder"]): r for r in rows}
    for r in rows:
        base = by_key.get((r["network"], "original"))
        cells = [r["network"], r["decoder"], f"{r['params']:,}", f"{r['gflops']:.2f}"]
        cells += [_ms(r, rt) for rt in runtimes]
        for rt in runtimes:
            if (
                r["decoder"] != "original"
                and base
                and "median_ms" in (base.get(rt) or {})
                and ("median_ms" in (r.get(rt) or {}))
            ):
                cells.append(f"{base[rt]['median_ms'] / r[rt]['median_ms']:.2f}x")
            else:
                cells.append("")
        if trained:
            t = r.get("train")
            cells.append(f"{100 * t['val_miou']:.1f}" if t else "-")
        miou, fps = PAPER[r["network"]][r["decoder"]]
        cells.append(f"{miou} / {fps}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfseg.config import parse_size

    try:
        check_choices(FLAGS.networks, NETWORKS, "network(s)")
        check_choices(FLAGS.decoders, DECODERS, "decoder(s)")
        check_choices(FLAGS.runtimes, RUNTIMES, "runtime(s)")
        size = parse_size(FLAGS.input_size, "--input_size")
        if size[0] % 8 or size[1] % 8:
            raise ValueError(f"--input_size {FLAGS.input_size} must be a multiple of 8")
        json.loads(FLAGS.dataset_options)
    except (ValueError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    runtimes = [r for r in FLAGS.runtimes if r != "none"]
    rows = []
    for network in FLAGS.networks:
        print(
            f"{network}: params, GFLOPs"
            + (f", latency ({', '.join(runtimes)})" if runtimes else "")
        )
        rows += measure_network(
            network,
            FLAGS.decoders,
            num_classes=FLAGS.num_classes,
            size=size,
            runtimes=runtimes,
            threads=FLAGS.threads,
            warmup=FLAGS.warmup,
            runs=FLAGS.runs,
        )
    if FLAGS.train_epochs:
        os.makedirs(FLAGS.runs_dir, exist_ok=True)
        for row in rows:
            print(f"training {row['network']}/{row['decoder']} ({FLAGS.train_epochs} epochs)")
            row["train"] = train_one(row["network"], row["decoder"])
    table = format_markdown(rows, FLAGS.runtimes)
    print(table)
    result = {
        "input_size": FLAGS.input_size,
        "threads": FLAGS.threads,
        "runs": FLAGS.runs,
        "rows": rows,
        "paper_table1": PAPER,
        "command": " ".join(sys.argv),
    }
    from tfseg.files import write_json_atomic

    if FLAGS.json:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json)), exist_ok=True)
        write_json_atomic(FLAGS.json, result)
    if FLAGS.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.markdown)), exist_ok=True)
        with open(FLAGS.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    define_flags()
    app.run(main)
