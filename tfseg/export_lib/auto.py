"""``tfseg.export --format=auto --target=cpu``: the fastest CPU artifact that passes ``--verify``.

Every candidate (runtime x precision) is exported exactly as its own ``tfseg.export`` command
would do it, verified against the Keras model on dataset images with that precision's
thresholds (``verify.THRESHOLDS``: the accuracy guard, always on here), and those that pass are
timed on this machine at batch 1 and the export size, interleaved round by round (so load from
other processes hits every candidate alike). The fastest one is published at ``--output`` with
its format's extension; the others are discarded.

Candidates (``CANDIDATES``), limited by ``--precision`` = the lowest precision the user accepts
(``int8`` allows all, ``fp32`` only the float ones):

- ``tflite`` fp32: LiteRT with XNNPACK;
- ``tflite`` int8: full-integer LiteRT, calibrated on ``--calibration_steps`` train images;
- ``tflite`` int8 with the class-score layers in float (``--int8_float_layers=scores``): the
  per-layer fallback, which keeps more argmax agreement where plain int8 does not pass;
- ``onnx`` fp32 and ``onnx`` int8 (QDQ, ``onnx_int8``) on onnxruntime's CPU provider;
- ``onnx`` int8 with the max pooling and concatenation of ENet / ERFNet-style downsamplers in
  float (``--int8_float_layers=downsamplers``): faster for some networks, slower for others
  (docs/results.md), so measured; skipped ("not applicable") for a model without them;
- ``openvino`` fp32 and int8 (NNCF): the OpenVINO IR folder (``openvino_export``), where the
  ``openvino`` and ``nncf`` packages are installed (else the candidate fails with that reason);
- ``openvino`` bf16: the fp32 IR run in bfloat16, on a CPU with AVX-512 BF16 or AMX ("not
  applicable" elsewhere). Slower than int8 where int8 passes, but it loses less: the candidate
  that wins when int8 fails the guard, or when ``--precision=bf16`` rules int8 out.

fp16 LiteRT is not a candidate: on x86 its weights are expanded to fp32 at load time, so it is
never faster than fp32 (pass ``--format=tflite --precision=fp16`` for the smaller file).

Written: the artifact (``<output stem>.tflite``, ``.onnx`` or the folder ``<output
stem>_openvino``), its ``.report.json`` (the chosen candidate's export report plus an ``auto``
section) and ``<output stem>.auto.json`` (the same
``auto`` section: every candidate's verification figures, timings and why it was or was not
chosen). Exit status as ``tfseg.export``: 2 when no candidate passes (nothing published).
"""

import dataclasses
import os
import shutil
import tempfile

import numpy as np

from tfseg.export_lib.errors import ExportError, NotApplicable, VerificationError

# (name, format, precision, int8_float_layers)
CANDIDATES = (
    ("tflite_fp32", "tflite", "fp32", ""),
    ("tflite_int8", "tflite", "int8", ""),
    ("tflite_int8_scores_float", "tflite", "int8", "scores"),
    ("onnx_fp32", "onnx", "fp32", ""),
    ("onnx_int8", "onnx", "int8", ""),
    ("onnx_int8_downsamplers_float", "onnx", "int8", "downsamplers"),
    ("openvino_fp32", "openvino", "fp32", ""),
    ("openvino_bf16", "openvino", "bf16", ""),
    ("openvino_int8", "openvino", "int8", ""),
)
# the OpenVINO IR is a folder (model.xml + model.bin): ``<output stem>_openvino/``
EXTENSIONS = {"tflite": ".tflite", "onnx": ".onnx", "openvino": "_openvino"}
# bf16 keeps 8 significant bits against fp16's 11: below fp16, above int8
_RANK = {"fp32": 0, "fp16": 1, "bf16": 2, "int8": 3}


def candidates_for(lowest_precision):
    """The candidates whose precision is at least ``lowest_precision``
    (fp32 > fp16 > bf16 > int8)."""
    if lowest_precision not in _RANK:
        raise ExportError(f"unknown precision {lowest_precision!r}; choose from {list(_RANK)}")
    return [c for c in CANDIDATES if _RANK[c[2]] <= _RANK[lowest_precision]]


def output_stem(output):
    """``output`` without a ``.tflite`` / ``.onnx`` extension (the chosen format adds its own)."""
    stem, ext = os.path.splitext(output)
    return stem if ext.lower() in (".tflite", ".onnx") else output


def _verification_line(v):
    return (
        f"agreement {100 * v['argmax_agreement']:.2f}%, mIoU "
        f"{_pct(v['miou_keras'])} -> {_pct(v['miou_artifact'])}"
    )


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.2f}"


