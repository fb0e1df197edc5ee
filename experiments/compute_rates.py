"""The multiply-add rate every candidate of a ``reference_compare.py`` run achieved (issue 22):
how close each runtime came to the CPU's arithmetic peak, and so how much room a faster graph could
still have.

    PYTHONPATH=. python experiments/compute_rates.py --compare=docs/reference_compare_avx2.json \
        --json=docs/compute_rates_avx2.json

Per network: the reference zoo's conv / matmul GMACs at 1x3x512x1024 (``docs/reference/
zoo_reference.csv``, the figures tfseg's models match within 5 %, tests/models/test_zoo.py) divided
by each candidate's median latency in the JSON, in GMAC/s. Rows are sorted by the reference's ONNX
rate. A network whose reference already runs near the CPU's fp32 peak leaves int8 only the ratio of
the int8 peak to the fp32 peak to work with (docs/results.md, "Without VNNI: how far from the
peak").
"""

import csv
import json
import os

from absl import app, flags

REFERENCE_CSV = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                             "reference", "zoo_reference.csv")  # fmt: skip


def define_flags(fv=flags.FLAGS):
    """The script's flags (defined when it runs, so that importing it leaves the process's flags
    alone)."""
    flags.DEFINE_string("compare", None, "a reference_compare.py JSON", flag_values=fv)
    flags.DEFINE_string("json", None, "write the rates here", flag_values=fv)


def reference_gmacs(path=REFERENCE_CSV):
    """``{reference model name: GMACs at 1x3x512x1024}`` from the reference table."""
    with open(path) as f:
        return {row["model"]: float(row["gmacs_1x512x1024"]) for row in csv.DictReader(f)}


def rates(doc, gmacs, reference_of):
    """``[{network, gmacs, gmac_per_s: {candidate: rate}, best, best_vs_reference_onnx}]`` for the
    rows of a reference_compare JSON ``doc`` measured at 512x1024 (others are left out: the
    GMACs are for that size). ``reference_of(network)`` names its reference row."""
    out = []
    for row in doc["rows"]:
        med = row.get("median_ms") or {}
        ref = reference_of(row["network"])
        if row.get("input_size", doc.get("input_size")) != "512x1024" or ref not in gmacs:
            continue
        g = gmacs[ref]
        out.append({
            "network": row["network"],
            "gmacs": g,
            "gmac_per_s": {k: round(g / v * 1e3, 1) for k, v in med.items() if v > 0},
            "best": row.get("best"),
            "best_vs_reference_onnx": row.get("best_vs_reference_onnx"),
        })  # fmt: skip
    return sorted(out, key=lambda r: r["gmac_per_s"].get("reference_onnx", 0.0))


def main(argv):
    del argv
    import tfseg  # noqa: F401  (fills the registry)
    from tfseg.files import write_json_atomic
    from tfseg.registry import MODELS

    if not FLAGS.compare:
        raise app.UsageError("--compare=<reference_compare.py JSON> is required")
    with open(FLAGS.compare) as f:
        doc = json.load(f)
    rows = rates(doc, reference_gmacs(),
                 lambda n: MODELS.info(n).extra.get("reference") if n in MODELS.names() else None)
    print(f"{'network':14s} {'GMAC':>6s} {'ref eager':>9s} {'ref ONNX':>9s} {'tfseg best':>10s}"
          "  (GMAC/s)")
    for r in rows:
        rate = r["gmac_per_s"]
        best = rate.get(r["best"], 0.0) if r["best"] else 0.0
        print(f"{r['network']:14s} {r['gmacs']:6.1f} {rate.get('reference_eager', 0):9.0f} "
              f"{rate.get('reference_onnx', 0):9.0f} {best:10.0f}  {r['best'] or '-'}")
    if FLAGS.json:
        write_json_atomic(FLAGS.json, {"compare": FLAGS.compare, "cpu": doc.get("cpu"),
                                       "threads": doc.get("threads"), "rows": rows})


FLAGS = flags.FLAGS

if __name__ == "__main__":
    define_flags()
    app.run(main)
