"""Initialise a model for another label set from a trained one ("PM" of RGPNet, sec. 4.5).

    python tools/transfer_head.py --source=runs/mapillary/rgpnet_resnet18/model.keras \
        --output=runs/pm/rgpnet_resnet18_cityscapes.keras [--mapping=mapping.json] \
        [--num_classes=N] [--target_model=T.keras] [--unmapped=mean|init]

The target model is the source's architecture with ``num_classes`` outputs (or ``--target_model``).
Every weight whose shape matches is copied; the layers that produce the class scores (the
classifier, and any label-space layers after it) get their class rows/columns gathered from the
source classes that the mapping names for each target class (the mean of several, when a list is
given). Target classes without a source get the mean of all source classes (``--unmapped=mean``) or
keep the target's fresh initialisation (``--unmapped=init``). The result is written atomically.

Mapping file (JSON): ``{"target class": "source class" | ["source", ...] | null, ...}`` or
``{"mapping": {...}, "source_classes": [...], "target_classes": [...]}``. Classes are names or
indices. Without ``source_classes`` names resolve against Mapillary Vistas v1.2 when the source has
65 classes (machine names such as ``construction--flat--road`` or readable names such as ``Road``);
without ``target_classes`` against the Cityscapes train classes when the target has 19 (the default
target class count). Without ``--mapping`` the built-in Mapillary v1.2 -> Cityscapes mapping is used
(every Cityscapes class has a source).

The class layers are found by walking back from the output through the layers whose output has the
class count; a model whose features happen to have exactly that many channels right before the
classifier would confuse the walk (then pass ``--target_model``).
"""

import sys

from absl import app, flags

from tfseg.data.labels import MAPILLARY_V12_CLASSES  # 65 (machine, readable) names
from tfseg.models.transfer import TransferError, transfer_head

# Cityscapes train class -> Mapillary v1.2 class: the closest single class for each of the 19.
MAPILLARY_TO_CITYSCAPES = {
    "road": "construction--flat--road",
    "sidewalk": "construction--flat--sidewalk",
    "building": "construction--structure--building",
    "wall": "construction--barrier--wall",
    "fence": "construction--barrier--fence",
    "pole": "object--support--pole",
    "traffic light": "object--traffic-light",
    "traffic sign": "object--traffic-sign--front",
    "vegetation": "nature--vegetation",
    "terrain": "nature--terrain",
    "sky": "nature--sky",
    "person": "human--person",
    "rider": "human--rider--bicyclist",
    "car": "object--vehicle--car",
    "truck": "object--vehicle--truck",
    "bus": "object--vehicle--bus",
    "train": "object--vehicle--on-rails",
    "motorcycle": "object--vehicle--motorcycle",
    "bicycle": "object--vehicle--bicycle",
}

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    flags.DEFINE_string("source", None, "Trained source model (.keras).", flag_values=fv)
    flags.DEFINE_string("output", None, "Where to write the target model (.keras).", flag_values=fv)
    flags.DEFINE_string(
        "mapping",
        None,
        "Mapping JSON (target class -> source class(es)); default: Mapillary v1.2 -> Cityscapes.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Target classes (default: the mapping's target class list; 19 for the built-in one).",
        lower_bound=2,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "target_model",
        None,
        "Optional .keras model to fill instead of re-targeting the source's architecture.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "unmapped",
        "mean",
        ["mean", "init"],
        "Target classes without a source: mean of all source classes, or keep the fresh init.",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["source", "output"], flag_values=fv)


def default_mapping():
    """The built-in Mapillary v1.2 (65) -> Cityscapes (19) mapping as (mapping, source, target)."""
    from tfseg.data.labels import CITYSCAPES_CLASS_NAMES

    return dict(MAPILLARY_TO_CITYSCAPES), MAPILLARY_V12_CLASSES, list(CITYSCAPES_CLASS_NAMES)


def run(fv=FLAGS):
    """The program: read, transfer, write (``tfseg.models.transfer``). Returns the report dict."""
    return transfer_head(
        fv.source,
        fv.output,
        mapping=fv.mapping,
        num_classes=fv.num_classes,
        target_model=fv.target_model,
        unmapped=fv.unmapped,
        builtin=default_mapping(),
        builtin_name="Mapillary v1.2 -> Cityscapes",
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        report = run(FLAGS)
    except (TransferError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(
        f"wrote {report['output']}: {report['copied']} weight tensors copied, class axes "
        f"re-ordered in {', '.join(report['gathered'])}; target classes without a source: "
        f"{report['unmapped'] or 'none'} ({FLAGS.unmapped}); skipped layers: "
        f"{report['skipped'] or 'none'}"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
