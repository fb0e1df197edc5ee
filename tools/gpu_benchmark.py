"""Time every tfseg network on a GPU where only JAX or PyTorch is installed (issue 20).

    python3 tools/gpu_benchmark.py --out=DIR                          # JAX, every network
    python3 tools/gpu_benchmark.py --out=DIR --backend=torch --networks=ssn,enet
    python3 tools/gpu_benchmark.py --out=DIR --time_budget_s=420      # then again: it resumes

No TensorFlow is needed (``--forbid_tensorflow`` runs as if it were not installed, to prove it). Per
network and size: ``tfseg.bench.measure`` with the backend-neutral runtimes of
``tfseg.bench.backends``: inference compiled (``jax.jit``) at each ``--batch_sizes`` and one
training step (images/s) at the largest batch, each in every ``--precisions`` (``fp32``; ``bf16``:
``mixed_bfloat16``; ``fp16``: ``mixed_float16``, trained with dynamic loss scaling); warm-up
(which includes compilation) excluded, every call synchronised with the device, the runtimes
timed in alternating rounds. Writes, after every measurement (so a stopped run keeps its rows, and
the next run skips them):

- ``DIR/gpu_benchmark.json``: the device, the versions and every row;
- ``DIR/gpu_benchmark.md``: one table row per network and size: the FPS at batch 1 and the
  largest batch and the training images/s, per precision, and the reference zoo's FPS (RTX 2080,
  1024x512, from its README: ``docs/reference/zoo_fps.csv``) where it has the network.

Run it from the checkout with ``PYTHONPATH=.`` (or after ``pip install -e .``). On the lent GPU
machine (Python 3.12, JAX and PyTorch, no Keras, nothing to download), carry the
wheels that ``tools/gpu_wheels.sh`` fetches here; ``docs/gpu.md`` has the exact commands.
"""

import argparse
import csv
import json
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO_FPS = os.path.join(REPO, "docs", "reference", "zoo_fps.csv")
JSON_NAME, MD_NAME = "gpu_benchmark.json", "gpu_benchmark.md"


HIDDEN = ("tensorflow", "tf2onnx", "tf_keras")


class _Hiding:
    """Wraps one ``sys.meta_path`` finder so that it never finds TensorFlow: with every finder
    wrapped, TensorFlow looks uninstalled (``import`` raises ``ModuleNotFoundError``,
    ``importlib.util.find_spec`` gives ``None``, as libraries that probe for it expect)."""

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN or not hasattr(self._finder, "find_spec"):
            return None
        return self._finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self._finder, attr)


def hide_tensorflow():
    """Make TensorFlow (and tf2onnx) look uninstalled in this process from now on."""
    loaded = [m for m in sys.modules if m.split(".")[0] in HIDDEN]
    if loaded:
        raise SystemExit(f"--forbid_tensorflow: {loaded[0]} is already imported")
    sys.meta_path[:] = [f if isinstance(f, _Hiding) else _Hiding(f) for f in sys.meta_path]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="Folder for the JSON and the table.")
    p.add_argument("--backend", choices=["jax", "torch"], default="jax")
    p.add_argument("--networks", default="", help="Comma-separated (default: every network).")
    p.add_argument("--sizes", default="512x1024", help="Comma-separated HxW.")
    p.add_argument("--batch_sizes", default="1,8", help="Comma-separated batches.")
    p.add_argument("--precisions", default="fp32,bf16",
                   help="Comma-separated: fp32, bf16 (mixed_bfloat16), fp16 (mixed_float16).")
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                   help="Also time a training step at the largest batch.")
    p.add_argument("--num_classes", type=int, default=19)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--time_budget_s", type=float, default=None,
                   help="Start no new network after this many seconds.")
    p.add_argument("--forbid_tensorflow", action="store_true",
                   help="Run as if TensorFlow were not installed.")
    args = p.parse_args(argv)
    for name, text in (("--sizes", args.sizes), ("--batch_sizes", args.batch_sizes)):
        if not text.strip():
            p.error(f"{name} is empty")
    try:
        args.batches = sorted({int(b) for b in args.batch_sizes.split(",")})
    except ValueError:
        p.error(f"--batch_sizes takes integers, got {args.batch_sizes!r}")
    if min(args.batches) < 1:
        p.error(f"--batch_sizes takes positive integers, got {args.batch_sizes!r}")
    args.precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    bad = [s for s in args.precisions if s not in PRECISIONS]
    if bad or not args.precisions:
        p.error(f"--precisions takes {', '.join(PRECISIONS)}, got {args.precisions!r}")
    return args


def zoo_fps():
    """``{tfseg name: FPS}`` of the reference zoo's README (RTX 2080, 1024x512)."""
    with open(ZOO_FPS) as f:
        return {row["network"]: float(row["fps_rtx2080_1024x512"]) for row in csv.DictReader(f)}


def versions(backend):
    import keras
    import numpy

    out = {"python": platform.python_version(), "keras": keras.__version__,
           "numpy": numpy.__version__}
    module = __import__(backend)
    out[backend] = module.__version__
    return out


#: ``--precisions`` -> (inference runtime, training runtime) of ``tfseg.bench.runtimes``
PRECISIONS = {"fp32": ("keras", "keras_train"), "bf16": ("keras_bf16", "keras_bf16_train"),
              "fp16": ("keras_fp16", "keras_fp16_train")}


def runtimes_for(batch, args):
    """The runtimes timed at ``batch``: inference per precision; training per precision at the
    largest batch."""
    names = [PRECISIONS[p][0] for p in args.precisions]
    if args.train and batch == max(args.batches):
        names += [PRECISIONS[p][1] for p in args.precisions]
    return names


