"""tfseg against the PyTorch reference zoo (zh320/realtime-semantic-segmentation-pytorch), side by
side on this CPU: the reference's eager latency, its own ONNX export in onnxruntime, and tfseg's
runtimes on tfseg's model of the same network (issue 22).

    PYTHONPATH=. python experiments/reference_compare.py --reference_dir=/path/to/checkout \
        --networks=enet,erfnet,espnet --out=docs/zoo.md --json=docs/reference_compare.json

Nothing of the reference is copied: its ``models/`` files are imported one by one from
``--reference_dir`` (one that cannot import costs only its own row). Batch 1, random weights, whose
BatchNorm statistics (``--bn_statistics``, on by default) both sides set from one training-mode
pass over the 4 random-normal calibration images: with BN's initial statistics the activations of
a random Keras network shrink layer by layer (``tfseg.models.batchnorm``), and an int8 export
calibrated on such activations is not the export of any trained network. The
reference in eval mode under ``torch.inference_mode()`` on NCHW; its ONNX export (see
``export_reference``) in tfseg's ``OnnxRunner``; tfseg's runtimes via ``make_runner`` on NHWC; all
timed in alternating rounds (``time_interleaved``), median over rounds. A candidate that cannot be
built or run gets its reason in the section, never a crash of the run.
"""

import copy
import gc
import importlib
import inspect
import io
import json
import os
import shutil
import sys
import tempfile
import types
import warnings

import numpy as np
from absl import app, flags

START, END = "<!-- reference-compare:start -->", "<!-- reference-compare:end -->"
EAGER, ONNX = "reference_eager", "reference_onnx"
GOALS = {EAGER: 3.0, ONNX: 2.0}  # issue 22: tfseg best >= 3x eager, >= 2x the reference's ONNX


def define_flags(fv=flags.FLAGS):
    """Define the program's flags in ``fv``."""
    for kind, name, default, text in [
        ("string", "reference_dir", None, "Checkout of the reference zoo (holds models/)."),
        ("list", "networks", [], "tfseg names (default: every network both have)."),
        ("string", "input_size", "512x1024", "HxW of every candidate."),
        ("integer", "threads", 2, "CPU threads for every candidate."),
        ("integer", "rounds", 10, "Timed rounds (each calls every candidate once)."),
        ("integer", "warmup", 3, "Untimed calls per candidate."),
        ("integer", "num_classes", 19, "Classes of every model."),
        ("list", "tfseg_runtimes", ["onnxruntime", "tflite", "tflite_int8"],
         "tfseg runtimes to time (names of tfseg.bench.runtimes.RUNTIMES)."),
        ("string", "out", None, "Markdown file: its reference-compare section is replaced."),
        ("string", "json", None, "JSON file of every raw timing."),
        ("string", "section", "reference-compare", "Name of the --out section's markers "
         "(<!-- NAME:start --> ... <!-- NAME:end -->): one table per CPU or CPUID profile."),
        ("bool", "merge", False, "Keep the --json rows of networks not measured in this run "
         "(same CPU, size and threads; this run may time more runtimes: older rows show '-')."),
        ("bool", "isolate", False, "Measure each network in its own child process (same flags), "
         "so that memory left behind by one network's runtimes cannot starve the next (a "
         "37-network run in one process was killed for memory at SegNet, its 20th); a child "
         "that dies costs only its own row."),
    ]:
        getattr(flags, f"DEFINE_{kind}")(name, default, text, flag_values=fv)
    flags.DEFINE_bool("bn_statistics", True,
                      "Set the BatchNorm statistics of both networks (random weights) from one "
                      "batch of the 4 random-normal calibration images before timing, as "
                      "training would (tfseg.models.batchnorm); --nobn_statistics keeps BN's "
                      "initial ones.", flag_values=fv)
    flags.DEFINE_enum("reference_exporter", "auto", ["auto", "dynamo", "torchscript"],
                      "torch.onnx.export mode: auto (dynamo, else TorchScript), dynamo, or "
                      "torchscript (opset 11, the reference's own).", flag_values=fv)


def reference_name(name):
    """The reference's ``model_hub`` key of tfseg's ``name`` (``lite_hrnet`` -> ``litehrnet``)."""
    return name.replace("_", "")


