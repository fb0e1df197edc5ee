"""Export a model: ``python -m tfseg.export --model_path=M --format=F --output=PATH [--verify]``.

Formats: ``saved_model`` (float and uint8 serving signatures), ``tflite`` (fp32 / fp16 / int8,
built-in ops only, runs with ai-edge-litert), ``onnx`` (opset and op allow-list of the
``--target``; fp32, or int8 QDQ for onnxruntime on CPUs), ``openvino`` (an OpenVINO IR folder,
``model.xml`` + ``model.bin``, for x86 CPUs; fp32, bf16 on CPUs with AVX-512 BF16 or AMX, or
int8 quantized by NNCF), ``auto``
(``--target=cpu`` only: exports, verifies and times LiteRT, onnxruntime and OpenVINO candidates
in fp32, bf16 (OpenVINO, where the CPU has bf16 units) and int8 on this machine and keeps
the fastest that passes ``--verify``'s thresholds; ``--precision`` is then the lowest precision
allowed, default int8; see ``tfseg/export_lib/auto.py``), ``tensorrt`` (ONNX -> engine where
TensorRT is installed), ``tftrt`` (only on a
TensorFlow built with TensorRT, i.e. TF <= 2.17 CUDA builds). Writes the artifact at ``--output``
and ``<output>.report.json`` (op types, opset, BatchNorm folding, verification figures).

Exit status: 0 done; 1 bad input or an export that cannot be done (nothing written at --output);
2 ``--verify`` below the thresholds (artifact not written, report written with "passed": false).

Examples::

    python -m tfseg.export --model_path=runs/quickstart/model.keras --format=tflite \\
        --precision=fp16 --input_size=512x1024 --output=saved_models/quickstart_fp16.tflite --verify
    python -m tfseg.export --model_path=runs/quickstart/model.keras --format=onnx --target=tx2 \\
        --input_size=512x1024 --output=saved_models/quickstart_tx2.onnx --verify
    python -m tfseg.export --model_path=runs/quickstart/model.keras --format=auto --target=cpu \\
        --input_size=512x1024 --output=saved_models/quickstart_cpu
"""

import json
import sys

from absl import app, flags

from tfseg.export_lib.pipeline import FORMATS, PRECISIONS
from tfseg.export_lib.targets import TARGETS

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    flags.DEFINE_string("model_path", None, "A tfseg .keras model.", flag_values=fv)
    flags.DEFINE_enum("format", "saved_model", FORMATS, "Artifact format.", flag_values=fv)
    flags.DEFINE_enum(
        "precision",
        "fp32",
        PRECISIONS,
        "Numeric precision. With --format=auto: the lowest precision it may choose (default "
        "there: int8, every candidate; each must pass --verify's thresholds).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "target",
        "generic",
        list(TARGETS),
        "Deployment target: generic (dynamic H/W, opset 17), tx2 (TensorRT 8.2, opset 13, static, "
        "batch 1), xavier (TensorRT 8.5, opset 17, static, batch 1).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "input_size",
        None,
        "HxW the artifact is built for (multiples of the model's stride); default: the model's "
        "own static size, else dynamic (generic target only).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "output", None, "Artifact path (file, or folder for SavedModels and OpenVINO IRs).",
        flag_values=fv,
    )
    flags.DEFINE_bool("verify", False, "Compare the artifact with the Keras model.", flag_values=fv)
    flags.DEFINE_integer("verify_images", 20, "Images for --verify.", lower_bound=1, flag_values=fv)
    flags.DEFINE_string(
        "dataset",
        None,
        "Dataset for int8 calibration and --verify (default: the run's config.json next to the "
        "model, else synthetic).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        "Dataset root (default: from config.json or data/<dataset>).",
        flag_values=fv,
    )
    flags.DEFINE_string("dataset_options", None, "Dataset options as JSON.", flag_values=fv)
    flags.DEFINE_string("verify_split", "val", "Split --verify reads.", flag_values=fv)
    flags.DEFINE_string(
        "calibration_split", "train", "Split int8 calibration reads.", flag_values=fv
    )
    flags.DEFINE_integer(
        "calibration_steps", 100, "Images for int8 calibration.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_integer(
        "threads",
        None,
        "CPU threads of the runtimes used by --verify.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "workspace_mb", 1024, "TensorRT builder workspace (MiB).", lower_bound=16, flag_values=fv
    )
    flags.DEFINE_string(
        "int8_float_layers",
        "",
        "int8 only: parts kept in float32 (selective quantisation). tflite: 'scores', the "
        "class-score path (the layers with num_classes output channels that lead only through "
        "such layers to the output), where 8 bits cost the most argmax agreement; or "
        "comma-separated layer names / fnmatch patterns. onnx: 'downsamplers', the max pooling "
        "and concatenation of ENet / ERFNet-style downsamplers (faster in onnxruntime for some "
        "networks, slower for others; --format=auto measures it).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "auto_runs", 10, "--format=auto: timed rounds per candidate.", lower_bound=1,
        flag_values=fv,
    )  # fmt: skip
    flags.mark_flags_as_required(["model_path", "output"], flag_values=fv)


def options_from_flags(fv=FLAGS):
    """The ``ExportOptions`` of the parsed flags (raises ExportError / ValueError for bad
    values)."""
    from tfseg.config import parse_size
    from tfseg.export_lib.pipeline import ExportOptions

    dataset_options = None
    if fv.dataset_options:
        dataset_options = json.loads(fv.dataset_options)
        if not isinstance(dataset_options, dict):
            raise ValueError(f"--dataset_options must be a JSON object, got {fv.dataset_options!r}")
    return ExportOptions(
        model_path=fv.model_path,
        output=fv.output,
        format=fv.format,
        precision=fv.precision
        if fv.format != "auto" or fv["precision"].present
        else "int8",
        target=fv.target,
        input_size=parse_size(fv.input_size, "--input_size") if fv.input_size else None,
        verify=fv.verify,
        verify_images=fv.verify_images,
        dataset=fv.dataset,
        data_dir=fv.data_dir,
        dataset_options=dataset_options,
        verify_split=fv.verify_split,
        calibration_split=fv.calibration_split,
        calibration_steps=fv.calibration_steps,
        threads=fv.threads,
        workspace_mb=fv.workspace_mb,
        int8_float_layers=fv.int8_float_layers,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfseg.export_lib import (
        ExportError,
        VerificationError,
        check_options,
        run_export,
    )

    try:
        options = options_from_flags()
        check_options(options)
        if options.format == "auto":
            from tfseg.export_lib.auto import run_auto

            report = run_auto(options, runs=FLAGS.auto_runs)
        else:
            report = run_export(options)
    except VerificationError as e:
        print(f"error: {e}", file=sys.stderr)
        if FLAGS.format == "auto":
            from tfseg.export_lib.auto import output_stem

            figures = output_stem(FLAGS.output) + ".auto.json"
        else:
            figures = FLAGS.output + ".report.json"
        print(f"error: {FLAGS.output} was not written; figures in {figures}", file=sys.stderr)
        sys.exit(2)
    except (ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(
        f"wrote {report['output']} ({report['artifact_bytes']:,} bytes) and "
        f"{report['output']}.report.json"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
