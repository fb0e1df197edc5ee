"""SavedModel -> TF-TRT (``tfseg.export --format=tftrt``).

TF-TRT exists only where TensorFlow ships it: NVIDIA's TensorFlow builds for Jetson (JetPack) and
its GPU containers, and CUDA wheels up to TF 2.17. The pinned TF 2.21 wheels are built without it,
so there the export is refused up front with the ONNX -> TensorRT route (``--format=onnx``, then
``--format=tensorrt`` or ``tfseg/deploy/build_engine.py`` on the board).
"""

import shutil
import tempfile

from tfseg.export_lib.errors import ExportError

PRECISION_MODES = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}


def tftrt_available():
    """True where this TensorFlow was built with TensorRT."""
    import tensorflow as tf

    return bool(tf.sysconfig.get_build_info().get("is_tensorrt_build", False))


def require_tftrt():
    """Raise an ExportError pointing to the ONNX route where TF-TRT is missing."""
    if not tftrt_available():
        import tensorflow as tf

        raise ExportError(
            f"--format=tftrt needs a TensorFlow built with TensorRT; this TensorFlow "
            f"{tf.__version__} is not (TF 2.18 and later dropped TF-TRT; it existed in CUDA "
            "builds up to TF 2.17). Use --format=onnx, then --format=tensorrt or "
            "tfseg/deploy/build_engine.py, instead."
        )


def convert_tftrt(model, output, *, precision, size, batch, stride, spec=None,
                  calibration_split="val", calibration_steps=8, report=None):  # pragma: no cover
    """Write ``model`` as a TF-TRT SavedModel at ``output``; returns a runner of it.

    Only reachable where ``tftrt_available()`` (see ``require_tftrt``); int8 calibrates on
    ``calibration_steps`` images of ``spec``'s ``calibration_split``.
    """
    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    from tfseg.export_lib.saved_model import SavedModelRunner, write_saved_model

    if precision not in PRECISION_MODES:
        raise ExportError(f"--format=tftrt: unknown precision {precision!r}")
    mode = PRECISION_MODES[precision]
    work = tempfile.mkdtemp(prefix="tfseg_tftrt_")
    try:
        write_saved_model(model, work + "/sm", input_size=size, batch_size=batch, stride=stride)
        converter = trt.TrtGraphConverterV2(
            input_saved_model_dir=work + "/sm", precision_mode=mode, use_calibration=mode == "INT8"
        )
        if mode == "INT8":
            from tfseg.export_lib.samples import calibration_images

            images = calibration_images(
                spec, calibration_split, steps=calibration_steps,
                input_size=size if size[0] else None, stride=stride,
            )  # fmt: skip
            converter.convert(calibration_input_fn=lambda: ((x,) for x in images))
        else:
            converter.convert()
        converter.save(output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if report is not None:
        report["tftrt"] = {"precision_mode": mode}
    return SavedModelRunner(output)