#: torchvision's detection operators, whose schemas its Python code registers fake kernels for
TORCHVISION_OPS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def import_torchvision():
    """Import torchvision even where its compiled operators did not load (a CUDA wheel on a CPU
    machine: ``RuntimeError: operator torchvision::nms does not exist``). The reference uses only
    its model definitions (ResNet and MobileNet backbones, plain ``torch.nn``); the detection
    operators' schemas are then declared without kernels, so calling one would fail loudly.
    Returns what was done, for the JSON (``None``: torchvision is absent; the rows that need it
    say so)."""
    import torch

    try:
        import torchvision  # noqa: F401
        return "loaded"
    except ImportError:
        return None
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[key]
    for op, schema in TORCHVISION_OPS.items():
        try:
            torch.library.define(f"torchvision::{op}", schema)
        except RuntimeError:
            pass  # declared already (by torchvision itself or an earlier call)
    import torchvision  # noqa: F401,F811

    return "loaded without its compiled operators (detection ops declared, no kernels)"


def load_reference(reference_dir):
    """``(model_hub, failed, modules)``: the reference's classes by name, ``{name: reason}`` for
    its model files that cannot be imported, and its ``models.modules`` (or ``None``)."""
    registry = os.path.join(reference_dir or "", "models", "model_registry.py")
    if not os.path.isfile(registry):
        raise app.UsageError(f"--reference_dir={reference_dir!r} is not a checkout of the "
                             "reference zoo: it has no models/model_registry.py")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise app.UsageError("the reference needs torch (pip install torch)") from None
    import_torchvision()
    for key in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
        del sys.modules[key]  # another reference directory loaded before
    package = types.ModuleType("models")  # the package without its __init__ (imports every file)
    package.__path__ = [os.path.join(os.path.abspath(reference_dir), "models")]
    sys.modules["models"] = package
    hub = importlib.import_module("models.model_registry").model_hub
    failed, modules = {}, None
    for fname in sorted(os.listdir(package.__path__[0])):
        stem = fname[:-3]
        if not fname.endswith(".py") or stem in ("__init__", "model_registry"):
            continue
        try:
            module = importlib.import_module(f"models.{stem}")
            modules = module if stem == "modules" else modules
        except Exception as e:  # noqa: BLE001  (the row shows it)
            failed[reference_name(stem)] = f"models/{fname}: {_short(e)}"
    no_pretrained_downloads()
    return hub, failed, modules


def no_pretrained_downloads():
    """Make the reference's backbone classes default to ``pretrained=False``: their constructors
    download ImageNet weights (``pretrained=True``), which an offline machine cannot, and every
    row is timed with random weights anyway. Returns the ``module.Class`` names changed."""
    changed = []
    for key, module in list(sys.modules.items()):
        if not key.startswith("models.") or module is None:
            continue
        for cls_name, cls in vars(module).items():
            if not isinstance(cls, type) or cls.__module__ != key:
                continue  # not a class, or one imported from elsewhere
            init = cls.__init__
            defaults = getattr(init, "__defaults__", None)
            code = getattr(init, "__code__", None)
            if not defaults or code is None:
                continue
            names = code.co_varnames[: code.co_argcount]
            if "pretrained" not in names[len(names) - len(defaults):]:
                continue
            i = names.index("pretrained") - (len(names) - len(defaults))
            if defaults[i] is True:
                init.__defaults__ = defaults[:i] + (False,) + defaults[i + 1:]
                changed.append(f"{key}.{cls_name}")
    return changed