def run_auto(o, *, warmup=3, runs=10, log=print):
    """Export, verify and time every candidate of ``o`` (an ``ExportOptions`` with
    ``format="auto"``); publish the fastest that passes. Returns the chosen export report (with
    its ``auto`` section); raises ``VerificationError`` when none passes, ``ExportError`` for bad
    input (nothing published in either case)."""
    from tfseg.export_lib.pipeline import check_options, run_export
    from tfseg.files import write_json_atomic
    from tfseg.timing import latency_stats, time_interleaved

    check_options(o)
    stem = output_stem(o.output)
    parent = os.path.dirname(os.path.abspath(stem))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".tfseg_auto_", dir=parent)
    entries, reports = [], {}
    try:
        for name, fmt, precision, float_layers in candidates_for(o.precision):
            path = os.path.join(work, name + EXTENSIONS[fmt])
            sub = dataclasses.replace(
                o, format=fmt, precision=precision, int8_float_layers=float_layers,
                verify=True, output=path,
            )  # fmt: skip
            entry = {"candidate": name, "format": fmt, "precision": precision,
                     "int8_float_layers": float_layers}  # fmt: skip
            log(f"--- candidate {name}")
            try:
                reports[name] = run_export(sub, log=log)
                entry["verification"] = reports[name]["verification"]
                entry["passed"] = True
            except NotApplicable as e:
                entry["passed"] = False
                entry["reason"] = f"not applicable: {e}"
                entry["not_applicable"] = True
            except VerificationError as e:
                entry["verification"] = e.report.get("verification")
                entry["passed"] = False
                entry["reason"] = str(e)
            except ExportError as e:
                if name == CANDIDATES[0][0]:
                    raise  # the plain fp32 export failing is the user's problem, not a candidate's
                entry["passed"] = False
                entry["reason"] = f"export failed: {e}"
            entries.append(entry)
        passed = [e for e in entries if e["passed"]]
        if passed:
            _time(passed, reports, work, o, warmup, runs, latency_stats, time_interleaved)
        auto = _summary(entries, o, warmup, runs)
        if not passed:
            write_json_atomic(stem + ".auto.json", auto)
            raise VerificationError(
                "no candidate passed verification: "
                + "; ".join(f"{e['candidate']}: {e.get('reason', '')}" for e in entries),
                auto,
            )
        best = min(passed, key=lambda e: e["latency"]["median_ms"])
        best["chosen"] = True
        auto["chosen"] = best["candidate"]
        final = stem + EXTENSIONS[best["format"]]
        report = reports[best["candidate"]]
        report.update(output=os.path.abspath(final), auto=auto)
        if os.path.isdir(final) and not os.path.islink(final):
            shutil.rmtree(final)  # an older IR folder of the same output, as atomic_path does
        os.replace(os.path.join(work, best["candidate"] + EXTENSIONS[best["format"]]), final)
        write_json_atomic(final + ".report.json", report)
        auto["artifact"] = os.path.abspath(final)
        write_json_atomic(stem + ".auto.json", auto)
        log(
            f"chose {best['candidate']}: {best['latency']['median_ms']:.1f} ms "
            f"({_verification_line(best['verification'])}) -> {final}"
        )
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _time(passed, reports, work, o, warmup, runs, latency_stats, time_interleaved):
    """Time the passing candidates interleaved at the export size; fill each ``latency``."""
    shape = reports[passed[0]["candidate"]]["input_shape"]
    x = np.random.default_rng(0).standard_normal((1, *shape[1:]), dtype=np.float32)
    from tfseg.export_lib.artifacts import open_artifact

    runners = {
        e["candidate"]: open_artifact(
            os.path.join(work, e["candidate"] + EXTENSIONS[e["format"]]), o.threads).runner
        for e in passed
    }  # fmt: skip
    times = time_interleaved(runners, x, warmup=warmup, runs=runs)
    for e in passed:
        e["latency"] = latency_stats(times[e["candidate"]])
        e["artifact_bytes"] = reports[e["candidate"]]["artifact_bytes"]
    runners.clear()


def _summary(entries, o, warmup, runs):
    """The ``auto`` section of the reports."""
    from tfseg.cpuinfo import cpu_description

    return {
        "lowest_precision": o.precision,
        "cpu": cpu_description(),
        "threads": o.threads,
        "timing": f"batch 1, median of {runs} interleaved rounds after {warmup} warm-up calls",
        "candidates": entries,
        "chosen": None,
    }
