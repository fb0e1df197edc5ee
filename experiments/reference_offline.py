"""``reference_compare.py`` on a CPU without TensorFlow: pack the artifacts here, time them there.

The side-by-side of ``experiments/reference_compare.py`` (issue 22) builds tfseg's artifacts with
TensorFlow. Another CPU may have only Python, torch and numpy (the lent GPU machine has no
TensorFlow and no network), so the work is split in two:

    # here (TensorFlow, torch, onnx): tfseg's fp32 and int8 ONNX and int8 TFLite, the reference's
    # ONNX
    PYTHONPATH=. python experiments/reference_offline.py --pack=PACK --reference_dir=CHECKOUT \
        --networks=enet,erfnet,espnet
    # there (torch, onnxruntime, ai-edge-litert, numpy; no TensorFlow, no Keras):
    PYTHONPATH=. python experiments/reference_offline.py --time=PACK --reference_dir=CHECKOUT \
        --json=cpu2.json --out=docs/zoo.md --section=reference-offline

The ONNX files are packed without their weights, to fit a transfer limit: each initializer of
1 kB or more is moved to external data, and the pack records its place, dtype, mean, standard
deviation and range instead; ``--time`` writes a new weights file with values drawn from a normal
distribution of the same mean and deviation, clipped to the range (so that the int8 file's
per-channel scales stay positive; integers: uniformly in the same range) before onnxruntime loads
the model. Latency does not depend on the values of random weights, so the timings stand for the
packed models'. tfseg's int8 ONNX (QDQ, as ``tfseg.export --format=onnx --precision=int8``
writes it; onnxruntime's MLAS int8 kernels have AVX-512 VNNI and AMX code paths) travels the
same way; its ``reduce_range`` (7-bit weights) is decided by the packing CPU, recorded in the
manifest, and does not change which kernels run. The int8 TFLite file travels whole (its weights
are 1 byte each). The reference's eager model is built there from its checkout with random
weights, as in ``reference_compare.py``; with ``--bn_statistics`` (default) both networks get their
BatchNorm statistics from the calibration images as there (before the files are written, and
the reference's eager model's at ``--time``). The candidates are timed in alternating rounds
(``tfseg.timing.time_interleaved``); the table has ``reference_compare.py``'s columns.
"""

import json
import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

#: the tfseg runtimes packed: onnxruntime on tfseg's fp32 and int8 (QDQ) ONNX, LiteRT on its int8
#: TFLite
RUNTIMES = ("onnxruntime", "onnxruntime_int8", "tflite_int8")
FILE_SUFFIX = {"onnxruntime": "tfseg.onnx", "onnxruntime_int8": "tfseg_int8.onnx",
               "tflite_int8": "tfseg_int8.tflite"}
MANIFEST = "manifest.json"
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
               10: "float16", 11: "float64"}


def define_flags(fv=flags.FLAGS):
    """Define the program's flags in ``fv``."""
    for kind, name, default, text in [
        ("string", "pack", None, "Write the artifacts of --networks into this folder (needs "
                                 "TensorFlow)."),
        ("string", "time", None, "Time the pack in this folder (needs no TensorFlow)."),
        ("string", "reference_dir", None, "Checkout of the reference zoo (holds models/)."),
        ("list", "networks", [], "tfseg names (--pack; --time: default every packed one)."),
        ("list", "runtimes", list(RUNTIMES), "tfseg candidates to pack (--pack; a subset keeps "
                                             "the pack small: the int8 TFLite travels whole)."),
        ("string", "input_size", "512x1024", "HxW (--pack)."),
        ("integer", "num_classes", 19, "Classes of every model (--pack)."),
        ("integer", "threads", 2, "CPU threads for every candidate (--time)."),
        ("integer", "rounds", 10, "Timed rounds (--time)."),
        ("integer", "warmup", 3, "Untimed calls per candidate (--time)."),
        ("float", "time_budget_s", None, "Start no new network after this many seconds (--time)."),
        ("string", "json", None, "JSON file of every raw timing (--time; rewritten after each "
                                 "network)."),
        ("string", "out", None, "Markdown file whose --section is replaced (--time)."),
        ("string", "section", "reference-offline", "Name of the section markers in --out."),
    ]:
        getattr(flags, f"DEFINE_{kind}")(name, default, text, flag_values=fv)
    flags.DEFINE_enum("reference_exporter", "auto", ["auto", "dynamo", "torchscript"],
                      "torch.onnx.export mode of the reference (--pack), as in "
                      "reference_compare.py.", flag_values=fv)
    flags.DEFINE_bool("bn_statistics", True,
                      "As reference_compare.py's: BatchNorm statistics of both networks from one "
                      "training-mode pass over the 4 random-normal calibration images (--pack "
                      "sets them before writing the files and records it; --time sets the "
                      "reference's eager model's). Redrawn ONNX weights lose them, but small "
                      "tensors stay, and the int8 TFLite file travels whole.",
                      flag_values=fv)


