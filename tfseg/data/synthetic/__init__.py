"""Synthetic street scenes in Cityscapes format: a dataset that needs no download.

``generate_synthetic(data_dir, ...)`` renders, deterministically from ``seed``, a set of street
scenes seen from a car and writes them in the official Cityscapes layout::

    <data_dir>/leftImg8bit/{train,val}/<city>/<city>_<seq>_000019_leftImg8bit.png
    <data_dir>/gtFine/{train,val}/<city>/<city>_<seq>_000019_gtFine_{labelIds,instanceIds,color}.png
    <data_dir>/synthetic.json     manifest (generator version + parameters), written last

Cities are ``synth0``, ``synth1``, ... (50 images each; validation cities follow the training ones).
The ``synthetic`` dataset then reads the set back with the Cityscapes reader (19 train classes).

Scenes: a pinhole camera at 1.3-1.7 m above a road that runs to the vanishing point, with lane
markings, crosswalks and patches; sidewalks (paving tiles, curbs) on both sides, often grass
(terrain) behind garden walls or fences, and parking strips; facades along each side made of
buildings (windows, shop fronts, cornices, side walls, brick or plaster), concrete walls, fences
(wire mesh), hedges and trees; sky with a gradient and clouds; poles with street lamps, traffic
signs and traffic lights (with backplates; also over the road); cars (rear, front and side faces,
parked rows and traffic), pedestrians, riders on bicycles and parked bicycles (wheels labelled
whole, as in Cityscapes, but showing what is behind the spokes). Every car, person, rider and
bicycle is a separate instance (``instanceIds = labelId * 1000 + k``), drawn far to near so that
they occlude each other. Void regions (ego-vehicle hood = labelId 1, "static" street clutter = 4,
parking = 9) map to the ignore label. 15 of the 19 train classes occur (not truck, bus, train,
motorcycle); pixel shares are close to Cityscapes' (road ~36 %, building ~21 %, vegetation
~13 %, sky ~7 %, car ~5 %, pole ~1.3 %, person ~1.1 %, ...).

Appearance: every class has a per-image base colour drawn from a realistic palette with jitter
(so colours overlap across classes: grey road, grey facades, grey walls), a texture (asphalt
grain, paving grid in world coordinates, brick courses, concrete panel joints, leaf clusters, grass
grain, wire mesh, glass reflections), and the whole image gets an illumination level, a colour
cast, cast shadows, sensor noise and a slight blur. Rendering is numpy + PIL: about 35 ms per
256x512 image; writing a set (four PNGs per image, two threads) takes about 35 ms per image on
two cores.

Modules: ``scene`` (label ids, textures, palettes, the ``Scene`` canvas and the street layout),
``street`` (sky, ground, road, facades, trees), ``furniture`` (poles, signs, traffic lights,
clutter, the hood), ``traffic`` (cars, pedestrians, cyclists), ``render`` (composition and
rasterisation: ``render_scene``), ``writer`` (``generate_synthetic`` and the ``synthetic`` dataset).
"""

from tfseg.data.synthetic.render import render_scene
from tfseg.data.synthetic.writer import (
    GENERATOR_VERSION,
    IMAGES_PER_CITY,
    MANIFEST,
    generate_synthetic,
    synthetic,
)

__all__ = [
    "GENERATOR_VERSION",
    "IMAGES_PER_CITY",
    "MANIFEST",
    "generate_synthetic",
    "render_scene",
    "synthetic",
]
