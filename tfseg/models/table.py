"""The model table of the README, generated from the registries (``python tools/model_table.py``).

One row per complete network (``MODELS``) and per decoder (``DECODERS``, over ``resnet18``): name,
kind, input stride, trainable parameters and GFLOPs (2 FLOPs per MAC, convolutions and dense layers)
for 19 classes at 1024x512, and the paper from the registration.
"""

import keras

from tfseg.flops import count_params, model_macs
from tfseg.models.build import build_symbolic_model, stride_of
from tfseg.registry import DECODERS, MODELS

TABLE_ENCODER = "resnet18"
TABLE_SIZE = (512, 1024)
HEADER = (
    "| model | kind | stride | params (M) | GFLOPs 1024x512 | paper |\n"
    "|---|---|---|---|---|---|"
)


def table_entries():
    """``[(name, kind, encoder or None), ...]`` in table order: networks, then decoders."""
    rows = [(n, "network", MODELS.info(n).default_encoder) for n in MODELS.names()]
    rows += [(n, "decoder", TABLE_ENCODER) for n in DECODERS.names() if n not in MODELS]
    return rows


def row(name, kind, encoder, measure=True):
    """One markdown row; ``measure=False`` leaves params / GFLOPs as ``?`` (no model is built)."""
    info = MODELS.info(name) if kind == "network" else DECODERS.info(name)
    params = gflops = "?"
    if measure:
        model = build_symbolic_model(name, 19, encoder=encoder, input_shape=(*TABLE_SIZE, 3))
        params = f"{count_params(model) / 1e6:.2f}"
        gflops = f"{2 * model_macs(model) / 1e9:.1f}"
        keras.backend.clear_session()
    shown = f"`{name}`" + (f" + `{encoder}`" if encoder else "")
    return f"| {shown} | {kind} | {stride_of(name)} | {params} | {gflops} | {info.paper} |"


def parse_row(line):
    """``(name, kind, stride, paper)`` of a row written by :func:`row`."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    name = cells[0].split("`")[1]
    return name, cells[1], int(cells[2]), cells[5]


def markdown(measure=True):
    """The whole table."""
    return "\n".join([HEADER] + [row(*e, measure=measure) for e in table_entries()])