def _compare():
    """``experiments/reference_compare.py`` as a module (the scripts are not a package)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_compare.py")
    spec = importlib.util.spec_from_file_location("tfseg_experiments_reference_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- weights
def strip_onnx(data, path, min_bytes=1024):
    """Write the ONNX model ``data`` (bytes) to ``path`` without its weights; returns the list of
    removed tensors ``{name, offset, length, dtype, shape, mean, std | low, high}``."""
    import onnx
    from onnx import external_data_helper, numpy_helper

    model = onnx.load_from_string(data)
    stats = {}
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.nbytes >= min_bytes:
            if values.dtype.kind == "f":
                stats[init.name] = {"mean": float(values.mean()), "std": float(values.std()),
                                    "min": float(values.min()), "max": float(values.max())}
            else:
                stats[init.name] = {"low": int(values.min()), "high": int(values.max())}
    weights = os.path.basename(path) + ".weights"
    external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location=weights, size_threshold=min_bytes)
    onnx.save_model(model, path)
    removed = []
    for init in onnx.load(path, load_external_data=False).graph.initializer:
        info = {e.key: e.value for e in init.external_data}
        if info.get("location") != weights:
            continue
        removed.append({"name": init.name, "offset": int(info.get("offset", 0)),
                        "length": int(info["length"]), "dtype": ONNX_DTYPES[init.data_type],
                        "shape": list(init.dims), **stats[init.name]})
    if removed:  # no weights file is written when no tensor is large enough
        os.remove(os.path.join(os.path.dirname(path), weights))
    return removed


def restore_weights(path, removed, folder, seed=0):
    """Copy the stripped ONNX model at ``path`` into ``folder`` with a new weights file (values
    drawn as the module docstring says); returns the path of the copy."""
    rng = np.random.default_rng(seed)
    weights = os.path.basename(path) + ".weights"
    size = max((t["offset"] + t["length"] for t in removed), default=0)
    buffer = bytearray(size)
    for t in removed:
        dtype = np.dtype(t["dtype"])
        count = t["length"] // dtype.itemsize
        if dtype.kind == "f":
            values = rng.normal(t["mean"], t["std"], count)
            if "min" in t:  # packs made before the range was recorded have none
                values = np.clip(values, t["min"], t["max"])
            values = values.astype(dtype)
        else:
            values = rng.integers(t["low"], t["high"] + 1, count).astype(dtype)
        buffer[t["offset"]:t["offset"] + t["length"]] = values.tobytes()
    copy = os.path.join(folder, os.path.basename(path))
    with open(path, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(folder, weights), "wb") as f:
        f.write(bytes(buffer))
    return copy


# ----------------------------------------------------------------------------- pack
def write_candidate(key, model, run_size, cache, file):
    """Write tfseg's artifact for runtime ``key`` to ``file`` as ``tfseg.bench.runtimes`` makes it
    (int8: calibrated on its 4 random-normal inputs); returns what the manifest keeps of it."""
    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx
    from tfseg.export_lib.tflite import convert_tflite

    precision = "int8" if key.endswith("_int8") else "fp32"
    if key == "tflite_int8":
        content = convert_tflite(export_copy(model, cache, "tflite", precision),
                                 input_size=run_size, precision=precision,
                                 representative=calibration_inputs(run_size))
        with open(file, "wb") as f:
            f.write(content)
        return {}
    proto = convert_onnx(export_copy(model, cache, "onnx", precision), opset=17,
                         input_shape=(1, *run_size))
    if key == "onnxruntime":
        return {"removed": strip_onnx(proto.SerializeToString(), file)}
    info = {}
    data = quantize_onnx(proto, calibration_inputs(run_size), info=info)
    return {"removed": strip_onnx(data, file), "reduce_range": info["reduce_range"]}


def pack(opts):
    """Write the artifacts of ``opts.networks`` and the manifest into ``opts.pack``."""
    import torch

    import tfseg
    from tfseg.arrays import padded_size, parse_size
    from tfseg.bench.runtimes import calibration_inputs
    from tfseg.cpuinfo import cpu_description
    from tfseg.files import write_json_atomic
    from tfseg.models import stride_of
    from tfseg.models.batchnorm import recalibrate_batchnorm

    rc = _compare()
    if not opts.networks:
        raise app.UsageError("--pack needs --networks")
    unknown = [r for r in opts.runtimes if r not in RUNTIMES]
    if unknown or not opts.runtimes:
        raise app.UsageError(f"--runtimes: {unknown or 'none given'}; choose from {list(RUNTIMES)}")
    size = parse_size(opts.input_size, "--input_size")
    hub, failed, modules = rc.load_reference(opts.reference_dir)
    names = rc.networks_to_run(opts.networks, hub, failed)
    os.makedirs(opts.pack, exist_ok=True)
    path = os.path.join(opts.pack, MANIFEST)
    manifest = {"packed_on": cpu_description(), "input_size": f"{size[0]}x{size[1]}",
                "num_classes": opts.num_classes, "networks": {}}
    if os.path.exists(path):
        with open(path) as f:
            manifest["networks"] = json.load(f)["networks"]
    ref_images = np.concatenate(calibration_inputs(size)).transpose(0, 3, 1, 2)  # NCHW
    for name in names:
        ref = rc.reference_name(name)
        entry = {"reference": ref, "files": {}, "reasons": {}}
        x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
        try:
            net = rc.build_reference(hub[ref], opts.num_classes)
            if opts.bn_statistics:  # its ONNX as reference_compare exports it
                rc.reference_bn_statistics(net, ref_images)
            data, entry["onnx_exporter"] = rc.export_reference(net, x, modules,
                                                                  opts.reference_exporter)
            file = os.path.join(opts.pack, f"{name}.reference.onnx")
            entry["files"][rc.ONNX] = {"file": os.path.basename(file),
                                       "removed": strip_onnx(data, file)}
        except Exception as e:  # noqa: BLE001  (the row shows it)
            entry["reasons"][rc.ONNX] = rc._short(e)
        run_size = padded_size(size, stride_of(name))
        entry["tfseg_input_size"] = f"{run_size[0]}x{run_size[1]}"
        model = tfseg.build_model(name, opts.num_classes, input_shape=(*run_size, 3))
        entry["bn_statistics"] = bool(opts.bn_statistics)
        if opts.bn_statistics:  # as reference_compare.measure_network
            recalibrate_batchnorm(model, [np.concatenate(calibration_inputs(run_size))])
        cache = {}
        for key in RUNTIMES:
            if key not in opts.runtimes:
                entry["reasons"][key] = "not packed (--runtimes)"
                continue
            file = os.path.join(opts.pack, f"{name}.{FILE_SUFFIX[key]}")
            try:
                entry["files"][key] = {"file": os.path.basename(file),
                                       **write_candidate(key, model, run_size, cache, file)}
            except Exception as e:  # noqa: BLE001  (the row shows it)
                entry["reasons"][key] = rc._short(e)
        manifest["networks"][name] = entry
        write_json_atomic(path, manifest)
        print(json.dumps({"network": name, "files": sorted(entry["files"]),
                          "reasons": entry["reasons"]}), flush=True)
    return manifest


# ----------------------------------------------------------------------------- time
def ort_runner(path, threads):
    """onnxruntime on the CPU with ``tfseg.export_lib.onnx_export.OnnxRunner``'s settings."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name, output = session.get_inputs()[0].name, session.get_outputs()[0].name
    return lambda x: session.run([output], {name: x})[0]