def _short(e):
    """``Type: first line`` of an exception, at most 160 characters."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:160]


def networks_to_run(requested, hub, failed):
    """The tfseg names to compare: ``requested`` (each checked) or every network both have."""
    from tfseg.registry import MODELS

    both = [n for n in MODELS.names() if reference_name(n) in hub or reference_name(n) in failed]
    unknown = [n for n in requested if n not in both]
    if unknown:
        raise app.UsageError(f"--networks: {unknown} not in both tfseg and the reference; "
                             f"choose from {both}")
    return list(requested) or both


def check_runtimes(runtimes):
    """Fail up front on a runtime name ``make_runner`` does not know."""
    from tfseg.bench.runtimes import RUNTIMES

    known = [r for r in RUNTIMES if r != "none"]
    unknown = [r for r in runtimes if r not in known]
    if unknown or not runtimes:
        raise app.UsageError(f"--tfseg_runtimes: unknown {unknown}; choose from {known}")


def build_reference(cls, num_classes):
    """The reference network in eval mode, auxiliary / detail heads off where it has them."""
    params = inspect.signature(cls).parameters
    extra = {k: False for k in ("use_aux", "use_detail_head") if k in params}
    return cls(num_class=num_classes, **extra).eval()


def reference_bn_statistics(net, images):
    """Set ``net``'s BatchNorm running statistics to those of one training-mode pass over
    ``images`` (N, C, H, W numpy), as ``tfseg.models.batchnorm.recalibrate_batchnorm`` does for
    tfseg's model; ``net`` is left in eval mode, its momenta as they were."""
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: after one batch, its statistics
        net.train()
        with torch.no_grad():
            net(torch.from_numpy(np.ascontiguousarray(images)))
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
        net.eval()
    return len(bns)


def _dynamo(net, x):
    """ONNX bytes from torch's dynamo exporter (torch 2.13's default; needs ``onnxscript``)."""
    import torch

    program = torch.onnx.export(net, (x,), dynamo=True, verbose=False)
    opset = {o.domain: o.version for o in program.model_proto.opset_import}.get("")
    return program.model_proto.SerializeToString(), f"dynamo, opset {opset}"


def _torchscript(net, x):
    """ONNX bytes from the TorchScript exporter at opset 11, as the reference's tools/export.py."""
    import torch

    buffer = io.BytesIO()
    torch.onnx.export(net, (x,), buffer, opset_version=11, dynamo=False,
                      input_names=["input"], output_names=["output"])
    return buffer.getvalue(), "TorchScript, opset 11"


def export_reference(net, x, modules, mode="auto"):
    """``(onnx bytes, exporter used)`` of a copy of ``net`` with the reference's own
    ``replace_adaptive_avg_pool``: ``mode`` dynamo, torchscript, or auto (dynamo, else TorchScript:
    in torch 2.13 it fails on ENet's max_unpool2d)."""
    net = copy.deepcopy(net)
    if modules is not None and hasattr(modules, "replace_adaptive_avg_pool"):
        net = modules.replace_adaptive_avg_pool(net)
    errors = []
    for name in ["dynamo", "torchscript"] if mode == "auto" else [mode]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return {"dynamo": _dynamo, "torchscript": _torchscript}[name](net, x)
        except Exception as e:  # noqa: BLE001  (the row shows it)
            errors.append(f"{name}: {_short(e)}")
    raise RuntimeError("; ".join(errors))


def _add(runners, reasons, key, build):
    """Build candidate ``key`` (a no-argument callable), call it once, and keep it; on failure
    keep its reason instead."""
    try:
        fn = build()
        fn()
        runners[key] = fn
    except Exception as e:  # noqa: BLE001  (the row shows it)
        reasons[key] = _short(e)


