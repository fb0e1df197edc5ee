"""Checking a dataset's files with PIL: ``check_examples(spec, split)``.

Opens every image and label of the split, and reports, naming the files: unreadable or corrupt
files, labels that are not single-channel id maps, image/label size mismatches and label values
that are not in the dataset's label table. Also a program::

    python -m tfseg.data.check --dataset=cityscapes --data_dir=/data/cityscapes --split=val
"""

import json
import sys

import numpy as np

from tfseg.data.core import DataError, get_dataset
from tfseg.data.files import bad_values, check_label_mode, open_image


def check_examples(spec, split, max_files=None, *, max_problems=20):
    """Check the first ``max_files`` examples (all by default) of ``split``.

    Returns the number of examples checked; raises ``DataError`` listing up to ``max_problems``
    problems (one line each) when any is found.
    """
    examples = spec.examples(split)
    if max_files is not None:
        examples = examples[: int(max_files)]
    problems = []
    for ex in examples:
        try:
            with open_image(ex.image) as im:
                size = im.size
            with open_image(ex.label, "label") as lab:
                check_label_mode(lab.mode, ex.label)
                if lab.size != size:
                    raise DataError(
                        f"image {ex.image} is {size[1]}x{size[0]} but its label {ex.label} is "
                        f"{lab.size[1]}x{lab.size[0]}"
                    )
                values = bad_values(np.asarray(lab, dtype=np.uint8), spec)
                if values:
                    raise DataError(
                        f"label values {values} in {ex.label} are not in the {spec.name} "
                        "label table"
                    )
        except DataError as e:
            problems.append(str(e))
            if len(problems) >= max_problems:
                break
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        more = " (stopped there)" if len(problems) >= max_problems else ""
        raise DataError(
            f"{len(problems)} problems in split {split!r} of {spec.name}{more}:\n  "
            + "\n  ".join(problems)
        )
    return len(examples)


def main(argv=None):
    from absl import app, flags

    import tfseg.data  # noqa: F401  (registers the datasets)
    from tfseg.registry import DATASETS

    flags.DEFINE_enum("dataset", "synthetic", DATASETS.names(), "Dataset.")
    flags.DEFINE_string("data_dir", "data/synthetic", "Dataset root.")
    flags.DEFINE_string("dataset_options", "{}", "Dataset options as JSON.")
    flags.DEFINE_string("split", "val", "Split to check.")
    flags.DEFINE_integer("max_files", None, "Check only the first N examples.")
    FLAGS = flags.FLAGS

    def run(argv):
        try:
            spec = get_dataset(FLAGS.dataset, FLAGS.data_dir, **json.loads(FLAGS.dataset_options))
            n = check_examples(spec, FLAGS.split, FLAGS.max_files)
        except (DataError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        print(f"{n} examples of {spec.name}/{FLAGS.split} are fine")

    app.run(run, argv)


if __name__ == "__main__":
    main()