def litert_runner(path, threads):
    """LiteRT (XNNPACK) as ``tfseg.export_lib.tflite.LiteRTRunner``: float input, or a quantised
    one fed with the tensor's scale and zero point."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=int(threads))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]

    def run(x):
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 255).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        return it.get_tensor(out["index"])

    return run


def time_network(name, entry, folder, hub, failed, opts, size):
    """One row of ``reference_compare``'s form: every candidate of ``name`` timed alternately."""
    import torch

    from tfseg.bench.runtimes import calibration_inputs
    from tfseg.timing import time_interleaved

    rc = _compare()
    row = {"network": name, "reference": entry["reference"],
           "input_size": f"{size[0]}x{size[1]}", "reasons": dict(entry["reasons"])}
    if entry.get("onnx_exporter"):
        row["onnx_exporter"] = entry["onnx_exporter"]
    run_size = tuple(int(v) for v in entry["tfseg_input_size"].split("x"))
    if run_size != tuple(size):
        row["tfseg_input_size"] = entry["tfseg_input_size"]
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    xn = x.numpy()
    xt = np.pad(np.transpose(xn, (0, 2, 3, 1)),
                [(0, 0), (0, run_size[0] - size[0]), (0, run_size[1] - size[1]), (0, 0)])
    runners, reasons = {}, row["reasons"]
    row["bn_statistics"] = bool(entry.get("bn_statistics"))  # packs before session 35: none
    ref = entry["reference"]
    if ref in hub:
        try:
            net = rc.build_reference(hub[ref], opts.num_classes)
            if row["bn_statistics"]:  # as reference_compare.measure_network
                images = np.concatenate(calibration_inputs(size)).transpose(0, 3, 1, 2)
                rc.reference_bn_statistics(net, images)

            def eager():
                with torch.inference_mode():
                    return net(x)

            rc._add(runners, reasons, rc.EAGER, lambda: eager)
        except Exception as e:  # noqa: BLE001
            reasons[rc.EAGER] = f"building the reference: {rc._short(e)}"
    else:
        reasons[rc.EAGER] = failed.get(ref, f"{ref} not in the reference's model_hub")
    with tempfile.TemporaryDirectory(prefix="tfseg_offline_") as tmp:
        for key, inputs in ((rc.ONNX, xn), *((k, xt) for k in RUNTIMES)):
            spec = entry["files"].get(key)
            if spec is None:
                continue
            path = os.path.join(folder, spec["file"])

            def build(path=path, spec=spec, inputs=inputs, key=key):
                if key == "tflite_int8":
                    fn = litert_runner(path, opts.threads)
                else:
                    work = tempfile.mkdtemp(dir=tmp)
                    fn = ort_runner(restore_weights(path, spec["removed"], work), opts.threads)
                return lambda: fn(inputs)

            rc._add(runners, reasons, key, build)
        times = time_interleaved(runners, warmup=opts.warmup, runs=opts.rounds)
    row["times_ms"] = {k: [1e3 * t for t in v] for k, v in times.items()}
    return rc.summarize(row, list(RUNTIMES))


