"""Fewer multiply-adds for 3x3 convolutions by Winograd's minimal filtering, written as a graph of
ordinary OpenVINO ops, against the direct convolution, fp32 and int8 (issue 22: without VNNI the
heavy networks need more than the int8 convolution kernels' rate; docs/results.md, "Without VNNI:
how far from the peak"):

    PYTHONPATH=. python experiments/winograd_conv.py --shapes=128x128x256,256x64x128,64x256x512 \\
        --json=docs/winograd_conv_zen3.json

Per shape ``CxHxW`` (a 3x3, stride-1, "same" convolution of C -> C channels on an HxW map, bias and
ReLU after, NCHW, batch 1), four graphs, each in fp32 and int8 (NNCF, as ``tfseg.export
--format=openvino --precision=int8`` quantizes), timed in alternating rounds
(``tfseg.timing.time_interleaved``):

- ``direct``: one Convolution;
- ``wino2`` / ``wino4``: F(2x2, 3x3) / F(4x4, 3x3) (Lavin and Gray, 2016). The input transform
  ``B^T d B`` of each tile position (i, j) is a depthwise convolution of the padded input with the
  constant kernel ``outer(B^T[i], B^T[j])`` and the tile's stride; the element-wise products summed
  over input channels are one 1x1 convolution per position with the transformed weights
  ``G g G^T``; the output transform ``A^T M A`` is sums of those maps with constant coefficients,
  and a depth-to-space puts the m x m outputs of each tile in place. 2.25x (F(2,3)) and 4x (F(4,3))
  fewer multiply-adds in the 1x1 convolutions than the direct convolution has.

Reported per graph: median ms, the direct convolution's multiply-adds over that time (effective
GMAC/s) and the largest |difference| from the fp32 direct output over its largest |value|.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS

# Lavin & Gray's transforms: y = A^T [(G g G^T) * (B^T d B)] A (a correlation, as convolution
# layers compute it)
BT2 = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
G2 = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
AT2 = [[1, 1, 1, 0], [0, 1, -1, -1]]
BT4 = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
G4 = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
AT4 = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
TRANSFORMS = {2: (BT2, G2, AT2), 4: (BT4, G4, AT4)}


def define_flags(fv=FLAGS):
    """The script's flags (defined when it runs, so that importing it leaves the process's flags
    alone)."""
    flags.DEFINE_list("shapes", ["128x128x256"], "CxHxW of each convolution", flag_values=fv)
    flags.DEFINE_integer("threads", 2, "CPU threads", flag_values=fv)
    flags.DEFINE_integer("warmup", 2, "untimed calls of each graph first", flag_values=fv)
    flags.DEFINE_integer("rounds", 10, "timed rounds", flag_values=fv)
    flags.DEFINE_string("json", None, "write the rows here", flag_values=fv)


def transforms(m):
    """``(B^T, G, A^T)`` of F(m x m, 3 x 3) as float64 arrays (m = 2 or 4)."""
    if m not in TRANSFORMS:
        raise ValueError(f"F({m}, 3) is not tabulated here; m must be 2 or 4")
    return tuple(np.asarray(t, np.float64) for t in TRANSFORMS[m])


def winograd_reference(x, w, m):
    """The F(m, 3) algorithm in numpy, tile by tile (``x``: (C, H, W), ``w``: (Co, C, 3, 3),
    H and W multiples of m; zero "same" padding): the algorithm as written down, which the test
    checks against a direct correlation before checking the graph form against the convolution."""
    bt, g, at = transforms(m)
    a = m + 2
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, a - m - 1), (1, a - m - 1)))
    u = np.einsum("ik,ockl,jl->ijoc", g, w, g)
    y = np.zeros((w.shape[0], h, wd))
    for p in range(0, h, m):
        for q in range(0, wd, m):
            d = xp[:, p:p + a, q:q + a]
            v = np.einsum("ik,ckl,jl->ijc", bt, d, bt)
            prod = np.einsum("ijoc,ijc->ijo", u, v)
            y[:, p:p + m, q:q + m] = np.einsum("pi,ijo,qj->opq", at, prod, at)
    return y


def _const(ov_ops, a):
    return ov_ops.constant(np.asarray(a, np.float32))


def direct_model(w, b, shape):
    """``ov.Model``: the 3x3 "same" convolution of ``w`` (Co, C, 3, 3) + ``b``, then ReLU."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, *shape], np.float32)
    y = ops.convolution(x, _const(ops, w), [1, 1], [1, 1], [1, 1], [1, 1])
    y = ops.relu(ops.add(y, _const(ops, b.reshape(1, -1, 1, 1))))
    return ov.Model([y], [x], "direct")