def measure_network(name, hub, failed, modules, size, opts):
    """One row: every candidate of network ``name`` timed in alternating rounds."""
    import keras
    import torch

    import tfseg
    from tfseg.arrays import padded_size
    from tfseg.bench.runtimes import calibration_inputs, make_runner
    from tfseg.export_lib.onnx_export import OnnxRunner
    from tfseg.models import stride_of
    from tfseg.models.batchnorm import recalibrate_batchnorm
    from tfseg.timing import SETTLE_S, time_interleaved

    ref = reference_name(name)
    row = {"network": name, "reference": ref, "input_size": f"{size[0]}x{size[1]}", "reasons": {},
           "settle_s": SETTLE_S, "bn_statistics": bool(opts.bn_statistics)}
    runners, reasons = {}, row["reasons"]
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    workdir = tempfile.mkdtemp(prefix="tfseg_refcmp_")
    try:
        net = None
        if ref in hub:
            try:
                net = build_reference(hub[ref], opts.num_classes)
                if opts.bn_statistics:
                    images = np.concatenate(calibration_inputs(size)).transpose(0, 3, 1, 2)
                    reference_bn_statistics(net, images)
            except Exception as e:  # noqa: BLE001  (the row shows it)
                reasons[EAGER] = reasons[ONNX] = f"building the reference: {_short(e)}"
        if net is not None:

            def eager():
                with torch.inference_mode():
                    return net(x)

            _add(runners, reasons, EAGER, lambda: eager)

            def onnx():
                data, row["onnx_exporter"] = export_reference(net, x, modules,
                                                            opts.reference_exporter)
                runner, xn = OnnxRunner(data, threads=opts.threads), x.numpy()
                return lambda: runner(xn)

            _add(runners, reasons, ONNX, onnx)
        elif ref not in hub:
            reasons[EAGER] = reasons[ONNX] = failed[ref]
        run_size = padded_size(size, stride_of(name))
        if run_size != tuple(size):
            row["tfseg_input_size"] = f"{run_size[0]}x{run_size[1]}"
        model = tfseg.build_model(name, opts.num_classes, input_shape=(*run_size, 3))
        if opts.bn_statistics:
            recalibrate_batchnorm(model, [np.concatenate(calibration_inputs(run_size))])
        xt = np.transpose(x.numpy(), (0, 2, 3, 1))
        xt = np.pad(xt, [(0, 0), (0, run_size[0] - size[0]), (0, run_size[1] - size[1]), (0, 0)])
        cache = {}
        for runtime in opts.tfseg_runtimes:
            def build(runtime=runtime):
                fn = make_runner(runtime, model, run_size, threads=opts.threads, workdir=workdir,
                                 cache=cache)
                return lambda: fn(xt)

            _add(runners, reasons, runtime, build)
        times = time_interleaved(runners, warmup=opts.warmup, runs=opts.rounds)
        row["times_ms"] = {k: [1e3 * t for t in v] for k, v in times.items()}
    finally:
        runners.clear()
        shutil.rmtree(workdir, ignore_errors=True)
        keras.backend.clear_session()
        gc.collect()
    return summarize(row, opts.tfseg_runtimes)


def summarize(row, runtimes):
    """Add the medians, tfseg's best runtime and its ratios against the reference to ``row``."""
    med = {k: float(np.median(v)) for k, v in row.get("times_ms", {}).items()}
    row["median_ms"] = med
    ours = {r: med[r] for r in runtimes if r in med}
    row["best"] = min(ours, key=ours.get) if ours else None
    for key, goal in GOALS.items():
        ratio = med[key] / ours[row["best"]] if row["best"] and key in med else None
        row[f"best_vs_{key}"] = ratio
        row[f"goal_{key}"] = None if ratio is None else ratio >= goal
    return row


