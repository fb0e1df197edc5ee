"""The zoo table of docs/zoo.md: every network registered with a reference row, and every SMP-layout
decoder on ResNet-18 (``<decoder>_resnet18``), measured in one run.

    PYTHONPATH=. python experiments/zoo_table.py --out=docs/zoo.md [--miou=train] \
        [--networks=cgnet,fssnet] [--merge]

Columns: trainable parameters (19 classes) and GFLOPs at 1024x512 against the reference zoo's
figures (docs/reference/zoo_reference.csv; the decoders: SMP's, docs/reference/smp_reference.csv,
less the encoder parameters SMP counts but never runs); CPU latency at 512x1024, batch 1,
``--threads`` threads, for Keras, LiteRT fp32 and onnxruntime (timed interleaved, median), and the
best runtime's achieved GFLOP/s as a share of the same run's fp32 matmul peak (``--nolatency``
leaves these out). With ``--miou=train`` (``read``: finished runs only), val mIoU after the
short recipe below on the synthetic scenes, the same for every network (``tfseg.train`` in a
subprocess, one run directory each). The CPU model and its int8/bf16 flags head the table:
figures hold for that CPU only.
"""

import csv
import json
import os
import re
import subprocess
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "out", "docs/zoo.md",
    "Markdown file: the table replaces what stands between its zoo-table markers (the whole file "
    "if it has none); the rows also go to OUT.json.",
)
flags.DEFINE_list(
    "networks", [],
    "Networks to measure (default: every one with a reference row, and every SMP-layout decoder "
    "as <decoder>_resnet18).",
)
flags.DEFINE_integer("threads", 2, "CPU threads for every runtime.")
flags.DEFINE_integer("runs", 10, "Timed runs per runtime.")
flags.DEFINE_integer("warmup", 3, "Untimed runs per runtime.")
flags.DEFINE_enum(
    "miou", "off", ["off", "read", "train"],
    "val mIoU column: off; read (finished runs under --run_root only); train (run the short "
    "recipe where no finished run exists: slow).",
)
flags.DEFINE_bool("latency", True, "Time the runtimes (--nolatency: params, GFLOPs and mIoU only).")
flags.DEFINE_bool(
    "merge", False,
    "Keep the rows of OUT.json for networks not measured in this run (each row keeps the CPU and "
    "matmul peak of its own run), so the table can be measured a few networks at a time.",
)
flags.DEFINE_string("run_root", "runs/zoo", "Run directories of --miou=train.")
flags.DEFINE_string("data_dir", "data/synthetic", "Synthetic scenes for --miou=train.")

RUNTIMES = ("keras", "tflite", "onnxruntime")
START, END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"
SIZE = (512, 1024)
# The short recipe: the quickstart's optimiser and loss, fewer epochs.
RECIPE = [
    "--dataset=synthetic", "--crop_size=256x256", "--min_scale=0.75", "--max_scale=1.25",
    "--nocolor_jitter", "--batch_size=4", "--epochs=2", "--val_every=2", "--optimizer=adam",
    "--learning_rate=5e-3", "--weight_decay=1e-4", "--lr_schedule=poly", "--loss=ohem", "--seed=0",
]
REFERENCE_CSV = os.path.join(os.path.dirname(__file__), "..", "docs", "reference",
                             "zoo_reference.csv")
SMP_CSV = os.path.join(os.path.dirname(__file__), "..", "docs", "reference", "smp_reference.csv")
SMP_ENCODER = "resnet18"  # the encoder of the SMP rows (the reference zoo's README reports them so)
UNUSED = re.compile(r"(\d+) params sit in encoder stages the forward never runs")


def targets():
    """``{row name: (model, encoder or None, reference row)}``: the zoo networks by name, the
    SMP-layout decoders as ``<decoder>_resnet18`` (reference: SMP's count less the parameters of
    encoder stages its forward never runs, which a Keras model does not hold)."""
    from tfseg.registry import DECODERS, MODELS

    with open(REFERENCE_CSV) as f:
        zoo = {row["model"]: row for row in csv.DictReader(f)}
    with open(SMP_CSV) as f:
        smp = {(r["decoder"], r["encoder"]): r for r in csv.DictReader(f)}
    out = {}
    for name in MODELS.names():
        if "reference" in MODELS.info(name).extra:
            out[name] = (name, None, zoo[MODELS.info(name).extra["reference"]])
    for name in DECODERS.names():
        if "smp_reference" in DECODERS.info(name).extra:
            row = dict(smp[(DECODERS.info(name).extra["smp_reference"], SMP_ENCODER)])
            unused = UNUSED.search(row["note"])
            row["trainable_params"] = int(row["trainable_params"]) - int(
                unused.group(1) if unused else 0
            )
            out[f"{name}_{SMP_ENCODER}"] = (name, SMP_ENCODER, row)
    return out


def train_command(name, model=None, encoder=None):
    """The short recipe for table row ``name`` (``model`` / ``encoder``: of an SMP decoder row)."""
    pair = [f"--model={model or name}"] + ([f"--encoder={encoder}"] if encoder else [])
    return [sys.executable, "-m", "tfseg.train", *pair,
            f"--run_dir={os.path.join(FLAGS.run_root, name)}", f"--data_dir={FLAGS.data_dir}",
            *RECIPE]


