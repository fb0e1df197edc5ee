"""Evaluate a model: ``python -m tfseg.evaluate --model_path=M --dataset=D --data_dir=P --split=val``.

Prints the per-class IoU table, mIoU, pixel accuracy, mean class accuracy (and Cityscapes category
IoU); ``--output_json`` writes them; ``--save_predictions=DIR`` writes label PNGs (Cityscapes labelIds
named ``<city>_<seq>_<frame>_leftImg8bit.png`` for Cityscapes-format data) and colour images.
"""

import json
import sys

from absl import app, flags

import tfseg  # noqa: F401
import tfseg.data  # noqa: F401
from tfseg.registry import DATASETS

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    flags.DEFINE_string(
        "model_path", None, "A tfseg .keras model (e.g. run_dir/model.keras).", flag_values=fv
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
    from tfseg.instance.training import define_evaluate_flags

    define_evaluate_flags(fv)  # --task=instance: AP / AP50 (docs/instance.md)
    flags.mark_flag_as_required("model_path", flag_values=fv)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfseg.data import get_dataset
    from tfseg.evaluation import evaluate_model, format_table
    from tfseg.files import write_json_atomic
    from tfseg.models.saving import load_model

    try:
        scales = [float(s) for s in FLAGS.scales]
        if not scales or min(scales) <= 0:
            raise ValueError(f"--scales must be positive numbers, got {FLAGS.scales}")
        options = json.loads(FLAGS.dataset_options)
        spec = get_dataset(FLAGS.dataset, FLAGS.data_dir, **options)
        model = load_model(FLAGS.model_path)
        n_out = model.outputs[0].shape[-1]
        if n_out != spec.num_classes:
            raise ValueError(
                f"model {FLAGS.model_path} predicts {n_out} classes but dataset {spec.name!r} has "
                f"{spec.num_classes}"
            )
        if FLAGS.task == "instance":  # AP / AP50 of the instance head (tfseg.instance)
            from tfseg.instance.training import run_instance_evaluation

            result = run_instance_evaluation(FLAGS, model, spec)
            if FLAGS.output_json:
                write_json_atomic(FLAGS.output_json, result)
                print(f"wrote {FLAGS.output_json}")
            return
        from tfseg.instance.model import semantic_view

        result = evaluate_model(
            semantic_view(model),  # the logits output of a --task=instance model
            spec,
            FLAGS.split,
            scales=scales,
            flip=FLAGS.flip,
            max_images=FLAGS.max_images,
            save_predictions=FLAGS.save_predictions,
            scale=FLAGS.scale,
            max_pixels=FLAGS.max_pixels,
        )
    except (ValueError, FileNotFoundError, KeyError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(format_table(result, title=f"{model.name} on {spec.name}/{FLAGS.split}"))
    print(f"{result['seconds']:.1f}s, {result['num_images'] / result['seconds']:.2f} images/s")
    if FLAGS.output_json:
        write_json_atomic(FLAGS.output_json, result)
        print(f"wrote {FLAGS.output_json}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
