"""Where onnxruntime spends a network's time, by kind of operation, fp32 against tfseg's int8
export (issue 22: what bounds the int8 gain on a CPU without VNNI):

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/op_breakdown.py \
        --networks=fddwnet,adscnet,swiftnet --json=docs/op_breakdown_avx2.json

Per network (random weights with BN statistics from the calibration inputs, as tfseg.benchmark
builds it): the fp32 ONNX and ``export_lib.onnx_int8``'s QDQ export, each run ``--runs`` times
with onnxruntime's profiler on, after ``--warmup`` unprofiled runs. Each kernel's time (the
profiler's ``*_kernel_time`` events, summed over the runs and divided by ``--runs``) goes to one
kind: dense convolution (kernel larger than 1x1), 1x1 convolution, depthwise convolution (one input
channel per group), other grouped convolution, transposed convolution, resize, pooling,
quantize / dequantize, layout (ORT's NCHWc reorders, transposes), element-wise, other. A
quantized convolution (QLinearConv, or a DQ-Conv-Q group ORT fused) counts with its float kind, so
the two columns compare like for like. The kernel times leave out the session's overhead between
kernels (the "between" column: wall time per run minus the kernels' sum).

Two figures follow from the split, each as a speed-up over the fp32 kernels' sum:

- ``amdahl``: every convolution with a dot product to speed up (dense and 1x1) ``--dot_speedup``
  times faster than in fp32, everything else at its fp32 time. A model, not a limit: int8
  element-wise and layout kernels move a quarter of the bytes and can gain too.
- ``best_of_kinds``: each kind at the faster of its fp32 and int8 time (and the int8 export's
  quantize / dequantize time on top): what a free choice of precision per kind of operation would
  reach with these kernels, were the conversions between the precisions no dearer than the int8
  export's.

``--summary=REFERENCE_JSON`` (a ``reference_compare.py --json`` file measured on the same
instruction set) prints, per network of ``--json``, the reference's ONNX against tfseg's best
runtime there and what ``best_of_kinds`` would make of tfseg's onnxruntime fp32 time, as a
markdown table; nothing is measured.
"""

import collections
import glob
import json
import os
import re
import tempfile
import time

from absl import app, flags


def define_flags(fv=flags.FLAGS):
    """The script's flags (defined when it runs, so that importing it for its functions, as the
    tests do, leaves the process's flags alone)."""
    flags.DEFINE_list("networks", ["fddwnet", "adscnet", "swiftnet"], "tfseg networks.",
                      flag_values=fv)
    flags.DEFINE_string("input_size", "512x1024", "HxW.", flag_values=fv)
    flags.DEFINE_integer("threads", 2, "intra-op threads of every session.", flag_values=fv)
    flags.DEFINE_integer("warmup", 2, "unprofiled runs first.", flag_values=fv)
    flags.DEFINE_integer("runs", 5, "profiled runs.", flag_values=fv)
    flags.DEFINE_float("dot_speedup", 2.0,
                       "assumed int8 speed-up of dense and 1x1 convolutions for the bound (2: the "
                       "most AVX2's 8-bit multiply-add (vpmaddubsw) gives over fp32 FMAs).",
                       flag_values=fv)
    flags.DEFINE_string("json", None,
                        "write the split here (with --summary: read it from here).",
                        flag_values=fv)
    flags.DEFINE_string("summary", None, "a reference_compare.py --json file: print the table "
                        "that joins it with --json instead of measuring.", flag_values=fv)


FLAGS = flags.FLAGS

KINDS = ("dense conv", "1x1 conv", "depthwise conv", "grouped conv", "transposed conv", "resize",
         "pooling", "quantize/dequantize", "layout", "element-wise", "other")
DOT_KINDS = ("dense conv", "1x1 conv")
FUSABLE = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Add", "Sum"}
CONV_OPS = {"Conv", "FusedConv", "NchwcConv", "QLinearConv", "ConvInteger"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Clip",
               "Tanh", "HardSigmoid", "HardSwish", "Max", "Min", "Sum", "Neg", "Abs", "Exp",
               "QLinearAdd", "QLinearMul", "QLinearLeakyRelu", "QLinearSigmoid", "Softmax",
               "Pow", "Sqrt", "Erf", "Gelu", "FastGelu", "BiasGelu", "QuickGelu"}
POOLING = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "NchwcMaxPool",
           "NchwcAveragePool", "NchwcGlobalAveragePool", "NchwcGlobalMaxPool", "QLinearAveragePool",
           "QLinearGlobalAveragePool", "ReduceMean", "ReduceMax"}
LAYOUT = {"ReorderInput", "ReorderOutput", "Transpose", "Reshape", "Concat", "Slice", "Split",
          "QLinearConcat", "Squeeze", "Unsqueeze", "Flatten", "Gather", "Pad", "DepthToSpace",
          "SpaceToDepth", "Identity"}


