"""Evaluate a model:
``python -m tfseg.evaluate --model_path=M --dataset=D --data_dir=P --split=val``.

``--model_path`` may also be an exported CPU artifact of ``tfseg.export`` (a ``.tflite`` or
``.onnx`` file, or an OpenVINO IR folder): the deployed model itself is scored, int8 or bf16
included, single scale (``evaluation.evaluate_artifact``; an artifact with a static input size
sees each image resized to it and its logits resized back, as a deployed pipeline would).

Prints the per-class IoU table, mIoU, pixel accuracy, mean class accuracy (and Cityscapes category
IoU); ``--output_json`` writes them; ``--save_predictions=DIR`` writes label PNGs (Cityscapes
labelIds named ``<city>_<seq>_<frame>_leftImg8bit.png`` for Cityscapes-format data) and colour
images.
"""

import json
import sys

from absl import app, flags

import tfseg  # noqa: F401
import tfseg.cli
import tfseg.data  # noqa: F401
from tfseg.cli import define_task_flags, task_options_from_flags
from tfseg.registry import DATASETS, TASKS

POSTPROCESS = ("postprocess",)  # the task options that evaluation uses

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    flags.DEFINE_string(
        "model_path",
        None,
        "A tfseg .keras model (e.g. run_dir/model.keras), or an exported CPU artifact (.tflite, "
        ".onnx, OpenVINO IR folder).",
        flag_values=fv,
    )
    flags.DEFINE_enum("dataset", "synthetic", DATASETS.names(), "Dataset.", flag_values=fv)
    flags.DEFINE_string("data_dir", "data/synthetic", "Dataset root.", flag_values=fv)
    flags.DEFINE_string("dataset_options", "{}", "Dataset options as JSON.", flag_values=fv)
    flags.DEFINE_string("split", "val", "Split to evaluate.", flag_values=fv)
    flags.DEFINE_list(
        "scales", ["1.0"], "Inference scales (multi-scale averaging of softmax).", flag_values=fv
    )
    flags.DEFINE_float(
        "scale",
        1.0,
        "Resize images by this factor first (0.5: Cityscapes at 512x1024).",
        lower_bound=0.05,
        flag_values=fv,
    )
    flags.DEFINE_bool("flip", False, "Also average horizontally flipped inputs.", flag_values=fv)
    flags.DEFINE_integer(
        "max_images", None, "Evaluate at most N images.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_integer(
        "max_pixels",
        None,
        "Predict any (scaled) image larger than this many pixels in overlapping tiles, so that "
        "multi-scale evaluation of large images stays within memory (docs/rgpnet.md).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_string("output_json", None, "Write the scores here.", flag_values=fv)
    flags.DEFINE_string(
        "save_predictions", None, "Write prediction PNGs into this folder.", flag_values=fv
    )
    from tfseg.tasks import all_tasks

    flags.DEFINE_enum(
        "task",
        "semantic",
        TASKS.names(),
        "What to score (the model must have the task's outputs): "
        + "; ".join(f"{task.name}: {task.description}" for task in all_tasks())
        + ".",
        flag_values=fv,
    )
    define_task_flags(fv, POSTPROCESS)
    flags.adopt_module_key_flags(tfseg.cli, flag_values=fv)  # listed by --help
    flags.mark_flag_as_required("model_path", flag_values=fv)


def eval_options(fv):
    """``tfseg.tasks.EvalOptions`` from the flags (scales checked)."""
    from tfseg.tasks import EvalOptions

    scales = tuple(float(s) for s in fv.scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"--scales must be positive numbers, got {fv.scales}")
    return EvalOptions(
        split=fv.split,
        scales=scales,
        flip=fv.flip,
        scale=fv.scale,
        max_images=fv.max_images,
        max_pixels=fv.max_pixels,
        save_predictions=fv.save_predictions,
    )


def load_checked(fv):
    """``(spec, model)``: the dataset and the model, checked to predict its classes."""
    from tfseg.data import get_dataset
    from tfseg.models.saving import load_model

    spec = get_dataset(fv.dataset, fv.data_dir, **json.loads(fv.dataset_options))
    model = load_model(fv.model_path)
    n_out = model.outputs[0].shape[-1]
    if n_out != spec.num_classes:
        raise ValueError(
            f"model {fv.model_path} predicts {n_out} classes but dataset {spec.name!r} has "
            f"{spec.num_classes}"
        )
    return spec, model


def evaluate_artifact(fv):
    """``(result, title)`` of the exported artifact ``fv.model_path`` (semantic, single scale)."""
    from tfseg.data import get_dataset
    from tfseg.evaluation import evaluate_artifact as run
    from tfseg.export_lib.artifacts import open_artifact

    if fv.task != "semantic":
        raise ValueError(f"an exported artifact is scored with --task=semantic, not {fv.task}")
    refused = [name for name, default in (("scales", ["1.0"]), ("flip", False),
                                          ("max_pixels", None)) if fv[name].value != default]
    if refused:
        raise ValueError(
            f"--{' --'.join(refused)} need(s) a .keras model: an exported artifact is scored at "
            "one scale, as it runs when deployed")
    spec = get_dataset(fv.dataset, fv.data_dir, **json.loads(fv.dataset_options))
    artifact = open_artifact(fv.model_path)
    result = run(artifact, spec, fv.split, max_images=fv.max_images,
                 save_predictions=fv.save_predictions, scale=fv.scale)  # fmt: skip
    size = "x".join(map(str, artifact.input_size)) if artifact.input_size else "dynamic size"
    what = f"{artifact.format} {artifact.precision or ''} artifact ({size})".replace("  ", " ")
    return result, f"{what} {fv.model_path} on {spec.name}/{fv.split}"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfseg.export_lib.artifacts import artifact_format
    from tfseg.files import write_json_atomic
    from tfseg.tasks import get_task

    task = get_task(FLAGS.task)
    try:
        if artifact_format(FLAGS.model_path):
            result, title = evaluate_artifact(FLAGS)
        else:
            options = eval_options(FLAGS)
            spec, model = load_checked(FLAGS)
            task_options = task_options_from_flags(FLAGS, task, POSTPROCESS)
            result = task.evaluate(model, spec, options, task_options)
            title = f"{model.name} on {spec.name}/{FLAGS.split}"
    except (ValueError, FileNotFoundError, KeyError, json.JSONDecodeError) as e:  # ExportError too
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(task.report(result, title))
    if FLAGS.output_json:
        write_json_atomic(FLAGS.output_json, result)
        print(f"wrote {FLAGS.output_json}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
