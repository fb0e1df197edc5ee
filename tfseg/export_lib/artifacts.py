"""Open an exported CPU artifact for inference: ``open_artifact(path) -> Artifact``.

The artifacts of ``tfseg.export`` that run on a CPU: a LiteRT file (``.tflite``), an ONNX file
(``.onnx``, onnxruntime) and an OpenVINO IR (its folder, or its ``model.xml``). ``Artifact.runner``
maps float32 NHWC images (normalised as the Keras model's input) to logits; ``input_size`` is the
static (H, W) the artifact was exported for, or None where H and W are dynamic; ``report`` is its
``<path>.report.json`` (written next to it by the export) when there is one, and ``stride`` comes
from it. ``tfseg.evaluate --model_path=ARTIFACT`` scores one on a dataset with this.
"""

import dataclasses
import json
import os

from tfseg.export_lib.errors import ExportError

SUFFIXES = {".tflite": "tflite", ".onnx": "onnx", ".xml": "openvino"}


def artifact_format(path):
    """``"tflite"``, ``"onnx"`` or ``"openvino"`` for an artifact path, None for anything else
    (a ``.keras`` model, a SavedModel folder)."""
    path = os.fspath(path).rstrip("/")
    if os.path.isdir(path):
        return "openvino" if os.path.isfile(os.path.join(path, "model.xml")) else None
    return SUFFIXES.get(os.path.splitext(path)[1].lower())


@dataclasses.dataclass
class Artifact:
    path: str
    format: str
    runner: object
    input_size: tuple | None
    report: dict | None

    @property
    def stride(self):
        """The model's output stride from the export report (None without one)."""
        return (self.report or {}).get("stride")

    @property
    def precision(self):
        return (self.report or {}).get("precision")


def _static(dims):
    """(H, W) of an NHWC input shape whose H and W are fixed positive ints, else None."""
    h, w = dims[1], dims[2]
    ok = all(isinstance(d, int) and d > 0 for d in (h, w))
    return (int(h), int(w)) if ok else None


def open_artifact(path, threads=None):
    """``Artifact`` of the exported file or folder ``path``; ``FileNotFoundError`` or
    ``ExportError`` naming it when it is missing, of an unknown kind, or unreadable."""
    path = os.fspath(path).rstrip("/")
    if not os.path.exists(path):
        raise FileNotFoundError(f"artifact not found: {path}")
    fmt = artifact_format(path)
    if fmt is None:
        raise ExportError(
            f"not a CPU artifact of tfseg.export (a .tflite or .onnx file, or an OpenVINO IR "
            f"folder with model.xml): {path}"
        )
    if fmt == "openvino":
        from tfseg.export_lib.openvino_export import OpenVINORunner

        runner = OpenVINORunner(path, threads=threads)
        shape = runner.compiled.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in shape]
    else:
        with open(path, "rb") as f:
            content = f.read()
        try:
            if fmt == "tflite":
                from tfseg.export_lib.tflite import LiteRTRunner

                runner = LiteRTRunner(content, threads=threads)
                dims = [int(d) for d in runner.interpreter.get_input_details()[0][
                    "shape_signature"]]  # fmt: skip
            else:
                from tfseg.export_lib.onnx_export import OnnxRunner

                runner = OnnxRunner(content, threads=threads)
                dims = list(runner.session.get_inputs()[0].shape)
        except Exception as e:  # noqa: BLE001  (LiteRT and onnxruntime raise their own types)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ExportError(f"cannot load the {fmt} artifact {path}: {first}") from None
    if len(dims) != 4 or dims[3] != 3:
        raise ExportError(f"{path}: expected an NHWC RGB input, got shape {dims}")
    report = None
    folder = os.path.dirname(path) if fmt == "openvino" and not os.path.isdir(path) else path
    report_path = folder + ".report.json"  # the export writes it next to the file or IR folder
    if os.path.isfile(report_path):
        try:
            with open(report_path) as f:
                report = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ExportError(f"corrupt export report {report_path}: {e}") from None
    return Artifact(path, fmt, runner, _static(dims), report)