def conv_kinds(proto):
    """{node name: kind} for the convolutions of an ONNX model, from their weights (an
    initializer, or the initializer a DequantizeLinear reads) and ``group`` attribute."""
    shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    dequantized = {n.output[0]: n.input[0] for n in proto.graph.node
                   if n.op_type == "DequantizeLinear"}
    kinds = {}
    for n in proto.graph.node:
        if n.op_type not in ("Conv", "ConvTranspose") or len(n.input) < 2:
            continue
        w = shapes.get(n.input[1]) or shapes.get(dequantized.get(n.input[1], ""))
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if n.op_type == "ConvTranspose":
            kinds[n.name] = "transposed conv"
        elif w is None or len(w) != 4:
            kinds[n.name] = "dense conv"
        elif group > 1:
            kinds[n.name] = "depthwise conv" if w[1] == 1 else "grouped conv"
        else:
            kinds[n.name] = "1x1 conv" if w[2] * w[3] == 1 else "dense conv"
        kinds[n.output[0]] = kinds[n.name]
    # ORT's NCHWc kernels are named after their output tensor, which is the fused activation's
    # or sum's where one was fused into the convolution
    for n in proto.graph.node:
        if n.op_type in FUSABLE and n.output[0] not in kinds:
            conv = next((kinds[i] for i in n.input if i in kinds), None)
            if conv is not None:
                kinds[n.output[0]] = conv
    return kinds


def kind_of(op, node, convs):
    """The kind (one of KINDS) of one profiled kernel: its op type, and for a convolution the
    kind ``convs`` gives the node it came from (ORT names fused kernels after the node, with a
    ``_token_N`` suffix; NCHWc ones after their output tensor, with ``_nchwc``)."""
    if op in CONV_OPS:
        return convs.get(re.sub(r"(_nchwc)?(_token_\d+)?$", "", node), "dense conv")
    if op in ("ConvTranspose", "QLinearConvTranspose"):
        return "transposed conv"
    if op in ("Resize", "Upsample", "QLinearResize"):
        return "resize"
    if op in POOLING:
        return "pooling"
    if op in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
        return "quantize/dequantize"
    if op in LAYOUT:
        return "layout"
    if op in ELEMENTWISE:
        return "element-wise"
    return "other"