def markdown(doc):
    """The section: settings, the table, the reasons and caveats."""
    runtimes = doc["tfseg_runtimes"]
    commands = sorted({r["command"] for r in doc["rows"]})
    settle = max(r.get("settle_s", 0) for r in doc["rows"]) if doc["rows"] else 0
    lines = [
        f"CPU: {doc['cpu']}; {doc['threads']} threads; batch 1, 3x{doc['input_size']}, random "
        "weights (BatchNorm statistics of both networks set by one training-mode pass over the "
        "4 random-normal calibration images, `--bn_statistics`, except where a note says "
        f"otherwise), median of {doc['rounds']} alternating rounds, each timed call after "
        f"{settle:g} s of untimed calls of the same candidate; torch {doc['torch']}, "
        f"onnxruntime {doc['onnxruntime']}"
        + (f", openvino {doc['openvino']} (int8: nncf {doc['nncf']})" if doc.get("openvino")
           else "")
        + f"; torch with OMP_WAIT_POLICY={doc['omp_wait_policy']}. "
        "Measured with:", "",
        *[f"    {c}" for c in commands], "",
        "| network | reference eager ms | reference ONNX ms | "
        + " | ".join(f"tfseg {r} ms" for r in runtimes)
        + " | tfseg best | best vs eager | best vs ref ONNX | >= 3x eager | >= 2x ref ONNX |",
        "|---" * (8 + len(runtimes)) + "|",
    ]
    notes, untimed = [], {}
    for r in sorted(doc["rows"], key=lambda r: r["network"]):
        med = r["median_ms"]
        cell = [f"{med[k]:.0f}" if k in med else "-" for k in (EAGER, ONNX, *runtimes)]
        best = f"{med[r['best']]:.0f} ({r['best']})" if r["best"] else "-"
        ratios = [f"{r[f'best_vs_{k}']:.2f}x" if r[f"best_vs_{k}"] else "-" for k in GOALS]
        goals = [{True: "yes", False: "no", None: "-"}[r[f"goal_{k}"]] for k in GOALS]
        lines.append(f"| `{r['network']}` | " + " | ".join(cell + [best] + ratios + goals) + " |")
        notes += [f"- `{r['network']}` {k}: {why}" for k, why in r["reasons"].items()]
        if r.get("onnx_exporter"):
            notes.append(f"- `{r['network']}` reference ONNX exporter: {r['onnx_exporter']}")
        if r.get("settle_s", 0) != settle:
            notes.append(f"- `{r['network']}` timed with {r.get('settle_s', 0):g} s of settling "
                         "calls (an older run: the candidate after an onnxruntime session "
                         "paid for its spinning threads)")
        for k in runtimes:
            if k not in r.get("times_ms", {}) and k not in r["reasons"]:
                untimed.setdefault(k, []).append(f"`{r['network']}`")
        if not r.get("bn_statistics"):
            notes.append(f"- `{r['network']}` timed with BN's initial statistics (an older run, "
                         "or `--nobn_statistics`)")
        if r.get("tfseg_input_size"):
            notes.append(f"- `{r['network']}` tfseg runs at {r['tfseg_input_size']} (its stride)")
    notes += [f"- not timed with {k} (older runs, before it joined the table): {', '.join(v)}"
              for k, v in untimed.items()]
    caveat = ("tflite_int8 latencies here are calibrated on random inputs: they measure speed "
              "only; whether an int8 model is accurate enough is judged by "
              "`tfseg.export --verify`.")
    return "\n".join(lines + [""] + notes + ["", caveat]) + "\n"


def write_section(path, section, name=None):
    """Replace the text between START and END in ``path`` (appended when it has none); ``name``
    gives other markers (``<!-- NAME:start -->``, ``<!-- NAME:end -->``)."""
    from tfseg.files import atomic_path

    start, end = (START, END) if name is None else (f"<!-- {name}:start -->",
                                                    f"<!-- {name}:end -->")
    text = open(path).read() if os.path.exists(path) else ""
    block = f"{start}\n{section}{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def merged_rows(rows, doc, path):
    """``rows`` plus the ``--json`` rows of networks not measured now (same CPU and settings)."""
    if not (path and os.path.exists(path)):
        return rows
    with open(path) as f:
        old = json.load(f)
    keys = ("cpu", "input_size", "threads")
    if any(old.get(k) != doc[k] for k in keys) or not set(old.get("tfseg_runtimes", ())) <= set(
            doc["tfseg_runtimes"]):
        raise app.UsageError(f"--merge: {path} was measured with other settings "
                             f"{ {k: old.get(k) for k in (*keys, 'tfseg_runtimes')} } (runtimes "
                             "may only be added)")
    done = {r["network"] for r in rows}
    return rows + [r for r in old["rows"] if r["network"] not in done]


def command_line(names, opts):
    """The command that measures ``names`` with this run's settings (the checkout path left out)."""
    args = [f"--networks={','.join(names)}", f"--input_size={opts.input_size}",
            f"--threads={opts.threads}", f"--rounds={opts.rounds}", f"--warmup={opts.warmup}",
            f"--tfseg_runtimes={','.join(opts.tfseg_runtimes)}",
            f"--reference_exporter={opts.reference_exporter}"]
    if not opts.bn_statistics:
        args.append("--nobn_statistics")
    if opts.section != "reference-compare":
        args.append(f"--section={opts.section}")
    from tfseg.cpuinfo import isa_profile

    # under tfseg.bench.isa the same command needs the same CPUID profile
    prefix = f"python -m tfseg.bench.isa --isa={isa_profile()} -- " if isa_profile() else ""
    return (prefix + "python experiments/reference_compare.py --reference_dir=CHECKOUT "
            + " ".join(args))