def split_network(spec):
    """``"skipnet/mobilenet"`` -> ``("skipnet", "mobilenet")``; ``"ssn"`` -> ``("ssn", None)``."""
    name, _, encoder = spec.partition("/")
    return name, encoder or None


def _fps(row, runtime):
    stats = (row or {}).get(runtime) or {}
    return f"{stats['fps']:.1f}" if "fps" in stats else ("-" if not stats else "skipped")


def markdown(doc):
    """The table of ``doc``: one line per network and size."""
    big = max(doc["batch_sizes"])
    precisions = doc.get("precisions", ["fp32", "bf16"])
    ref = zoo_fps()
    columns = [(1, PRECISIONS[p][0], f"{p} FPS, batch 1") for p in precisions]
    if big != 1:
        columns += [(big, PRECISIONS[p][0], f"{p} FPS, batch {big}") for p in precisions]
    columns += [(big, PRECISIONS[p][1], f"{p} training images/s, batch {big}")
                for p in precisions]
    lines = [
        f"Device: {doc['device']}; Keras {doc['versions']['keras']} on {doc['backend']}; "
        f"{doc['runs']} timed rounds after {doc['warmup']} warm-up calls; FPS = images/s.",
        "",
        "| network | size (HxW) | GFLOPs | " + " | ".join(c[2] for c in columns)
        + " | reference zoo FPS (RTX 2080, 1024x512) |",
        "|---" * (len(columns) + 4) + "|",
    ]
    groups = {}
    for r in doc["rows"]:
        groups.setdefault((r["network"], r["input_size"]), {})[r["batch"]] = r
    for (network, size), by_batch in groups.items():
        gflops = next((r["gflops"] for r in by_batch.values() if "gflops" in r), None)
        zoo = ref.get(network)
        gflops = "-" if gflops is None else f"{gflops:.1f}"
        cells = [_fps(by_batch.get(batch), runtime) for batch, runtime, _ in columns]
        lines.append(f"| {network} | {size} | {gflops} | " + " | ".join(cells)
                     + f" | {'' if zoo is None else f'{zoo:g}'} |")
    errors = [r for r in doc["rows"] if r.get("error")]
    for r in errors:
        lines.append(f"\n{r['network']} at {r['input_size']}, batch {r['batch']}: {r['error']}")
    return "\n".join(lines) + "\n"


def write(doc, out):
    """Write the JSON and the table atomically."""
    from tfseg.files import atomic_path, write_json_atomic

    write_json_atomic(os.path.join(out, JSON_NAME), doc)
    with atomic_path(os.path.join(out, MD_NAME)) as tmp, open(tmp, "w") as f:
        f.write(markdown(doc))


def load_previous(path, device):
    """The rows of an earlier run on the same device (resumed), else ``[]``."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        doc = json.load(f)
    return doc.get("rows", []) if doc.get("device") == device else []


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.forbid_tensorflow:
        hide_tensorflow()
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != args.backend:
        raise SystemExit(f"keras is already imported with another backend than {args.backend}")
    os.environ["KERAS_BACKEND"] = args.backend
    import keras

    import tfseg
    from tfseg.arrays import parse_size
    from tfseg.bench.backends import device_description
    from tfseg.bench.measure import measure
    from tfseg.registry import MODELS

    sizes = [parse_size(s, "--sizes") for s in args.sizes.split(",")]
    specs = [s.strip() for s in args.networks.split(",") if s.strip()] or MODELS.names()
    known = set(tfseg.list_models())
    unknown = [s for s in specs if split_network(s)[0] not in known]
    if unknown:
        raise SystemExit(f"unknown network(s) {unknown}; choose from {sorted(known)}")
    os.makedirs(args.out, exist_ok=True)
    device = device_description()
    doc = {"device": device, "backend": args.backend, "versions": versions(args.backend),
           "batch_sizes": args.batches, "precisions": args.precisions, "warmup": args.warmup,
           "runs": args.runs,
           "rows": load_previous(os.path.join(args.out, JSON_NAME), device)}
    done = {(r["network"], r["input_size"], r["batch"]) for r in doc["rows"]
            if not r.get("error") and set(runtimes_for(r["batch"], args)) <= set(r["runtimes"])}
    doc["rows"] = [r for r in doc["rows"] if (r["network"], r["input_size"], r["batch"]) in done]
    print(f"device: {device}; {len(done)} rows already measured", flush=True)
    start = time.perf_counter()
    for spec in specs:
        if args.time_budget_s is not None and time.perf_counter() - start > args.time_budget_s:
            print(f"time budget spent: stopped before {spec}", flush=True)
            break
        name, encoder = split_network(spec)
        for size in sizes:
            for batch in args.batches:
                key = (spec, f"{size[0]}x{size[1]}", batch)
                if key in done:
                    continue
                try:
                    row = measure(name, encoder, args.num_classes, size, batch=batch,
                                  runtimes=runtimes_for(batch, args), warmup=args.warmup,
                                  runs=args.runs)
                except Exception as e:  # one network's failure is its row, not the run's end
                    row = {"input_size": key[1], "error": f"{type(e).__name__}: {e}"}
                row.update(network=spec, batch=batch)
                doc["rows"].append(row)
                write(doc, args.out)
                print(json.dumps({k: row.get(k) for k in ("network", "input_size", "batch")}
                                 | {r: _fps(row, r) for r in runtimes_for(batch, args)}
                                 | ({"error": row["error"]} if row.get("error") else {})),
                      flush=True)
            keras.backend.clear_session()
    write(doc, args.out)
    print(f"wrote {os.path.join(args.out, MD_NAME)}", flush=True)


if __name__ == "__main__":
    main()
