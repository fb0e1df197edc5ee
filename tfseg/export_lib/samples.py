"""Images for int8 calibration and for verification, drawn from tfseg's own evaluation pipeline.

``make_eval_dataset`` (decode, label LUT, normalisation) yields each image at its own size; here it
is then either resized to the artifact's fixed input size (image bilinear, label nearest) or padded
to the model's stride (image with 0 = the mean colour, label with the ignore label), exactly as
``tfseg.evaluate`` pads.
"""

import json
import os

import numpy as np

from tfseg.arrays import pad_to_stride
from tfseg.export_lib.errors import ExportError


def resolve_dataset(model_path, dataset=None, data_dir=None, dataset_options=None):
    """``(name, data_dir, options)`` for a model: explicit values, else the run's ``config.json``
    next to the model file (written by ``tfseg.train``), else the synthetic dataset."""
    config = {}
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                config = json.load(f).get("data", {})
        except (OSError, ValueError):
            config = {}
    name = dataset or config.get("dataset") or "synthetic"
    if data_dir is None:
        data_dir = config.get("data_dir") if config.get("dataset") == name else None
    if dataset_options is None:
        dataset_options = config.get("dataset_options") if config.get("dataset") == name else None
    return name, data_dir or f"data/{name}", dict(dataset_options or {})


def load_spec(name, data_dir, options):
    from tfseg.data import DataError, get_dataset

    try:
        return get_dataset(name, data_dir, **options)
    except DataError as e:
        raise ExportError(f"dataset {name!r} at {data_dir}: {e}") from e


def samples(spec, split, *, count, input_size=None, stride=32):
    """Yield ``count`` dicts ``{"image": float32 (1, H, W, 3), "label": int32 (H, W), "uint8":
    uint8 (h, w, 3) unpadded RGB, "valid": (h, w)}``, cycling through the split if it is shorter."""
    import tensorflow as tf

    from tfseg.data import DataError, denormalize, make_eval_dataset

    try:
        spec.examples(split)  # raises for a missing or empty split
    except DataError as e:
        raise ExportError(str(e)) from e
    ds = make_eval_dataset(spec, split, stride=1, batch_size=1).repeat().take(int(count))
    ignore = spec.ignore_label
    for image, label, _ in ds:
        image, label = image[0], label[0]
        if input_size is not None and input_size[0] is not None:
            size = [int(input_size[0]), int(input_size[1])]
            image = tf.image.resize(image, size, method="bilinear")
            label = tf.image.resize(label[:, :, None], size, method="nearest")[:, :, 0]
        image = image.numpy().astype(np.float32)
        label = label.numpy().astype(np.int32)
        h, w = label.shape
        raw = np.clip(np.round(denormalize(image)), 0, 255).astype(np.uint8)
        image = pad_to_stride(image, stride)
        label = pad_to_stride(label, stride, ignore)
        yield {"image": image[None], "label": label, "uint8": raw, "valid": (h, w)}


def calibration_images(spec, split, *, steps, input_size, stride):
    """``steps`` float32 ``(1, H, W, 3)`` arrays for int8 calibration (TFLite / TensorRT)."""
    return [
        s["image"] for s in samples(spec, split, count=steps, input_size=input_size, stride=stride)
    ]