def child_argv(name, json_path, opts):
    """The command measuring network ``name`` alone in a child process (``--isolate``): this
    script with the run's own flags, writing its JSON document to ``json_path``. Under
    ``tfseg.bench.isa`` the child inherits the CPUID mask (``LD_PRELOAD``)."""
    own = flags.FlagValues()
    define_flags(own)
    forced = {"networks": [name], "json": json_path, "out": None, "merge": False, "isolate": False}
    args = []
    for flag_name in own:
        value = forced.get(flag_name, opts[flag_name].value)
        if value is None:
            continue
        own[flag_name].value = value
        args.append(own[flag_name].serialize())
    return [sys.executable, os.path.abspath(__file__), *args]


def measure_isolated(name, opts):
    """Network ``name``'s row, measured by a child process (``child_argv``); a child that fails
    gives a row whose ``reasons`` say how it ended."""
    import subprocess

    work = tempfile.mkdtemp(prefix="tfseg_refcmp_child_")
    path = os.path.join(work, "row.json")
    try:
        done = subprocess.run(child_argv(name, path, opts), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        if done.returncode == 0 and os.path.exists(path):
            with open(path) as f:
                (row,) = json.load(f)["rows"]
            return summarize(row, opts.tfseg_runtimes)
        how = (f"signal {-done.returncode}" if done.returncode < 0
               else f"exit status {done.returncode}")
        if done.returncode in (-9, 137):
            how += " (killed: out of memory?)"
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:]
        why = f"the child process measuring it ended with {how}" + (
            f": {last[0].strip()[:300]}" if last else "")
        from tfseg.timing import SETTLE_S

        return summarize({"network": name, "reference": reference_name(name),
                          "input_size": opts.input_size, "reasons": {"all": why},
                          "settle_s": SETTLE_S, "bn_statistics": bool(opts.bn_statistics)},
                         opts.tfseg_runtimes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(opts):
    """Measure, write ``--json`` and the ``--out`` section; returns the JSON document."""
    # torch's OpenMP threads spin while they wait: on a loaded machine that costs it several times
    # its latency (ENet, 2 threads: 0.4-4 s against 70 ms passive). Passive waiting is fair to it.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    import logging

    import onnxruntime
    import torch

    import tfseg  # noqa: F401  (fills the registries)
    from tfseg.config import parse_size
    from tfseg.cpuinfo import cpu_description
    from tfseg.files import write_json_atomic

    check_runtimes(opts.tfseg_runtimes)
    size = parse_size(opts.input_size, "--input_size")
    torchvision_state = import_torchvision()  # before load_reference, which needs it too
    hub, failed, modules = load_reference(opts.reference_dir)
    names = networks_to_run(opts.networks, hub, failed)
    torch.set_num_threads(opts.threads)
    for noisy in ("onnxscript", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    command = command_line(names, opts)
    doc = {"cpu": cpu_description(), "input_size": f"{size[0]}x{size[1]}",
           "threads": opts.threads, "rounds": opts.rounds, "warmup": opts.warmup,
           "tfseg_runtimes": list(opts.tfseg_runtimes), "torch": torch.__version__,
           "onnxruntime": onnxruntime.__version__,
           "omp_wait_policy": policy, "torchvision": torchvision_state}
    if any(r.startswith("openvino") for r in opts.tfseg_runtimes):
        import importlib.metadata as md

        doc["openvino"] = md.version("openvino")
        doc["nncf"] = md.version("nncf")
    rows = []
    doc["rows"] = merged_rows(rows, doc, opts.json) if opts.merge else rows
    for name in names:
        if opts.isolate and len(names) > 1:
            row = measure_isolated(name, opts)
        else:
            row = measure_network(name, hub, failed, modules, size, opts)
        rows.append({**row, "command": command})
        print(json.dumps({k: rows[-1][k] for k in ("network", "median_ms", "best", "reasons")}),
              flush=True)
        doc["rows"] = merged_rows(rows, doc, opts.json) if opts.merge else rows
        if opts.json:  # after every network: a run killed midway keeps the rows it measured
            write_json_atomic(opts.json, doc)
    if opts.json:
        write_json_atomic(opts.json, doc)
    if opts.out:
        write_section(opts.out, markdown(doc),
                      None if opts.section == "reference-compare" else opts.section)
        print(f"wrote {opts.out}")
    return doc


def main(argv):
    del argv
    run(flags.FLAGS)


if __name__ == "__main__":
    define_flags()
    app.run(main)
