"""Dataset descriptions: ``DatasetSpec``, ``Example``, ``DataError`` and the registry look-up.

A dataset factory (registered in ``tfseg.registry.DATASETS``) takes ``data_dir`` and keyword
options, checks the directory and returns a :class:`DatasetSpec`: the label table (names, colours,
raw value -> train id LUT) plus a function listing the examples of a split. Files are listed
lazily, per split, the first time ``spec.examples(split)`` is called, and the list is cached.

What a dataset's annotations are is said once, at registration, and read back as
:class:`DatasetCapabilities` (``dataset_capabilities(name)``, ``spec.label_format``,
``spec.has_instances``) instead of comparing dataset names::

    @DATASETS.register("cityscapes", label_format="labelIds", has_instances=True)
"""

import inspect
import os
from typing import NamedTuple

from tfseg.registry import DATASETS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


class DataError(ValueError):
    """Bad dataset input: missing directory or file, unreadable image, label value off the table."""


class Example(NamedTuple):
    """One image and its label map (paths). ``id`` is unique within the split."""

    image: str
    label: str
    instance: str | None = None
    id: str = ""
    city: str | None = None


# What the raw values of a dataset's label files are.
LABEL_FORMATS = {
    "labelIds": "Cityscapes labelIds (the 19 train classes through the LUT; predictions can be "
    "written back as labelIds)",
    "trainIds": "train ids 0..n-1 plus one void value",
    "classIds": "the dataset's own class ids, mapped to train ids by its table",
}


class DatasetCapabilities(NamedTuple):
    """What a registered dataset's annotations hold.

    ``label_format``: a key of :data:`LABEL_FORMATS`. ``has_instances``: examples can carry
    Cityscapes-format instanceIds (``labelId * 1000 + k``), as the instance task reads them.
    """

    label_format: str = "trainIds"
    has_instances: bool = False


def dataset_capabilities(name):
    """The :class:`DatasetCapabilities` registered with dataset ``name`` (defaults for the rest)."""
    try:
        extra = DATASETS.info(name).extra  # keywords given at registration
    except KeyError as e:
        raise DataError(e.args[0]) from None
    caps = DatasetCapabilities(**{k: extra[k] for k in DatasetCapabilities._fields if k in extra})
    if caps.label_format not in LABEL_FORMATS:
        raise DataError(
            f"dataset {name!r} is registered with label_format={caps.label_format!r}; "
            f"choose one of: {', '.join(LABEL_FORMATS)}"
        )
    return caps


class DatasetSpec:
    """What the pipeline needs to know about a dataset.

    Attributes: ``name``, ``root``, ``num_classes``, ``class_names`` (list of str), ``colors``
    (list of (r, g, b)), ``ignore_label`` (255), ``lut`` (uint8 (256,): raw label value -> train id
    or 255), ``valid`` (bool (256,): raw values allowed in a label file), ``options`` (the
    factory's options), ``label_format`` and ``has_instances`` (see :class:`DatasetCapabilities`).
    """

    def __init__(self, name, root, table, lister, *, options=None, ignore_label=255):
        self.name = name
        self.root = root
        self.table = table
        self.ignore_label = ignore_label
        self.options = dict(options or {})
        self._lister = lister
        self._cache = {}

    num_classes = property(lambda self: self.table.num_classes)
    class_names = property(lambda self: list(self.table.class_names))
    colors = property(lambda self: list(self.table.colors))
    lut = property(lambda self: self.table.lut)
    valid = property(lambda self: self.table.valid)

    @property
    def capabilities(self):
        """The dataset's registered :class:`DatasetCapabilities` (defaults if not registered)."""
        if self.name not in DATASETS:
            return DatasetCapabilities()
        return dataset_capabilities(self.name)

    label_format = property(lambda self: self.capabilities.label_format)
    has_instances = property(lambda self: self.capabilities.has_instances)

    def examples(self, split):
        """The split's examples, sorted by id; ``DataError`` if the split is missing or empty."""
        if split not in self._cache:
            examples = list(self._lister(split))
            if not examples:
                raise DataError(
                    f"no images found for split {split!r} of {self.name} under {self.root}"
                )
            self._cache[split] = examples
        return list(self._cache[split])

    def __repr__(self):
        return (
            f"DatasetSpec(name={self.name!r}, root={self.root!r}, num_classes={self.num_classes}, "
            f"ignore_label={self.ignore_label})"
        )


def list_datasets(**capabilities):
    """Names accepted by ``get_dataset``; keyword arguments keep those with these capabilities.

    E.g. ``list_datasets(has_instances=True)`` or ``list_datasets(label_format="labelIds")``.
    """
    unknown = sorted(set(capabilities) - set(DatasetCapabilities._fields))
    if unknown:
        raise TypeError(f"unknown dataset capabilities: {', '.join(unknown)}")
    return [
        name
        for name in DATASETS.names()
        if all(getattr(dataset_capabilities(name), k) == v for k, v in capabilities.items())
    ]


def get_dataset(name, data_dir, **options):
    """``DatasetSpec`` of dataset ``name`` stored under ``data_dir`` (options: see its module)."""
    try:
        factory = DATASETS.get(name)
    except KeyError as e:
        raise DataError(e.args[0]) from None
    params = inspect.signature(factory).parameters
    accepted = [p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(
            f"dataset {name!r} does not accept option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    return factory(os.fspath(data_dir), **options)


# --------------------------------------------------------------------------------------------------
# helpers shared by the readers
# --------------------------------------------------------------------------------------------------


def require_dir(path, what="data_dir"):
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise DataError(f"{what} {path} is not a directory")
        raise DataError(f"{what} {path} does not exist")
    return path


def list_files(directory, extensions=IMAGE_EXTENSIONS, *, what="images"):
    """Sorted files of ``directory`` with one of ``extensions``; DataError when none."""
    if not os.path.isdir(directory):
        raise DataError(f"no {what} found under {directory}: the directory does not exist")
    files = sorted(
        os.path.join(directory, f)
        for f in os.listdir(directory)
        if f.lower().endswith(extensions) and not f.startswith(".")
    )
    if not files:
        raise DataError(f"no {what} found under {directory}")
    return files


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def require_file(path, image):
    """``path`` (the label of ``image``) must exist."""
    if not os.path.isfile(path):
        raise DataError(f"label file {path} of image {image} does not exist")
    return path
