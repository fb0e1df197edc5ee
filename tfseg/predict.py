"""Predict label maps:
``python -m tfseg.predict --model_path=M --input=FILE|DIR|GLOB --output=DIR``.

For every input image writes ``<stem>_labels.png`` (train ids), ``<stem>_color.png`` (palette) and
``<stem>_overlay.png`` (colour blended over the image). Any input size: the image is padded to the
model's stride and the prediction cropped back. ``--model_path`` may also be an exported CPU
artifact (``.tflite``, ``.onnx``, OpenVINO IR folder; ``evaluation.artifact_logits``: an artifact
of a static size sees the image resized to it and its logits resized back).
"""

import glob
import os
import sys

import numpy as np
from absl import app, flags
from PIL import Image

import tfseg.cli
from tfseg.cli import define_task_flags, task_options_from_flags
from tfseg.evaluation import predict_image  # noqa: F401  (tests and tools import it from here)

FLAGS = flags.FLAGS
POSTPROCESS = ("postprocess",)  # the task options that prediction uses
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")


def define_flags(fv=FLAGS):
    flags.DEFINE_string(
        "model_path", None, "A tfseg .keras model, or an exported CPU artifact (.tflite, .onnx, "
        "OpenVINO IR folder).", flag_values=fv)  # fmt: skip
    flags.DEFINE_string(
        "input", None, "An image file, a folder of images, or a glob pattern.", flag_values=fv
    )
    flags.DEFINE_string("output", None, "Output folder.", flag_values=fv)
    flags.DEFINE_float("alpha", 0.5, "Overlay opacity of the colour mask.", flag_values=fv)
    flags.DEFINE_string(
        "palette",
        "auto",
        "auto (Cityscapes colours for 19 classes, else generated) or a dataset name.",
        flag_values=fv,
    )
    define_task_flags(fv, POSTPROCESS)  # the tasks' post-processing options
    flags.adopt_module_key_flags(tfseg.cli, flag_values=fv)  # listed by --help
    flags.mark_flags_as_required(["model_path", "input", "output"], flag_values=fv)


def find_inputs(pattern):
    """Expand FILE | DIR | GLOB into a sorted list of image files; raise when nothing matches."""
    if os.path.isdir(pattern):
        files = [
            os.path.join(pattern, f)
            for f in sorted(os.listdir(pattern))
            if f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    elif os.path.isfile(pattern):
        files = [pattern]
    else:
        files = sorted(f for f in glob.glob(pattern) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"no images found for --input={pattern}")
    return files


def palette_for(num_classes, name="auto"):
    from tfseg.data import list_datasets

    if name == "auto" and num_classes == 19 or name in list_datasets(label_format="labelIds"):
        from tfseg.data.labels import CITYSCAPES_COLORS

        return np.asarray(CITYSCAPES_COLORS, dtype=np.uint8)
    rng = np.random.default_rng(12345)
    return rng.integers(0, 256, size=(num_classes, 3), dtype=np.uint8)


class ArtifactLabelWriter:
    """Labels of an exported artifact for one uint8 RGB image (``evaluation.artifact_logits``)."""

    def __init__(self, artifact):
        self.artifact = artifact
        self.num_classes = None

    def __call__(self, image, stem, output):
        from tfseg.data import normalize
        from tfseg.evaluation import artifact_logits

        x = np.asarray(normalize(image.astype(np.float32)), np.float32)[None]
        logits = artifact_logits(self.artifact, x)
        self.num_classes = logits.shape[-1]
        return np.argmax(logits[0], axis=-1).astype(np.uint8)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfseg.export_lib.artifacts import artifact_format, open_artifact
    from tfseg.models.saving import load_model
    from tfseg.tasks import task_for_model

    try:
        files = find_inputs(FLAGS.input)
        if artifact_format(FLAGS.model_path):
            artifact = open_artifact(FLAGS.model_path)
            write = ArtifactLabelWriter(artifact)
            num_classes = (artifact.report or {}).get("num_classes")
        else:
            model = load_model(FLAGS.model_path)
            task = task_for_model(model)  # the task whose outputs the model has; it may add files
            write = task.prediction_writer(model, task_options_from_flags(FLAGS, task, POSTPROCESS))
            num_classes = model.outputs[0].shape[-1]
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    palette = palette_for(num_classes, FLAGS.palette) if num_classes else None
    os.makedirs(FLAGS.output, exist_ok=True)
    failed = []
    for path in files:
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except OSError as e:
            print(f"error: cannot read image {path}: {e}", file=sys.stderr)
            failed.append(path)
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        labels = write(image, stem, FLAGS.output)
        if palette is None:  # an artifact without its report: the classes from its logits
            palette = palette_for(write.num_classes, FLAGS.palette)
        color = palette[labels]
        overlay = (image * (1 - FLAGS.alpha) + color * FLAGS.alpha).astype(np.uint8)
        for suffix, arr in (("labels", labels), ("color", color), ("overlay", overlay)):
            Image.fromarray(arr).save(os.path.join(FLAGS.output, f"{stem}_{suffix}.png"))
        print(f"{path} -> {FLAGS.output}/{stem}_{{labels,color,overlay}}.png")
    if failed:
        print(f"error: {len(failed)} of {len(files)} images could not be read", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
