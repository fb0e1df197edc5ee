"""Datasets and tf.data input pipelines.

::

    from tfseg.data import get_dataset, make_train_dataset, make_eval_dataset
    spec = get_dataset("synthetic", "data/synthetic")        # generated on first use
    train = make_train_dataset(spec, "train", batch_size=8, crop_size=(256, 256), seed=0)
    val = make_eval_dataset(spec, "val", stride=32)          # (image, label, index) batches

Datasets (``list_datasets()``): ``synthetic``, ``cityscapes``, ``camvid``, ``mapillary``,
``folder``; each module's docstring gives its layout and options, and each registration its
capabilities (``dataset_capabilities(name)``: label format, instance ids). Every bad input (missing
directory or file, corrupt image, size mismatch, label value outside the table) raises
``DataError`` naming the file; inside tf.data the same checks stop the iteration with the file
name in the error message, and ``check_examples`` (``python -m tfseg.data.check``) checks a whole
split up front.
"""

from tfseg.data import camvid, cityscapes, folder, mapillary, synthetic  # noqa: F401  (register)
from tfseg.data.check import check_examples
from tfseg.data.class_weights import enet_class_weights
from tfseg.data.core import (
    LABEL_FORMATS,
    DataError,
    DatasetCapabilities,
    DatasetSpec,
    Example,
    dataset_capabilities,
    get_dataset,
    list_datasets,
)
from tfseg.data.pipeline import (
    MEAN,
    STD,
    ExtraTarget,
    augment,
    augment_maps,
    denormalize,
    make_eval_dataset,
    make_train_dataset,
    measure_pipeline,
    normalize,
)
from tfseg.data.synthetic import generate_synthetic, render_scene

__all__ = [
    "LABEL_FORMATS",
    "MEAN",
    "STD",
    "DataError",
    "DatasetCapabilities",
    "DatasetSpec",
    "Example",
    "ExtraTarget",
    "augment",
    "augment_maps",
    "check_examples",
    "dataset_capabilities",
    "denormalize",
    "enet_class_weights",
    "generate_synthetic",
    "get_dataset",
    "list_datasets",
    "make_eval_dataset",
    "make_train_dataset",
    "measure_pipeline",
    "normalize",
    "render_scene",
]
