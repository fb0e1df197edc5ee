"""What the benchmark prints and writes: the latency table, the kernel table, the JSON documents
and the FPS-vs-resolution plot."""

import os

HEADER = (
    f"{'model':<22}{'size':>11}{'params':>12}{'GFLOPs':>8}  {'runtime':<18}"
    f"{'median ms':>10}{'p90 ms':>9}{'FPS':>8}{'GFLOP/s':>9}{'% matmul':>9}"
)
KERNEL_HEADER = (
    f"{'kernel':<26} {'HxW, Cin->Cout':<18} {'GMAC':>6} {'fp32 ms':>9} {'GMAC/s':>7} "
    f"{'int8 ms':>9} {'GMAC/s':>7} {'int8 speed-up':>13}"
)


def label(row):
    """``model`` or ``decoder-encoder`` of a result row."""
    return row["model"] + (f"-{row['encoder']}" if row.get("encoder") else "")


def format_line(row, runtime):
    """One table line: the model columns and ``runtime``'s latency (or why it was skipped)."""
    batch = row.get("batch", 1)
    size = row["input_size"] + ("*" if row.get("padded") else "")
    size = f"{batch}x{size}" if batch != 1 else size
    head = f"{label(row):<22}{size:>11}{row['params']:>12,}{row['gflops']:>8.2f}  {runtime:<18}"
    r = row.get(runtime)
    if r is None:
        return head + f"{'-':>10}"
    if "skipped" in r:
        return head + f"  ({r['skipped']})"
    frac = r.get("fraction_of_matmul")
    return head + (
        f"{r['median_ms']:>10.1f}{r['p90_ms']:>9.1f}{r['fps']:>8.2f}{r['gflops_per_s']:>9.1f}"
        f"{'' if frac is None else f'{100 * frac:>8.1f}%'}"
    )


def format_rows(rows, peak=None):
    """The whole table of ``rows``, with the padding note and the matmul reference ``peak``."""
    lines = [HEADER]
    for r in rows:
        runtimes = r.get("runtimes") or [k for k in ("keras",) if k in r] or ["none"]
        for runtime in runtimes:
            lines.append(format_line(r, runtime))
        if r.get("fastest"):
            lines.append(f"{'':<22}fastest: {r['fastest']} ({r[r['fastest']]['median_ms']:.1f} ms)")
    if any(r.get("padded") for r in rows):
        lines.append("* padded up to a multiple of the model's stride (requested size in the JSON)")
    if any(r.get("batch", 1) != 1 for r in rows):
        lines.append("BxHxW: a batch of B images per call; FPS counts images")
    if any(k.endswith("_train") for r in rows for k in r.get("runtimes", [])):
        lines.append("*_train: one optimizer step per call; GFLOP/s counts it as 3 forward passes")
    if peak:
        lines.append(
            f"fp32 matmul on this machine: {peak['best']:.1f} GFLOP/s ({_matmul_parts(peak)}); "
            "'% matmul' = achieved GFLOP/s / that"
        )
    return "\n".join(lines)


def _matmul_parts(peak):
    """``numpy 310.2, TensorFlow 402.1`` (the backends measured in ``peak``)."""
    names = {"numpy": "numpy", "tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
    return ", ".join(f"{names.get(k, k)} {v:.1f}" for k, v in peak.items() if k in names)


def format_matmul(peak):
    """The matmul line printed before the model table."""
    return f"fp32 matmul: {peak['best']:.1f} GFLOP/s ({_matmul_parts(peak)})"


def format_matmul_macs(peak):
    """The matmul line printed before the kernel table (in GMAC/s as well)."""
    return f"fp32 matmul: {peak['best']:.1f} GFLOP/s = {peak['best'] / 2:.1f} GMAC/s"


def format_kernel_row(row):
    """One line of the kernel table (``tfseg.bench.kernels.measure_kernels`` rows)."""
    h, w, cin, cout = row["shape"]
    return (
        f"{row['kernel']:<26} {f'{h}x{w}, {cin}->{cout}':<18} {row['macs'] / 1e9:>6.2f} "
        f"{row['fp32']['median_ms']:>9.2f} {row['fp32']['gmacs']:>7.1f} "
        f"{row['int8']['median_ms']:>9.2f} {row['int8']['gmacs']:>7.1f} "
        f"{row['int8_speedup']:>12.2f}x"
    )


def results_json(rows, *, threads, peak, backend="tensorflow", device=None):
    """The ``--json`` document of a model run (``backend``: the Keras backend; ``device``: what it
    computed on, in words)."""
    return {
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "matmul": peak,
        "results": rows,
        "backend": backend,
        "device": device,
    }


def kernels_json(rows, *, threads, peak, int8_cpu_flags):
    """The ``--json`` document of a ``--kernels`` run."""
    return {
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "matmul": peak,
        "int8_cpu_flags": int8_cpu_flags,
        "kernels": rows,
    }


def _fps_series(rows):
    """``{(label, runtime): [(pixels, fps, "WxH")]}`` of the timed runtimes in ``rows``."""
    series = {}
    for r in rows:
        h, w = (int(v) for v in r["input_size"].split("x"))
        for runtime in r.get("runtimes", []):
            stats = r.get(runtime) or {}
            if "fps" in stats:
                series.setdefault((label(r), runtime), []).append((h * w, stats["fps"], f"{w}x{h}"))
    return series


def plot_fps(rows, path):
    """PNG of FPS vs input pixels, one line per (model, runtime)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfseg.files import atomic_path

    fig, ax = plt.subplots(figsize=(8, 5))
    series = _fps_series(rows)
    for (name, runtime), points in sorted(series.items()):
        points.sort()
        ax.plot(
            [p[0] / 1e6 for p in points],
            [p[1] for p in points],
            marker="o",
            label=f"{name} {runtime}",
        )
    ax.set_xlabel("input size (megapixels, W x H at the points)")
    ax.set_ylabel("FPS (batch 1)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ticks = sorted({p[0]: p[2] for pts in series.values() for p in pts}.items())
    ax.set_xticks([t[0] / 1e6 for t in ticks])
    ax.set_xticklabels([t[1] for t in ticks], rotation=30, fontsize=8)
    if series:
        ax.legend(fontsize=7)
    ax.set_title("tfseg benchmark: FPS vs resolution")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