def train_miou(name, model=None, encoder=None):
    """Val mIoU of ``name`` after the short recipe (a tfseg.train subprocess). A finished run in
    ``--run_root`` (its metrics.json exists) is read, not repeated: the runs are deterministic."""
    run_dir = os.path.join(FLAGS.run_root, name)
    if not os.path.exists(os.path.join(run_dir, "metrics.json")):
        if FLAGS.miou == "read":
            return None
        subprocess.run(train_command(name, model, encoder), check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["val"]["miou"]


def measure_network(name, target, peak):
    from tfseg.bench.measure import measure

    model, encoder, reference = target
    runtimes = RUNTIMES if FLAGS.latency else ("none",)
    row = measure(model, encoder, 19, SIZE, runtimes=runtimes, warmup=FLAGS.warmup,
                  runs=FLAGS.runs, threads=FLAGS.threads, peak_gflops=peak)
    timed = {r: row[r]["median_ms"] for r in RUNTIMES if "median_ms" in row.get(r, {})}
    best = min(timed, key=timed.get) if timed else None
    out = {
        "network": name, "params": row["params"], "gflops": row["gflops"],
        "ref_params": int(reference["trainable_params"]),
        "ref_gflops": 2 * float(reference["gmacs_1x512x1024"]),
        **{f"{r}_ms": timed.get(r) for r in RUNTIMES},
        "best": best,
        "best_share_of_matmul": row[best].get("fraction_of_matmul") if best else None,
        "peak_gflops": peak,
    }
    if FLAGS.miou != "off":
        out["miou"] = train_miou(name, model, encoder)
    return out


def markdown(rows, cpu):
    peaks = sorted({round(r["peak_gflops"]) for r in rows if r.get("peak_gflops")})
    if not peaks:
        timing = "; latency not measured in this run (--nolatency)"
    else:
        spread = f"{peaks[0]}" if len(peaks) == 1 else f"{peaks[0]}-{peaks[-1]} (runs differ)"
        timing = f"; {FLAGS.threads} threads; fp32 matmul peak {spread} GFLOP/s"
    head = (f"CPU: {cpu}{timing}.\n\n"
            "| network | params | ref params | GFLOPs | ref GFLOPs | Keras ms | LiteRT ms | "
            "onnxruntime ms | best (% of matmul) | val mIoU |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in sorted(rows, key=lambda r: r["network"]):
        ms = [f"{r[f'{k}_ms']:.0f}" if r.get(f"{k}_ms") else "-" for k in RUNTIMES]
        share = r["best_share_of_matmul"]
        miou = f"{100 * r['miou']:.1f}" if r.get("miou") is not None else "-"
        lines.append(
            f"| `{r['network']}` | {r['params']:,} | {r['ref_params']:,} | {r['gflops']:.2f} | "
            f"{r['ref_gflops']:.2f} | {' | '.join(ms)} | {r['best'] or '-'}"
            f"{f' ({100 * share:.0f} %)' if share else ''} | {miou} |"
        )
    return "\n".join(lines) + "\n"


def merged(rows, cpu):
    """``rows`` completed from ``OUT.json`` (same CPU only): its rows of networks not measured now,
    and, for the networks measured now, its values of what this run left out (``--nolatency``,
    ``--miou=off``)."""
    path = FLAGS.out + ".json"
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        old = json.load(f)
    if old.get("cpu") != cpu:
        raise app.UsageError(f"--merge: {path} was measured on {old.get('cpu')}, this is {cpu}")
    previous = {r["network"]: {"peak_gflops": old.get("peak_gflops"), **r} for r in old["rows"]}
    out = []
    for r in rows:
        before = previous.pop(r["network"], {})
        latency = ("keras_ms", "tflite_ms", "onnxruntime_ms", "best", "best_share_of_matmul",
                   "peak_gflops")
        if r.get("peak_gflops") is None:
            r.update({k: before.get(k) for k in latency})
        if r.get("miou") is None and before.get("miou") is not None:
            r["miou"] = before["miou"]
        out.append(r)
    return out + list(previous.values())


def main(argv):
    del argv
    import tfseg  # noqa: F401  (fills the registries)
    from tfseg.cpuinfo import cpu_description
    from tfseg.files import atomic_path, write_json_atomic
    from tfseg.timing import matmul_gflops

    every = targets()
    names = FLAGS.networks or list(every)
    unknown = [n for n in names if n not in every]
    if unknown:
        raise app.UsageError(f"--networks: no zoo row {unknown}; choose from {sorted(every)}")
    peak = matmul_gflops()["best"] if FLAGS.latency else None
    rows = []
    for name in names:
        rows.append(measure_network(name, every[name], peak))
        print(json.dumps(rows[-1]), flush=True)
    cpu = cpu_description()
    if FLAGS.merge:
        rows = merged(rows, cpu)
    write_json_atomic(FLAGS.out + ".json", {"cpu": cpu, "rows": rows})
    table = markdown(rows, cpu)
    if os.path.exists(FLAGS.out):
        with open(FLAGS.out) as f:
            text = f.read()
        if START in text and END in text:
            table = text[: text.index(START) + len(START)] + "\n" + table + text[text.index(END):]
    with atomic_path(FLAGS.out) as tmp, open(tmp, "w") as f:
        f.write(table)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
