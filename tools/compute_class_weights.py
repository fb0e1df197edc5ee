"""ENet class weights of a dataset split, written as JSON.

    python tools/compute_class_weights.py --dataset=synthetic --data_dir=data/synthetic \
        --split=train --output=weights.json [--c=1.02] [--dataset_options='{}'] [--max_images=N]

Writes ``{"class_names": [...], "weights": [...], "frequencies": [...], ...}`` atomically (a
temporary file renamed into place); ``python -m tfseg.train --class_weights=weights.json`` reads it.
``w_c = 1 / ln(c + p_c)`` with ``p_c`` the class's share of the split's labelled pixels.
"""

import json
import sys

from absl import app, flags

from tfseg.data import DataError, enet_class_weights, get_dataset
from tfseg.files import write_json_atomic
from tfseg.registry import DATASETS

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_enum("dataset", "synthetic", DATASETS.names(), "Dataset.")
    flags.DEFINE_string("data_dir", "data/synthetic", "Dataset root directory.")
    flags.DEFINE_string("dataset_options", "{}", "Dataset options as a JSON object.")
    flags.DEFINE_string("split", "train", "Split to count.")
    flags.DEFINE_string("output", "class_weights.json", "Output JSON file.")
    flags.DEFINE_float("c", 1.02, "ENet constant c (> 1): w = 1 / ln(c + p).")
    flags.DEFINE_integer("max_images", None, "Count only the first N images of the split.")


def compute(dataset, data_dir, split, output, c=1.02, options=None, max_images=None):
    """Compute the weights and write them to ``output``; returns the written dict."""
    spec = get_dataset(dataset, data_dir, **(options or {}))
    result = enet_class_weights(spec, split, c=c, max_images=max_images)
    write_json_atomic(output, result)
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        options = json.loads(FLAGS.dataset_options)
        if not isinstance(options, dict):
            raise TypeError("--dataset_options must be a JSON object")
        result = compute(
            FLAGS.dataset,
            FLAGS.data_dir,
            FLAGS.split,
            FLAGS.output,
            FLAGS.c,
            options,
            FLAGS.max_images,
        )
    except (DataError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    width = max(len(n) for n in result["class_names"])
    for name, w, f in zip(result["class_names"], result["weights"], result["frequencies"]):
        print(f"{name:<{width}}  freq {100 * f:7.3f}%  weight {w:7.3f}")
    print(f"wrote {FLAGS.output} ({result['num_images']} images of {FLAGS.dataset}/{FLAGS.split})")


if __name__ == "__main__":
    define_flags()
    app.run(main)
