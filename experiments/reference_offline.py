"""``reference_compare.py`` on a CPU without TensorFlow: pack the artifacts here, time them there.

The side-by-side of ``experiments/reference_compare.py`` (issue 22) builds tfseg's artifacts with
TensorFlow. Another CPU may have only Python, torch and numpy (the lent GPU machine has no
TensorFlow and no network), so the work is split in two:

    # here (TensorFlow, torch, onnx, openvino, nncf): tfseg's fp32 and int8 ONNX, int8 TFLite
    # and fp32 and int8 OpenVINO IR, the reference's ONNX
    PYTHONPATH=. python experiments/reference_offline.py --pack=PACK --reference_dir=CHECKOUT \
        --networks=enet,erfnet,espnet
    # there (torch, onnxruntime, numpy, Keras on the torch backend; ai-edge-litert for
    # tflite_int8, openvino for the openvino* candidates; no TensorFlow):
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
are 1 byte each). The OpenVINO IRs (as ``tfseg.bench.runtimes`` compiles them: the fp32 IR, run
with an f32 hint as ``openvino`` and a bf16 one as ``openvino_bf16``, and NNCF's int8 IR) travel
as their ``.xml`` and the small constants of their ``.bin`` (shapes, axes; ``.kept``); every
constant of 1 kB or more is redrawn the same way. A machine without a network gets OpenVINO's CPU
runtime from ``tools/openvino_carry.sh`` (29 MB). The reference's eager model is built there
from its checkout with random weights, as in ``reference_compare.py``; with ``--bn_statistics``
(default) both networks get their BatchNorm statistics from the calibration images as there
(before the files are written, and the reference's eager model's at ``--time``). The
candidates are timed in alternating rounds (``tfseg.timing.time_interleaved``); the table has
``reference_compare.py``'s columns, one per runtime packed.
"""

import json
import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

#: the tfseg runtimes packed: onnxruntime on tfseg's fp32 and int8 (QDQ) ONNX, LiteRT on its int8
#: TFLite, OpenVINO on its fp32 IR (in float32 and, ``openvino_bf16``, in bfloat16) and int8 IR
RUNTIMES = ("onnxruntime", "onnxruntime_int8", "tflite_int8", "openvino", "openvino_int8",
            "openvino_bf16")
FILE_SUFFIX = {"onnxruntime": "tfseg.onnx", "onnxruntime_int8": "tfseg_int8.onnx",
               "tflite_int8": "tfseg_int8.tflite", "openvino": "tfseg_openvino.xml",
               "openvino_int8": "tfseg_openvino_int8.xml",
               "openvino_bf16": "tfseg_openvino.xml"}  # the fp32 IR, run with a bf16 hint
#: OpenVINO's inference precision hint per runtime (``openvino_export.OpenVINORunner``'s)
OPENVINO_HINTS = {"openvino": "f32", "openvino_int8": "f32", "openvino_bf16": "bf16"}
MANIFEST = "manifest.json"
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
               10: "float16", 11: "float64"}
#: OpenVINO IR element types whose constants can be redrawn (others travel whole)
IR_DTYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "i8": "int8", "u8": "uint8",
             "i16": "int16", "u16": "uint16", "i32": "int32", "i64": "int64"}


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
            stats[init.name] = _stats(values)
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


def _stats(values):
    """What the pack keeps of a removed tensor instead of its values."""
    if values.dtype.kind == "f":
        return {"mean": float(values.mean()), "std": float(values.std()),
                "min": float(values.min()), "max": float(values.max())}
    return {"low": int(values.min()), "high": int(values.max())}


def _redrawn(removed, size, rng, buffer=None):
    """``buffer`` (``size`` zero bytes if none) with each removed tensor's bytes drawn anew."""
    buffer = bytearray(size) if buffer is None else buffer
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
    return buffer


def restore_weights(path, removed, folder, seed=0):
    """Copy the stripped ONNX model at ``path`` into ``folder`` with a new weights file (values
    drawn as the module docstring says); returns the path of the copy."""
    weights = os.path.basename(path) + ".weights"
    size = max((t["offset"] + t["length"] for t in removed), default=0)
    buffer = _redrawn(removed, size, np.random.default_rng(seed))
    copy = os.path.join(folder, os.path.basename(path))
    with open(path, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(folder, weights), "wb") as f:
        f.write(bytes(buffer))
    return copy