def winograd_model(w, b, shape, m):
    """``ov.Model``: the same function as ``direct_model`` by F(m x m, 3 x 3) (see the module
    docstring); H and W must be multiples of m."""
    import openvino as ov
    import openvino.opset13 as ops

    bt, g, at = transforms(m)
    a = m + 2
    c, h, wd = shape
    if h % m or wd % m:
        raise ValueError(f"F({m}, 3) needs H and W multiples of {m}; got {h}x{wd}")
    x = ops.parameter([1, *shape], np.float32)
    pads = np.array([0, 0, 1, 1], np.int64)
    tail = np.array([0, 0, a - m - 1, a - m - 1], np.int64)
    xp = ops.pad(x, ops.constant(pads), ops.constant(tail), "constant")
    u = np.einsum("ik,ockl,jl->ijoc", g, w.astype(np.float64), g)
    products = {}
    for i in range(a):
        for j in range(a):
            taps = np.broadcast_to(np.outer(bt[i], bt[j]), (c, 1, 1, a, a))
            v = ops.group_convolution(xp, _const(ops, taps), [m, m], [0, 0], [0, 0], [1, 1])
            products[i, j] = ops.convolution(
                v, _const(ops, u[i, j][:, :, None, None]), [1, 1], [0, 0], [0, 0], [1, 1])
    phases = []
    for p in range(m):
        for q in range(m):
            acc = None
            for (i, j), prod in products.items():
                coef = at[p, i] * at[q, j]
                if coef == 0:
                    continue
                term = prod if coef == 1 else ops.multiply(prod, _const(ops, coef))
                acc = term if acc is None else ops.add(acc, term)
            phases.append(acc)
    y = ops.depth_to_space(ops.concat(phases, 1), "blocks_first", m)
    y = ops.relu(ops.add(y, _const(ops, b.reshape(1, -1, 1, 1))))
    return ov.Model([y], [x], f"wino{m}")


def compare_shape(shape, *, threads, warmup, rounds, seed=0):
    """One row: ``{"shape", "gmac", "ms": {graph: ms}, "gmac_per_s", "max_rel_err"}``."""
    from tfseg.export_lib import openvino_export
    from tfseg.export_lib.openvino_export import OpenVINORunner
    from tfseg.timing import time_interleaved

    c, h, wd = shape
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    b = (rng.standard_normal(c) * 0.1).astype(np.float32)

    def relu_normal():
        return np.maximum(rng.standard_normal((1, *shape)), 0).astype(np.float32)

    x = relu_normal()
    calibration = [relu_normal() for _ in range(4)]
    graphs = {"direct": direct_model(w, b, shape)}
    for m in (2, 4):
        graphs[f"wino{m}"] = winograd_model(w, b, shape, m)
    runners = {}
    for name, model in graphs.items():
        runners[name] = OpenVINORunner(model, threads=threads, hint="f32")
        runners[name + "_int8"] = OpenVINORunner(
            openvino_export.quantize(model, calibration), threads=threads, hint="f32")
    reference = runners["direct"](x)
    scale = float(np.abs(reference).max())
    errors = {n: float(np.abs(r(x) - reference).max()) / scale for n, r in runners.items()}
    times = time_interleaved(runners, x, warmup=warmup, runs=rounds)
    ms = {n: round(1000 * float(np.median(t)), 2) for n, t in times.items()}
    gmac = c * c * 9 * h * wd / 1e9
    return {
        "shape": f"{c}x{h}x{wd}",
        "gmac": float(f"{gmac:.4g}"),
        "ms": ms,
        "gmac_per_s": {n: round(gmac / v * 1000, 1) for n, v in ms.items()},
        "max_rel_err": {n: float(f"{e:.2e}") for n, e in errors.items()},
    }


def parse_shape(text):
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--shapes: {text!r} is not CxHxW (e.g. 128x128x256)") from None
    if c < 1 or h < 4 or w < 4 or h % 4 or w % 4:
        raise ValueError(f"--shapes: {text!r}: C must be positive, H and W multiples of 4 "
                         "(the F(4,3) tiles)")
    return c, h, w


def markdown(rows):
    names = list(rows[0]["ms"])
    lines = ["| C x H x W | GMAC | " + " | ".join(f"{n} ms" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = [f"{r['ms'][n]:.1f} ({r['max_rel_err'][n]:.0e})" for n in names]
        lines.append(f"| {r['shape']} | {r['gmac']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    from tfseg.cpuinfo import cpu_description

    try:
        shapes = [parse_shape(s) for s in FLAGS.shapes]
    except ValueError as e:
        sys.exit(str(e))
    rows = []
    for shape in shapes:
        rows.append(compare_shape(shape, threads=FLAGS.threads, warmup=FLAGS.warmup,
                                  rounds=FLAGS.rounds))
        print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows))
    if FLAGS.json:
        import openvino

        doc = {"cpu": cpu_description(), "openvino": openvino.__version__,
               "threads": FLAGS.threads, "rounds": FLAGS.rounds, "rows": rows}
        tmp = FLAGS.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, FLAGS.json)


if __name__ == "__main__":
    define_flags()
    app.run(main)