def time_pack(opts):
    """Time every network of the pack in ``opts.time``; returns the JSON document."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as reference_compare.run
    os.environ.setdefault("KERAS_BACKEND", "torch")  # tfseg's package imports Keras: not on TF
    import onnxruntime
    import torch

    from tfseg.cpuinfo import cpu_description
    from tfseg.files import write_json_atomic

    if sys.modules.get("tensorflow") is not None:
        raise app.UsageError("--time imports no TensorFlow; something imported it first")
    rc = _compare()
    path = os.path.join(opts.time, MANIFEST)
    if not os.path.isfile(path):
        raise app.UsageError(f"--time={opts.time!r} holds no {MANIFEST} (make it with --pack)")
    with open(path) as f:
        manifest = json.load(f)
    names = list(opts.networks) or list(manifest["networks"])
    unknown = [n for n in names if n not in manifest["networks"]]
    if unknown:
        raise app.UsageError(f"--networks: {unknown} not in the pack; it has "
                             f"{list(manifest['networks'])}")
    rc.import_torchvision()
    hub, failed, _ = rc.load_reference(opts.reference_dir)
    torch.set_num_threads(opts.threads)
    size = tuple(int(v) for v in manifest["input_size"].split("x"))
    command = (f"python experiments/reference_offline.py --time=PACK --reference_dir=CHECKOUT "
               f"--networks={','.join(names)} --threads={opts.threads} --rounds={opts.rounds} "
               f"--warmup={opts.warmup}  (packed on {manifest['packed_on']})")
    doc = {"cpu": cpu_description(), "input_size": manifest["input_size"],
           "threads": opts.threads, "rounds": opts.rounds, "warmup": opts.warmup,
           "tfseg_runtimes": list(RUNTIMES), "torch": torch.__version__,
           "onnxruntime": onnxruntime.__version__,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
           "weights": "ONNX weights redrawn with each tensor's mean and std", "rows": []}
    start = time.perf_counter()
    for name in names:
        if opts.time_budget_s is not None and time.perf_counter() - start > opts.time_budget_s:
            print(f"time budget spent: stopped before {name}", flush=True)
            break
        row = time_network(name, manifest["networks"][name], opts.time, hub, failed, opts, size)
        doc["rows"].append({**row, "command": command})
        print(json.dumps({k: row[k] for k in ("network", "median_ms", "best", "reasons")}),
              flush=True)
        if opts.json:
            write_json_atomic(opts.json, doc)
    if opts.out:
        rc.write_section(opts.out, rc.markdown(doc), name=opts.section)
        print(f"wrote {opts.out}")
    return doc


def main(argv):
    del argv
    opts = flags.FLAGS
    if bool(opts.pack) == bool(opts.time):
        raise app.UsageError("give exactly one of --pack=DIR and --time=DIR")
    if opts.pack:
        pack(opts)
    else:
        time_pack(opts)


if __name__ == "__main__":
    define_flags()
    app.run(main)