def _ir_constants(xml):
    """``[(offset, size, element type, shape)]`` of the OpenVINO IR ``xml``'s Const layers, one
    per stored region (the serializer stores equal constants once)."""
    import xml.etree.ElementTree as ET

    regions = {}
    for layer in ET.parse(xml).getroot().iter("layer"):
        data = layer.find("data")
        if layer.get("type") != "Const" or data is None or data.get("offset") is None:
            continue
        key = (int(data.get("offset")), int(data.get("size")))
        shape = [int(d) for d in data.get("shape", "").split(",") if d]
        regions.setdefault(key, (data.get("element_type"), shape))
    return [(o, n, t, shape) for (o, n), (t, shape) in sorted(regions.items())]


def strip_ir(xml, min_bytes=1024):
    """Strip the weights of the OpenVINO IR ``xml`` (and the ``.bin`` beside it): each constant
    of ``min_bytes`` or more of a type in ``IR_DTYPES`` is recorded as ``strip_onnx`` records
    it, the other constants (shapes, axes, small biases) are kept in ``<stem>.kept``, and the
    ``.bin`` is deleted. Returns ``{"removed", "kept", "bin_bytes"}``."""
    bin_path = os.path.splitext(xml)[0] + ".bin"
    with open(bin_path, "rb") as f:
        data = f.read()
    removed, kept, chunks = [], [], []
    for offset, length, etype, shape in _ir_constants(xml):
        dtype = IR_DTYPES.get(etype)
        if dtype and length >= min_bytes and length % np.dtype(dtype).itemsize == 0:
            values = np.frombuffer(data, dtype, length // np.dtype(dtype).itemsize, offset)
            removed.append({"name": f"const@{offset}", "offset": offset, "length": length,
                            "dtype": dtype, "shape": shape, **_stats(values)})
        else:
            kept.append({"offset": offset, "length": length})
            chunks.append(data[offset:offset + length])
    with open(os.path.splitext(xml)[0] + ".kept", "wb") as f:
        f.write(b"".join(chunks))
    os.remove(bin_path)
    return {"removed": removed, "kept": kept, "bin_bytes": len(data)}


def restore_ir(xml, spec, folder, seed=0):
    """Copy the stripped IR ``xml`` into ``folder`` with a ``.bin`` made of its kept constants and
    redrawn weights (``spec``: what ``strip_ir`` returned); returns the path of the copy."""
    stem = os.path.splitext(xml)[0]
    with open(stem + ".kept", "rb") as f:
        kept = f.read()
    buffer = bytearray(spec["bin_bytes"])
    at = 0
    for region in spec["kept"]:
        buffer[region["offset"]:region["offset"] + region["length"]] = \
            kept[at:at + region["length"]]
        at += region["length"]
    if at != len(kept):
        raise ValueError(f"{stem}.kept has {len(kept)} bytes; the manifest lists {at}")
    _redrawn(spec["removed"], len(buffer), np.random.default_rng(seed), buffer)
    copy = os.path.join(folder, os.path.basename(xml))
    with open(xml, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    with open(os.path.splitext(copy)[0] + ".bin", "wb") as f:
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
    if key.startswith("openvino"):
        return write_openvino(key, model, run_size, cache, file)
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


def write_openvino(key, model, run_size, cache, file):
    """The IR that ``tfseg.bench.runtimes.openvino_runner`` compiles for ``key``, written to
    ``file`` (``.xml``) and stripped (``strip_ir``). ``openvino_bf16`` is the fp32 IR: packed with
    ``openvino`` in one run, it is written once."""
    import openvino

    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import convert_onnx

    if key == "openvino_bf16" and ("ir", file) in cache:
        return cache[("ir", file)]
    precision = {"openvino_int8": "int8", "openvino_bf16": "bf16"}.get(key, "fp32")
    proto = convert_onnx(export_copy(model, cache, "openvino", precision), opset=17,
                         input_shape=(1, *run_size), nhwc_upsamplings=False)
    ov_model = ovx.from_onnx(proto)
    if precision == "int8":
        ov_model = ovx.quantize(ov_model, calibration_inputs(run_size))
    openvino.save_model(ov_model, file, compress_to_fp16=False)
    cache[("ir", file)] = strip_ir(file)
    return cache[("ir", file)]


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
            old = json.load(f)
        manifest["networks"] = old["networks"]
        manifest.update({k: old[k] for k in ("openvino", "nncf") if k in old})
    if any(r.startswith("openvino") for r in opts.runtimes):
        try:  # the versions that wrote the IRs, for the table's header
            import nncf
            import openvino

            manifest.update(openvino=openvino.__version__.split("-")[0],
                            nncf=nncf.__version__)
        except ImportError:  # each network's row says what is missing
            pass
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
def runner(key, path, threads):
    """tfseg's own runner of candidate ``key`` on the file ``path`` (``OnnxRunner``,
    ``LiteRTRunner``, ``OpenVINORunner``: importable without TensorFlow), as ``reference_compare``
    times them: the same settings and the same handling of the logits (LiteRT and OpenVINO
    write them into arrays the caller keeps, with no copy). ``openvino_bf16`` on a CPU without
    bfloat16 units is refused (OpenVINO would run it in float32)."""
    if key == "tflite_int8":
        from tfseg.export_lib.tflite import LiteRTRunner

        return LiteRTRunner(path, threads=threads)
    if key.startswith("openvino"):
        from tfseg.export_lib.openvino_export import OpenVINORunner

        hint = OPENVINO_HINTS[key]
        run = OpenVINORunner(path, threads=threads, hint=hint)
        if run.inference_precision != hint:
            raise RuntimeError("no bfloat16 units on this CPU (AVX-512 BF16 or AMX)")
        return run
    from tfseg.export_lib.onnx_export import OnnxRunner

    return OnnxRunner(path, threads=threads)


def time_network(name, entry, folder, hub, failed, opts, size):
    """One row of ``reference_compare``'s form: every candidate of ``name`` timed alternately."""
    import torch

    from tfseg.bench.runtimes import calibration_inputs
    from tfseg.timing import SETTLE_S, time_interleaved

    rc = _compare()
    row = {"network": name, "reference": entry["reference"],
           "input_size": f"{size[0]}x{size[1]}", "reasons": dict(entry["reasons"]),
           "settle_s": SETTLE_S}
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
            if not os.path.exists(path) and key != rc.ONNX:  # tools/offline_trip.sh: no .tflite
                reasons[key] = f"not carried ({spec['file']} is not in the pack folder)"
                continue

            def build(path=path, spec=spec, inputs=inputs, key=key):
                if key.startswith("openvino"):
                    path = restore_ir(path, spec, tempfile.mkdtemp(dir=tmp))
                elif key != "tflite_int8":
                    path = restore_weights(path, spec["removed"], tempfile.mkdtemp(dir=tmp))
                fn = runner(key, path, opts.threads)
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
    # the table's columns: the runtimes packed for at least one of these networks
    columns = [k for k in RUNTIMES if any(k in manifest["networks"][n]["files"] for n in names)]
    doc = {"cpu": cpu_description(), "input_size": manifest["input_size"],
           "threads": opts.threads, "rounds": opts.rounds, "warmup": opts.warmup,
           "tfseg_runtimes": columns, "torch": torch.__version__,
           "onnxruntime": onnxruntime.__version__,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
           "weights": "ONNX and OpenVINO weights redrawn with each tensor's mean and std",
           "rows": []}
    if any(k.startswith("openvino") for k in columns):
        try:  # the header names the runtime's version here and the quantizer's at --pack
            import openvino

            doc.update(openvino=openvino.__version__.split("-")[0],
                       nncf=manifest.get("nncf", "?"))
        except ImportError:  # the rows say it
            pass
    start = time.perf_counter()
    for name in names:
        if opts.time_budget_s is not None and time.perf_counter() - start > opts.time_budget_s:
            print(f"time budget spent: stopped before {name}", flush=True)
            break
        row = time_network(name, manifest["networks"][name], opts.time, hub, failed, opts, size)
        row["reasons"] = {k: v for k, v in row["reasons"].items()
                          if k in columns or k in (rc.EAGER, rc.ONNX)}  # not a column: no note
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
