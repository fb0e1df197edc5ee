"""Export library behind ``python -m tfseg.export`` (TensorFlow-specific).

Modules:
- ``pipeline``: ``ExportOptions``, ``check_options``, ``run_export`` (the whole procedure);
- ``graph``: BatchNorm folding and the export copy of a model, op name -> Keras layer;
- ``saved_model``, ``tflite``, ``onnx_export``: one converter (and runner) per format;
- ``onnx_layout``: clean-up of tf2onnx's layout transposes (channel shuffles on the NCHW tensor,
  upsamplings on the NHWC one);
- ``onnx_int8``: onnxruntime's int8 (QDQ) quantization of the ONNX file;
- ``targets``: deployment targets and the TensorRT 8.2 / 8.5 ONNX op allow-lists;
- ``samples``: calibration / verification images from tfseg's data pipeline;
- ``verify``: artifact-vs-Keras figures and thresholds.

The TensorRT engine builder and runner live in ``tfseg.deploy`` (standalone, for the Jetsons).
"""

from tfseg.export_lib.errors import ExportError, VerificationError
from tfseg.export_lib.graph import inference_model, layer_for_op
from tfseg.export_lib.pipeline import (
    FORMATS,
    PRECISIONS,
    ExportOptions,
    check_options,
    run_export,
)
from tfseg.export_lib.targets import TARGETS, TENSORRT_ONNX_OPS
from tfseg.export_lib.verify import THRESHOLDS

__all__ = [
    "FORMATS",
    "PRECISIONS",
    "TARGETS",
    "TENSORRT_ONNX_OPS",
    "THRESHOLDS",
    "ExportError",
    "ExportOptions",
    "VerificationError",
    "check_options",
    "inference_model",
    "layer_for_op",
    "run_export",
]