def profile(proto, x, threads, warmup, runs):
    """``({kind: ms per run}, {op type: ms per run}, wall ms per run)`` for one ONNX model."""
    import onnx
    import onnxruntime as ort

    data = proto if isinstance(proto, bytes) else proto.SerializeToString()
    convs = conv_kinds(onnx.load_from_string(data))
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(data, options,
                                       providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(warmup):
            session.run(None, {name: x})
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(data, options,
                                       providers=["CPUExecutionProvider"])
        session.run(None, {name: x})  # this session's own first run: not counted
        start = time.perf_counter()
        for _ in range(runs):
            session.run(None, {name: x})
        wall = (time.perf_counter() - start) * 1e3 / runs
        session.end_profiling()
        (path,) = glob.glob(os.path.join(tmp, "ort*.json"))
        with open(path) as f:
            events = json.load(f)
    node_events = [e for e in events if e.get("cat") == "Node"
                   and e.get("name", "").endswith("_kernel_time")]
    # The first run's events come first; keep the last ``runs`` runs' worth.
    per_run = len(node_events) // (runs + 1)
    node_events = node_events[-per_run * runs:] if per_run else []
    kinds, ops = collections.Counter(), collections.Counter()
    for e in node_events:
        args = e.get("args", {})
        op = args.get("op_name", "?")
        ms = e["dur"] / 1e3 / runs
        kinds[kind_of(op, e["name"][: -len("_kernel_time")], convs)] += ms
        ops[op] += ms
    return dict(kinds), dict(ops), wall


def amdahl_bound(kinds, speedup):
    """fp32 time over the time with the dot-product kinds ``speedup`` times faster."""
    total = sum(kinds.values())
    dot = sum(kinds.get(k, 0.0) for k in DOT_KINDS)
    return total / (total - dot + dot / speedup) if total else 1.0


def best_of_kinds(fp32, int8):
    """fp32 kernels' sum over the sum of each kind's faster time (fp32 or int8), plus the int8
    form's quantize / dequantize time."""
    conversions = "quantize/dequantize"
    mixed = sum(min(fp32.get(k, 0.0), int8.get(k, 0.0)) for k in KINDS if k != conversions)
    mixed += int8.get(conversions, 0.0)
    return sum(fp32.values()) / mixed if mixed else 1.0


def _gain(fp32, int8, kind):
    """fp32 over int8 time of one kind ("-" below half a millisecond of fp32 time)."""
    if fp32.get(kind, 0.0) < 0.5 or not int8.get(kind):
        return "-"
    return f"{fp32[kind] / int8[kind]:.2f}x"


def summary_table(split, reference):
    """Markdown rows joining an op_breakdown JSON with a reference_compare JSON (see the module
    docstring)."""
    rows = {r["network"]: r for r in reference["rows"]}
    lines = ["| network | reference ONNX ms | tfseg best ms (runtime) | best vs ref ONNX | "
             "onnxruntime fp32 ms | int8 speed-up per kind: dense / 1x1 / depthwise | "
             "share of fp32 time: dot kinds / depthwise / other | best of kinds | "
             "fp32 with best of kinds vs ref ONNX |",
             "|---|---|---|---|---|---|---|---|---|"]
    for net, entry in split["networks"].items():
        row = rows.get(net)
        if row is None or "reference_onnx" not in row.get("median_ms", {}):
            continue
        med = row["median_ms"]
        tfseg = {k: v for k, v in med.items() if not k.startswith("reference")}
        best = min(tfseg, key=tfseg.get)
        fp32, int8 = entry["fp32"]["kinds_ms"], entry["int8"]["kinds_ms"]
        total = sum(fp32.values())

        dot = sum(fp32.get(k, 0.0) for k in DOT_KINDS) / total
        dw = fp32.get("depthwise conv", 0.0) / total
        mixed = best_of_kinds(fp32, int8)
        lines.append(
            f"| `{net}` | {med['reference_onnx']:.0f} | {tfseg[best]:.0f} ({best}) | "
            f"{med['reference_onnx'] / tfseg[best]:.2f}x | {med['onnxruntime']:.0f} | "
            f"{' / '.join(_gain(fp32, int8, k) for k in DOT_KINDS + ('depthwise conv',))} | "
            f"{dot:.0%} / {dw:.0%} / {1 - dot - dw:.0%} | {mixed:.2f}x | "
            f"{med['reference_onnx'] / (med['onnxruntime'] / mixed):.2f}x |")
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.summary:
        with open(FLAGS.json) as f, open(FLAGS.summary) as g:
            print(summary_table(json.load(f), json.load(g)))
        return
    import onnxruntime as ort

    from tfseg.arrays import parse_size
    from tfseg.bench.measure import _model_at
    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.cpuinfo import cpu_description
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx
    from tfseg.files import write_json_atomic

    size = parse_size(FLAGS.input_size, "--input_size")
    doc = {"cpu": cpu_description(), "onnxruntime": ort.__version__, "threads": FLAGS.threads,
           "input_size": FLAGS.input_size, "runs": FLAGS.runs, "dot_speedup": FLAGS.dot_speedup,
           "networks": {}}
    print(doc["cpu"], "onnxruntime", ort.__version__)
    for net in FLAGS.networks:
        model, run_size = _model_at(net, None, 19, size, None, None, True)
        proto = convert_onnx(export_copy(model, {}, "onnx"), opset=17, input_shape=(1, *run_size))
        cal = calibration_inputs(run_size)
        entry = {}
        for form, p in (("fp32", proto), ("int8", quantize_onnx(proto, cal))):
            kinds, ops, wall = profile(p, cal[0], FLAGS.threads, FLAGS.warmup, FLAGS.runs)
            entry[form] = {"kinds_ms": kinds, "ops_ms": ops, "wall_ms": wall}
        entry["amdahl"] = amdahl_bound(entry["fp32"]["kinds_ms"], FLAGS.dot_speedup)
        entry["best_of_kinds"] = best_of_kinds(entry["fp32"]["kinds_ms"],
                                               entry["int8"]["kinds_ms"])
        doc["networks"][net] = entry
        print(f"\n{net}: fp32 {entry['fp32']['wall_ms']:.1f} ms, int8 "
              f"{entry['int8']['wall_ms']:.1f} ms, amdahl with {FLAGS.dot_speedup:g}x dot "
              f"kinds: {entry['amdahl']:.2f}x, best of kinds {entry['best_of_kinds']:.2f}x")
        for kind in KINDS + ("between",):
            vals = []
            for form in ("fp32", "int8"):
                e = entry[form]
                vals.append(e["wall_ms"] - sum(e["kinds_ms"].values()) if kind == "between"
                            else e["kinds_ms"].get(kind, 0.0))
            if any(abs(v) >= 0.05 for v in vals):
                print(f"  {kind:20s} {vals[0]:8.1f} {vals[1]:8.1f}")
        for form in ("fp32", "int8"):
            top = sorted(entry[form]["ops_ms"].items(), key=lambda kv: -kv[1])[:8]
            print(f"  {form} ops:", ", ".join(f"{k} {v:.1f}" for k, v in top))
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    define_flags()
    app.run(main)
