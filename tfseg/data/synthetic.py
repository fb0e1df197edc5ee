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
"""

import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfseg.data.cityscapes import cityscapes_examples
from tfseg.data.core import DataError, DatasetSpec
from tfseg.data.labels import (
    CITYSCAPES_LABEL_ID_COLORS,
    CITYSCAPES_LABEL_IDS,
    cityscapes_table,
)
from tfseg.registry import DATASETS

GENERATOR_VERSION = 2  # bump whenever the rendering changes: older sets are regenerated
MANIFEST = "synthetic.json"
IMAGES_PER_CITY = 50
_SPLIT_CODE = {"train": 0, "val": 1}

_ID = CITYSCAPES_LABEL_IDS
ROAD, SIDEWALK, PARKING = _ID["road"], _ID["sidewalk"], _ID["parking"]
BUILDING, WALL, FENCE = _ID["building"], _ID["wall"], _ID["fence"]
POLE, LIGHT, SIGN = _ID["pole"], _ID["traffic light"], _ID["traffic sign"]
VEGETATION, TERRAIN, SKY = _ID["vegetation"], _ID["terrain"], _ID["sky"]
PERSON, RIDER, CAR, BICYCLE = _ID["person"], _ID["rider"], _ID["car"], _ID["bicycle"]
EGO, STATIC = _ID["ego vehicle"], _ID["static"]

# textures
(
    T_FLAT,
    T_ASPHALT,
    T_TILES,
    T_GRASS,
    T_LEAVES,
    T_PLASTER,
    T_BRICK,
    T_GLASS,
    T_SKY,
    T_MESH,
    T_CONCRETE,
    T_METAL,
    T_CLOTH,
    T_MARKING,
    T_BARK,
    T_LAMP,
    T_PANEL,
) = range(17)

_FACADE_COLORS = np.array(
    [
        (205, 185, 150),
        (160, 160, 158),
        (150, 78, 60),
        (220, 214, 200),
        (214, 192, 120),
        (125, 95, 75),
        (170, 190, 195),
        (190, 200, 170),
        (120, 120, 125),
        (225, 175, 140),
    ],
    dtype=np.float32,
)
_CAR_COLORS = np.array(
    [
        (235, 235, 235),
        (25, 25, 28),
        (160, 163, 168),
        (150, 20, 25),
        (25, 55, 130),
        (80, 82, 88),
        (40, 80, 50),
        (200, 190, 170),
        (210, 120, 30),
        (90, 20, 40),
    ],
    dtype=np.float32,
)
_CLOTH_COLORS = np.array(
    [
        (30, 30, 35),
        (60, 70, 110),
        (200, 200, 200),
        (140, 30, 40),
        (40, 90, 60),
        (150, 120, 80),
        (90, 90, 95),
        (220, 180, 60),
        (30, 50, 90),
        (120, 60, 120),
        (230, 110, 60),
    ],
    dtype=np.float32,
)
_SKIN = np.array([(235, 200, 170), (200, 150, 110), (150, 100, 70), (95, 65, 45)], np.float32)


# --------------------------------------------------------------------------------------------------
# scene drawing: a canvas of segment ids, each segment with label, instance, colour and texture
# --------------------------------------------------------------------------------------------------


class _Scene:
    def __init__(self, rng, height, width):
        self.rng = rng
        self.h, self.w = height, width
        self.f = width * rng.uniform(0.5, 0.64)  # focal length in pixels
        self.yh = height * rng.uniform(0.36, 0.47)  # horizon row
        self.xv = width * rng.uniform(0.42, 0.58)  # vanishing point column
        self.hc = rng.uniform(1.3, 1.7)  # camera height (m)
        self.canvas = Image.new("I", (width, height), 0)  # segment ids: appearance and label
        self.draw = ImageDraw.Draw(self.canvas)
        # label-only segments ("see-through": a bicycle wheel's inside is labelled bicycle, as in
        # Cityscapes, but shows what is behind); created on first use, cleared by nearer shapes
        self.over, self.over_draw, self.see_through = None, None, False
        self.shadow = Image.new("L", (width, height), 0)
        self.shadow_draw = ImageDraw.Draw(self.shadow)
        # segment properties; segment 0 is "unlabeled" (never visible: the sky and ground cover all)
        self.p_label, self.p_inst, self.p_tex = [0], [0], [T_FLAT]
        self.p_color, self.p_amp, self.p_param = [(0.0, 0.0, 0.0)], [0.0], [0.0]
        self.instances = {}
        self.objects = []  # (depth, callable) drawn far to near

    # ---- segments -------------------------------------------------------------------------------
    def seg(self, label, color, tex=T_FLAT, amp=0.04, instance=None, param=0.0):
        self.p_label.append(label)
        self.p_inst.append(label if instance is None else instance)
        self.p_color.append(tuple(float(c) for c in np.clip(color, 0, 255)))
        self.p_tex.append(tex)
        self.p_amp.append(amp)
        self.p_param.append(param)
        return len(self.p_label) - 1

    def instance(self, label):
        k = self.instances.get(label, 0)
        self.instances[label] = k + 1
        return label * 1000 + k

    def jitter(self, color, sigma=12.0):
        return np.clip(np.asarray(color, np.float32) + self.rng.normal(0, sigma, 3), 0, 255)

    def shade(self, color, factor):
        return np.clip(np.asarray(color, np.float32) * factor, 0, 255)

    # ---- projection -----------------------------------------------------------------------------
    def proj(self, X, Y, Z):
        return (self.xv + self.f * X / Z, self.yh + self.f * (self.hc - Y) / Z)

    def paint(self, method, xy, seg, key="fill", **kw):
        """Draw a shape (an ``ImageDraw`` method) with segment ``seg``."""
        if self.see_through:
            if self.over is None:
                self.over = Image.new("I", (self.w, self.h), 0)
                self.over_draw = ImageDraw.Draw(self.over)
            getattr(self.over_draw, method)(xy, **{key: seg}, **kw)
            return
        getattr(self.draw, method)(xy, **{key: seg}, **kw)
        if self.over is not None:
            getattr(self.over_draw, method)(xy, **{key: 0}, **kw)

    def poly(self, pts, seg):
        self.paint("polygon", [tuple(p) for p in pts], seg)

    def ground(self, X0, X1, Z0, Z1, seg):
        """Quad on the ground plane."""
        self.poly(
            [
                self.proj(X0, 0, Z0),
                self.proj(X1, 0, Z0),
                self.proj(X1, 0, Z1),
                self.proj(X0, 0, Z1),
            ],
            seg,
        )

    def plane_x(self, X, pts, seg):
        """Polygon in the vertical plane at lateral position X; pts are (Y, Z)."""
        self.poly([self.proj(X, y, z) for y, z in pts], seg)

    def quad_x(self, X, Y0, Y1, Z0, Z1, seg):
        self.plane_x(X, [(Y0, Z0), (Y1, Z0), (Y1, Z1), (Y0, Z1)], seg)

    def plane_z(self, Z, pts, seg):
        """Polygon in the vertical plane at depth Z (facing the camera); pts are (X, Y)."""
        self.poly([self.proj(x, y, Z) for x, y in pts], seg)

    def rect_z(self, X0, X1, Y0, Y1, Z, seg, min_px=1.0):
        """Axis-aligned rectangle facing the camera, at least ``min_px`` pixels wide."""
        x0, y1 = self.proj(X0, Y0, Z)
        x1, y0 = self.proj(X1, Y1, Z)
        if x1 - x0 < min_px:
            c = 0.5 * (x0 + x1)
            x0, x1 = c - 0.5 * min_px, c + 0.5 * min_px
        box = (round(x0), round(y0), max(round(x0), round(x1) - 1), max(round(y0), round(y1) - 1))
        self.paint("rectangle", box, seg)

    def ellipse_z(self, X, Y, rx, ry, Z, seg, width=0, min_px=1.0):
        cx, cy = self.proj(X, Y, Z)
        ax, ay = max(self.f * rx / Z, 0.5), max(self.f * ry / Z, 0.5)
        box = (cx - ax, cy - ay, cx + ax, cy + ay)
        if width:
            px = max(1, round(max(self.f * width / Z, min_px)))
            self.paint("ellipse", box, seg, key="outline", width=px)
        else:
            self.paint("ellipse", box, seg)

    def line_z(self, pts, Z, seg, width, min_px=1.0):
        xy = [self.proj(x, y, Z) for x, y in pts]
        self.paint(
            "line", xy, seg, width=max(1, round(max(self.f * width / Z, min_px))), joint="curve"
        )

    def add(self, depth, fn):
        self.objects.append((depth, len(self.objects), fn))


# --------------------------------------------------------------------------------------------------
# scene content
# --------------------------------------------------------------------------------------------------


def _layout(s):
    rng = s.rng
    s.road_l = -rng.uniform(2.5, 9.0)
    s.road_r = rng.uniform(2.5, 9.0)
    s.walk_l = s.road_l - rng.uniform(2.5, 5.5)
    s.walk_r = s.road_r + rng.uniform(2.5, 5.5)
    s.face_l = s.walk_l - (rng.uniform(2.0, 6.0) if rng.random() < 0.6 else 0.0)
    s.face_r = s.walk_r + (rng.uniform(2.0, 6.0) if rng.random() < 0.6 else 0.0)
    s.z_end = rng.uniform(45, 140) if rng.random() < 0.55 else 400.0
    s.z_near = 1.2


def _sky_and_ground(s):
    rng = s.rng
    overcast = rng.random() < 0.3
    if overcast:
        top = s.jitter((175, 180, 188), 12)
        horizon = s.jitter((205, 208, 212), 8)
    else:
        top = s.jitter((70, 120, 205), 18)
        horizon = s.jitter((170, 195, 225), 12)
    s.sky_top, s.sky_horizon = top, horizon
    s.clouds = rng.uniform(0.0, 0.8)
    sky = s.seg(SKY, top, T_SKY)
    s.paint("rectangle", (0, 0, s.w, int(s.yh) + 2), sky)

    grass = s.jitter(rng.choice([(135, 160, 75), (155, 165, 90), (170, 158, 105)]), 10)
    terrain = s.seg(TERRAIN, grass, T_GRASS, 0.12)
    s.paint("rectangle", (0, int(s.yh), s.w, s.h), terrain)
    s.terrain_seg = terrain
    z0, z1 = s.z_near, s.z_end + 60

    # sidewalks with a curb
    paving = rng.choice([(165, 165, 160), (185, 180, 170), (175, 125, 110), (140, 140, 140)])
    for x0, x1 in ((s.walk_l, s.road_l), (s.road_r, s.walk_r)):
        walk = s.seg(SIDEWALK, s.jitter(paving, 10), T_TILES, 0.05, param=rng.uniform(0.3, 0.6))
        s.ground(x0, x1, z0, z1, walk)
    curb = s.seg(SIDEWALK, s.jitter((190, 188, 182), 10), T_CONCRETE, 0.05)
    s.quad_x(s.road_l, 0, 0.15, z0, z1, curb)
    s.quad_x(s.road_r, 0, 0.15, z0, z1, curb)

    # road: asphalt, patches, parking strips (void), markings
    asphalt = s.jitter(rng.choice([(95, 95, 98), (118, 115, 112), (75, 76, 80)]), 8)
    s.road_color = asphalt
    s.ground(s.road_l, s.road_r, z0, z1, s.seg(ROAD, asphalt, T_ASPHALT, 0.06))
    for _ in range(rng.integers(0, 4)):
        za = rng.uniform(4, 40)
        xa = rng.uniform(s.road_l, s.road_r - 1.5)
        patch = s.seg(ROAD, s.shade(asphalt, rng.uniform(0.8, 1.15)), T_ASPHALT, 0.06)
        s.ground(xa, min(s.road_r, xa + rng.uniform(1.0, 4.0)), za, za + rng.uniform(2, 12), patch)
    s.parking = {}
    for side in (-1, 1):
        if rng.random() < 0.3:
            edge = s.road_l if side < 0 else s.road_r
            za, zb = rng.uniform(3, 12), rng.uniform(25, 70)
            park = s.seg(PARKING, s.shade(asphalt, rng.uniform(0.85, 1.2)), T_ASPHALT, 0.06)
            s.ground(edge, edge - side * 2.3, za, zb, park)
            s.parking[side] = (za, zb)
    _markings(s, z0, min(z1, 200))
    # cast shadow of one side's facades on the ground
    if rng.random() < 0.6:
        side = rng.choice([-1, 1])
        face = s.face_l if side < 0 else s.face_r
        width = rng.uniform(2, 9)
        pts = [s.proj(face, 0, z0), s.proj(face - side * width, 0, z0)]
        pts += [s.proj(face - side * width, 0, z1), s.proj(face, 0, z1)]
        s.shadow_draw.polygon(pts, fill=255)


def _markings(s, z0, z1):
    rng = s.rng
    paint = s.jitter((228, 226, 215), 8)
    width = s.road_r - s.road_l
    lanes = max(1, round(width / 3.3))
    mark = s.seg(ROAD, paint, T_MARKING, 0.08)
    for i in range(1, lanes):
        x = s.road_l + i * width / lanes
        dash, gap = rng.uniform(2.5, 4), rng.uniform(4, 9)
        z = z0 + rng.uniform(0, dash + gap)
        while z < z1:
            s.ground(x - 0.07, x + 0.07, z, z + dash, mark)
            z += dash + gap
    if rng.random() < 0.6:
        for x in (s.road_l + 0.3, s.road_r - 0.3):
            s.ground(x - 0.07, x + 0.07, z0, z1, mark)
    if rng.random() < 0.3:
        zc = rng.uniform(7, 25)
        x = s.road_l + 0.4
        while x < s.road_r - 0.4:
            s.ground(x, x + 0.5, zc, zc + 3.0, mark)
            x += 1.0


def _window_grid(s, X, z1, z2, height, glass, frame_seg, rng):
    floor = rng.uniform(2.9, 3.6)
    col = rng.uniform(2.2, 3.8)
    ww, wh = rng.uniform(0.9, 1.5), rng.uniform(1.1, 1.7)
    shop = rng.random() < 0.5
    y = floor if shop else 0.9
    if shop:
        s.quad_x(X, 0.3, 2.6, z1 + 0.5, z2 - 0.5, glass[0])
        s.quad_x(X, 2.6, 3.0, z1, z2, frame_seg)
    while y + wh < height - 0.6:
        z = z1 + 0.5 * (col - ww) + 0.3
        while z + ww < z2 - 0.3:
            a, b = s.proj(X, y + wh, z), s.proj(X, y, z + ww)
            if abs(a[0] - b[0]) * abs(a[1] - b[1]) >= 2.0:
                s.quad_x(X, y, y + wh, z, z + ww, glass[rng.integers(len(glass))])
            z += col
        y += floor


def _facades(s):
    rng = s.rng
    for side in (-1, 1):
        X = s.face_l if side < 0 else s.face_r
        segments = []
        z = s.z_near + 0.5
        while z < min(s.z_end, 160):
            length = rng.uniform(6, 26)
            kinds, p = (
                ["building", "vegetation", "wall", "fence", "gap"],
                [0.5, 0.16, 0.14, 0.13, 0.07],
            )
            if z > 60:  # far away only buildings and trees (walls and fences would be slivers)
                kinds, p = ["building", "vegetation"], [0.75, 0.25]
            kind = rng.choice(kinds, p=p)
            segments.append((z, min(z + length, s.z_end), kind))
            z += length
        for z1, z2, kind in reversed(segments):  # far to near
            _facade_segment(s, X, side, z1, z2, kind, rng)
        edge = s.walk_l if side < 0 else s.walk_r
        if edge != X and rng.random() < 0.6:  # a garden wall or fence between sidewalk and grass
            z1 = rng.uniform(s.z_near, 10)
            z2 = min(z1 + rng.uniform(8, 30), s.z_end)
            _facade_segment(s, edge, side, z1, z2, rng.choice(["wall", "fence"]), rng, garden=True)
    if s.z_end < 300:  # a row of buildings or trees closing the street
        _backdrop(s, rng)


def _facade_segment(s, X, side, z1, z2, kind, rng, garden=False):
    if kind == "building":
        height = rng.uniform(6, 26)
        base = _FACADE_COLORS[rng.integers(len(_FACADE_COLORS))]
        color = s.jitter(base, 10)
        brick = base[0] < 160 and base[0] > base[2] + 50 and rng.random() < 0.8
        tex = T_BRICK if brick else T_PLASTER
        face = s.seg(BUILDING, color, tex, 0.05, param=X)
        sidewall = s.seg(BUILDING, s.shade(color, 0.72), tex, 0.05)
        s.plane_z(z1, [(X, 0), (X + side * 25, 0), (X + side * 25, height), (X, height)], sidewall)
        s.quad_x(X, 0, height, z1, z2, face)
        glass_base = s.jitter(rng.choice([(55, 65, 80), (80, 95, 110), (40, 45, 50)]), 8)
        glass = [s.seg(BUILDING, s.shade(glass_base, k), T_GLASS, 0.05) for k in (0.8, 1.0, 1.3)]
        if z1 < 40 and rng.random() < 0.7:  # windows on the side wall too
            y = rng.uniform(2.5, 3.5)
            while y + 1.5 < height - 0.5:
                d = 2.0
                while d < 23:
                    x0, x1 = sorted((X + side * d, X + side * (d + 1.2)))
                    s.rect_z(x0, x1, y, y + 1.4, z1 - 0.01, glass[rng.integers(len(glass))])
                    d += 3.2
                y += 3.3
        frame = s.seg(BUILDING, s.shade(color, rng.uniform(0.6, 1.2)), T_PLASTER, 0.04)
        _window_grid(s, X, z1, z2, height, glass, frame, rng)
        s.quad_x(X, height - 0.5, height, z1, z2, frame)
    elif kind == "vegetation":
        hedge = s.seg(VEGETATION, s.jitter((55, 95, 40), 12), T_LEAVES, 0.1)
        if rng.random() < 0.6:
            s.quad_x(X, 0, rng.uniform(0.8, 1.8), z1, z2, hedge)
        for _ in range(rng.integers(1, 4)):
            _tree(
                s, X + side * rng.uniform(0, 4), rng.uniform(z1, z2), rng, big=True, draw_now=True
            )
    elif kind == "wall":
        color = s.jitter(rng.choice([(175, 172, 160), (150, 150, 145), (195, 185, 165)]), 10)
        if not garden and rng.random() < 0.4:
            for _ in range(rng.integers(1, 3)):
                _tree(
                    s,
                    X + side * rng.uniform(1, 5),
                    rng.uniform(z1, z2),
                    rng,
                    big=True,
                    draw_now=True,
                )
        wall = s.seg(WALL, color, T_PANEL, 0.06, param=X)
        top = rng.uniform(0.8, 1.8) if garden else rng.uniform(1.2, 3.0)
        s.quad_x(X, 0, top, z1, z2, wall)
        s.quad_x(X, top - 0.15, top, z1, z2, s.seg(WALL, s.shade(color, 0.8), T_CONCRETE, 0.05))
    elif kind == "fence":
        color = s.jitter(rng.choice([(110, 115, 110), (60, 90, 70), (130, 100, 70)]), 10)
        if not garden and rng.random() < 0.5:
            _tree(
                s, X + side * rng.uniform(1, 5), rng.uniform(z1, z2), rng, big=True, draw_now=True
            )
        top = rng.uniform(1.0, 1.8) if garden else rng.uniform(1.2, 2.2)
        mesh = s.seg(FENCE, color, T_MESH, 0.05, param=X)
        post = s.seg(FENCE, s.shade(color, 0.7), T_METAL, 0.03)
        s.quad_x(X, 0, top, z1, z2, mesh)
        z = z1
        while z < z2:
            s.quad_x(X, 0, top + 0.05, z, z + 0.12, post)
            z += rng.uniform(2.0, 3.0)
        s.quad_x(X, top - 0.06, top + 0.04, z1, z2, post)


def _backdrop(s, rng):
    Z = s.z_end
    x = s.face_l - 10
    while x < s.face_r + 10:
        w = rng.uniform(8, 25)
        if rng.random() < 0.75:
            color = s.jitter(_FACADE_COLORS[rng.integers(len(_FACADE_COLORS))], 10)
            height = rng.uniform(6, 30)
            s.plane_z(
                Z,
                [(x, 0), (x + w, 0), (x + w, height), (x, height)],
                s.seg(BUILDING, color, T_PLASTER, 0.05),
            )
            glass = s.seg(BUILDING, s.jitter((60, 70, 85), 8), T_GLASS, 0.05)
            y = 3.0
            while y < height - 2:
                xx = x + 1.0
                while xx < x + w - 2.0:
                    s.rect_z(xx, xx + 1.2, y, y + 1.5, Z, glass)
                    xx += 3.0
                y += 3.3
        else:
            _tree(s, x + w / 2, Z, rng, big=True, draw_now=True)
        x += w


def _tree(s, X, Z, rng, big=False, draw_now=False):
    trunk_h = rng.uniform(2.0, 3.5) if not big else rng.uniform(2.5, 5.0)
    crown = rng.uniform(1.3, 2.6) * (1.4 if big else 1.0)
    leaf_color = s.jitter(
        rng.choice([(50, 90, 35), (65, 105, 40), (40, 75, 45), (85, 105, 40)]), 10
    )
    nblobs = rng.integers(4, 8)
    blobs = [
        (
            X + rng.normal(0, crown * 0.5),
            trunk_h + crown * rng.uniform(0.4, 1.3),
            crown * rng.uniform(0.55, 0.9),
        )
        for _ in range(nblobs)
    ]

    def draw():
        bark = s.seg(VEGETATION, s.jitter((85, 65, 45), 10), T_BARK, 0.08)
        s.rect_z(X - 0.15, X + 0.15, 0, trunk_h + crown * 0.5, Z, bark, min_px=1.0)
        leaves = s.seg(VEGETATION, leaf_color, T_LEAVES, 0.1)
        for bx, by, r in blobs:
            s.ellipse_z(bx, by, r, r * 0.9, Z, leaves)

    if draw_now:
        draw()
    else:
        s.add(Z, draw)


def _street_trees(s):
    rng = s.rng
    for side in (-1, 1):
        if rng.random() < 0.5:
            edge = s.road_l if side < 0 else s.road_r
            z = rng.uniform(3, 12)
            while z < min(s.z_end, 70):
                _tree(s, edge - side * rng.uniform(0.8, 1.4), z, rng)
                z += rng.uniform(7, 15)


def _sign(s, X, Y, Z, rng):
    """A traffic sign face at (X, Y) in the plane at depth Z."""
    kind = rng.integers(5)
    r = rng.uniform(0.45, 0.65)
    red, white = s.jitter((200, 25, 30), 10), s.jitter((235, 235, 230), 6)
    blue, yellow = s.jitter((25, 70, 170), 10), s.jitter((240, 200, 30), 10)
    if kind == 0:  # prohibition: red ring, white disc
        s.ellipse_z(X, Y, r, r, Z, s.seg(SIGN, red, T_FLAT, 0.03))
        s.ellipse_z(X, Y, r * 0.72, r * 0.72, Z, s.seg(SIGN, white, T_FLAT, 0.03))
    elif kind == 1:  # mandatory: blue disc, white arrow
        s.ellipse_z(X, Y, r, r, Z, s.seg(SIGN, blue, T_FLAT, 0.03))
        s.rect_z(X - 0.05, X + 0.05, Y - r * 0.6, Y + r * 0.3, Z, s.seg(SIGN, white, T_FLAT, 0.03))
        s.plane_z(
            Z,
            [(X - r * 0.35, Y + r * 0.25), (X + r * 0.35, Y + r * 0.25), (X, Y + r * 0.7)],
            s.seg(SIGN, white, T_FLAT, 0.03),
        )
    elif kind == 2:  # warning: red triangle, white inside
        h = r * 1.8
        s.plane_z(
            Z,
            [(X - r, Y - h / 2), (X + r, Y - h / 2), (X, Y + h / 2)],
            s.seg(SIGN, red, T_FLAT, 0.03),
        )
        s.plane_z(
            Z,
            [(X - r * 0.6, Y - h * 0.33), (X + r * 0.6, Y - h * 0.33), (X, Y + h * 0.22)],
            s.seg(SIGN, white, T_FLAT, 0.03),
        )
    elif kind == 3:  # priority: yellow diamond with white border
        s.plane_z(
            Z, [(X, Y - r), (X + r, Y), (X, Y + r), (X - r, Y)], s.seg(SIGN, white, T_FLAT, 0.03)
        )
        q = r * 0.7
        s.plane_z(
            Z, [(X, Y - q), (X + q, Y), (X, Y + q), (X - q, Y)], s.seg(SIGN, yellow, T_FLAT, 0.03)
        )
    else:  # information: blue or green rectangle with a white band
        color = blue if rng.random() < 0.5 else s.jitter((30, 120, 60), 10)
        s.rect_z(
            X - r * 1.2, X + r * 1.2, Y - r * 0.8, Y + r * 0.8, Z, s.seg(SIGN, color, T_FLAT, 0.03)
        )
        s.rect_z(X - r, X + r, Y - 0.1 * r, Y + 0.2 * r, Z, s.seg(SIGN, white, T_FLAT, 0.03))


def _traffic_light(s, X, Y, Z, rng):
    """Light box with its lower edge at height Y."""
    body_color = s.jitter((35, 35, 38), 6) if rng.random() < 0.7 else s.jitter((200, 170, 40), 10)
    body = s.seg(LIGHT, body_color, T_METAL, 0.03)
    w, h = 0.5, 1.3
    if rng.random() < 0.6:  # a backplate, black with a white or yellow-striped border
        border = s.jitter(rng.choice([(230, 230, 225), (235, 200, 30)]), 8)
        s.rect_z(
            X - w / 2 - 0.2,
            X + w / 2 + 0.2,
            Y - 0.15,
            Y + h + 0.15,
            Z + 0.01,
            s.seg(LIGHT, border, T_FLAT, 0.03),
            min_px=3,
        )
        s.rect_z(
            X - w / 2 - 0.14,
            X + w / 2 + 0.14,
            Y - 0.09,
            Y + h + 0.09,
            Z + 0.005,
            s.seg(LIGHT, s.jitter((28, 28, 30), 4), T_FLAT, 0.03),
            min_px=2,
        )
    s.rect_z(X - w / 2, X + w / 2, Y, Y + h, Z, body, min_px=2)
    on = rng.integers(3)
    for i, color in enumerate(((220, 30, 25), (235, 170, 20), (40, 210, 80))):
        lit = np.asarray(color, np.float32) if i == on else np.asarray(color, np.float32) * 0.3
        s.ellipse_z(X, Y + h * (0.8 - 0.3 * i), 0.11, 0.11, Z, s.seg(LIGHT, lit, T_LAMP, 0.02))


def _poles(s):
    rng = s.rng
    metal = s.jitter(rng.choice([(135, 138, 140), (70, 80, 75), (40, 40, 42)]), 10)
    for side in (-1, 1):
        edge = s.road_l if side < 0 else s.road_r
        z = rng.uniform(4, 15)
        while z < min(s.z_end, 45):
            X = edge - side * rng.uniform(0.35, 0.6)
            kind = rng.choice(["lamp", "sign", "light"], p=[0.25, 0.4, 0.35])
            height = rng.uniform(2.6, 3.4) if kind == "sign" else rng.uniform(4.5, 8.0)
            s.add(
                z,
                lambda X=X, z=z, kind=kind, height=height, side=side: _pole(
                    s, X, z, kind, height, side, metal, rng
                ),
            )
            z += rng.uniform(7, 18)
    if rng.random() < 0.6:  # traffic lights over the road on an arm
        z = rng.uniform(12, 30)
        side = rng.choice([-1, 1])
        X = (s.road_l if side < 0 else s.road_r) - side * 0.5
        s.add(z, lambda X=X, z=z, side=side: _gantry(s, X, z, side, metal, rng))


def _pole(s, X, Z, kind, height, side, metal, rng):
    pole = s.seg(POLE, metal, T_METAL, 0.04)
    s.rect_z(X - 0.12, X + 0.12, 0, height, Z, pole, min_px=2.5)
    if kind == "sign":
        _sign(s, X, height - rng.uniform(0.3, 0.5), Z - 0.05, rng)
        if rng.random() < 0.4:
            _sign(s, X, height - 1.2, Z - 0.05, rng)
    elif kind == "light":
        _traffic_light(s, X, height - 1.4, Z - 0.05, rng)
    else:
        arm = X + side * rng.uniform(0.6, 1.5)
        s.line_z([(X, height), (arm, height + 0.1)], Z, pole, 0.08, min_px=1.2)
        lamp = s.seg(POLE, s.jitter((220, 215, 190), 8), T_LAMP, 0.02)
        s.rect_z(
            min(X, arm) if side > 0 else arm - 0.3,
            (arm + 0.3) if side > 0 else max(X, arm),
            height - 0.15,
            height + 0.05,
            Z,
            lamp,
            min_px=1.0,
        )


def _gantry(s, X, Z, side, metal, rng):
    pole = s.seg(POLE, metal, T_METAL, 0.04)
    height = rng.uniform(5.5, 6.5)
    s.rect_z(X - 0.12, X + 0.12, 0, height, Z, pole, min_px=2)
    end = X + side * rng.uniform(4, 8)
    lo, hi = min(X, end), max(X, end)
    s.rect_z(lo, hi, height - 0.25, height, Z, pole, min_px=1)
    for k in range(rng.integers(1, 4)):
        _traffic_light(s, end - side * (0.3 + 2.2 * k), height - 1.2, Z - 0.05, rng)


def _car(s, X, Z, rng, front=False):
    """A car at lateral position X whose nearest face is at depth Z (rear, or front if oncoming)."""
    inst = s.instance(CAR)
    w, length = rng.uniform(1.65, 1.95), rng.uniform(3.8, 4.8)
    height = rng.uniform(1.35, 1.55) if rng.random() < 0.75 else rng.uniform(1.6, 1.85)
    color = s.jitter(_CAR_COLORS[rng.integers(len(_CAR_COLORS))], 10)
    body = s.seg(CAR, color, T_METAL, 0.03, instance=inst)
    side_body = s.seg(CAR, s.shade(color, 0.82), T_METAL, 0.03, instance=inst)
    glass = s.seg(CAR, s.jitter((40, 48, 58), 6), T_GLASS, 0.05, instance=inst)
    tyre = s.seg(CAR, s.jitter((22, 22, 24), 3), T_FLAT, 0.05, instance=inst)
    X0, X1 = X - w / 2, X + w / 2
    Z0, Z1 = Z, Z + length
    shadow = s.seg(ROAD, s.shade(s.road_color, 0.45), T_ASPHALT, 0.05)

    def draw():
        s.ground(X0 - 0.1, X1 + 0.1, Z0 - 0.2, Z1, shadow)
        r, belt = 0.33, 0.55 * height
        # the side face that the camera sees (none when the car is straight ahead)
        Xs = X1 if X1 < 0 else (X0 if X0 > 0 else None)
        if Xs is not None:
            s.plane_x(Xs, [(0.25, Z0), (belt + 0.3, Z0), (belt + 0.3, Z1), (0.25, Z1)], side_body)
            roof0, roof1 = Z0 + length * 0.3, Z1 - length * 0.3
            s.plane_x(
                Xs,
                [(belt + 0.3, Z0 + 0.7), (height, roof0), (height, roof1), (belt + 0.3, Z1 - 0.5)],
                side_body,
            )
            s.plane_x(
                Xs,
                [
                    (belt + 0.38, Z0 + 0.85),
                    (height - 0.07, roof0 + 0.05),
                    (height - 0.07, roof1 - 0.05),
                    (belt + 0.38, Z1 - 0.65),
                ],
                glass,
            )
            for zc in (Z0 + 0.85, Z1 - 0.85):
                pts = [
                    (r + r * np.sin(t), zc + r * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 12)
                ]
                s.plane_x(Xs, pts, tyre)
        # the face towards the camera
        s.rect_z(X0 + 0.1, X0 + 0.4, 0, 0.4, Z0 + 0.3, tyre)
        s.rect_z(X1 - 0.4, X1 - 0.1, 0, 0.4, Z0 + 0.3, tyre)
        s.rect_z(X0, X1, 0.25, belt + 0.3, Z0, body)
        s.plane_z(
            Z0 + 0.3,
            [
                (X0 + 0.05, belt + 0.3),
                (X1 - 0.05, belt + 0.3),
                (X1 - 0.2, height),
                (X0 + 0.2, height),
            ],
            body,
        )
        s.plane_z(
            Z0 + 0.29,
            [
                (X0 + 0.15, belt + 0.36),
                (X1 - 0.15, belt + 0.36),
                (X1 - 0.27, height - 0.08),
                (X0 + 0.27, height - 0.08),
            ],
            glass,
        )
        lamp = (235, 230, 200) if front else (200, 20, 20)
        lamp_seg = s.seg(CAR, s.jitter(lamp, 8), T_LAMP, 0.02, instance=inst)
        s.rect_z(X0 + 0.05, X0 + 0.35, belt, belt + 0.15, Z0 - 0.01, lamp_seg)
        s.rect_z(X1 - 0.35, X1 - 0.05, belt, belt + 0.15, Z0 - 0.01, lamp_seg)
        plate = s.seg(CAR, s.jitter((225, 225, 215), 6), T_FLAT, 0.03, instance=inst)
        s.rect_z(X - 0.26, X + 0.26, 0.4, 0.52, Z0 - 0.01, plate)

    s.add(Z0, draw)


def _traffic(s):
    rng = s.rng
    width = s.road_r - s.road_l
    lanes = max(1, round(width / 3.3))
    for _ in range(rng.integers(0, 5)):
        lane = rng.integers(lanes)
        X = s.road_l + (lane + 0.5) * width / lanes + rng.normal(0, 0.2)
        Z = rng.uniform(5, min(s.z_end, 70))
        _car(s, X, Z, rng, front=X < 0 and lanes > 1)
    for side in (-1, 1):  # parked rows along the curb (on the parking strip when there is one)
        if rng.random() < 0.45 or side in s.parking:
            edge = s.road_l if side < 0 else s.road_r
            za, zb = s.parking.get(side, (rng.uniform(3, 15), rng.uniform(25, 60)))
            z = za + rng.uniform(-1, 2)
            while z < zb:
                _car(s, edge - side * rng.uniform(1.0, 1.3), z, rng, front=rng.random() < 0.5)
                z += rng.uniform(4.6, 8.0)


def _person(s, X, Z, rng, label=PERSON, inst=None, draw_now=False):
    inst = s.instance(label) if inst is None else inst
    height = rng.uniform(1.55, 1.95)
    shirt = s.jitter(_CLOTH_COLORS[rng.integers(len(_CLOTH_COLORS))], 12)
    pants = s.jitter(_CLOTH_COLORS[rng.integers(len(_CLOTH_COLORS))], 12)
    skin = s.jitter(_SKIN[rng.integers(len(_SKIN))], 8)
    hair = s.jitter(rng.choice([(30, 25, 20), (90, 60, 35), (160, 130, 80), (120, 120, 120)]), 6)
    stride = rng.uniform(-0.15, 0.15)
    bag = rng.random() < 0.25

    def draw():
        sh = s.seg(label, shirt, T_CLOTH, 0.07, instance=inst)
        pa = s.seg(label, pants, T_CLOTH, 0.07, instance=inst)
        sk = s.seg(label, skin, T_FLAT, 0.04, instance=inst)
        ha = s.seg(label, hair, T_FLAT, 0.06, instance=inst)
        hip, shoulder = 0.48 * height, 0.82 * height
        s.plane_z(
            Z,
            [(X - 0.17 - stride, 0), (X - 0.04 - stride, 0), (X - 0.01, hip), (X - 0.17, hip)],
            pa,
        )
        s.plane_z(
            Z,
            [(X + 0.04 + stride, 0), (X + 0.17 + stride, 0), (X + 0.17, hip), (X + 0.01, hip)],
            pa,
        )
        s.plane_z(
            Z,
            [
                (X - 0.19, hip - 0.05),
                (X + 0.19, hip - 0.05),
                (X + 0.23, shoulder),
                (X - 0.23, shoulder),
            ],
            sh,
        )
        for sx in (-1, 1):
            s.plane_z(
                Z,
                [
                    (X + sx * 0.22, shoulder),
                    (X + sx * 0.3, shoulder - 0.05),
                    (X + sx * 0.3 + sx * stride * 0.3, hip - 0.02),
                    (X + sx * 0.22 + sx * stride * 0.3, hip - 0.02),
                ],
                sh,
            )
        if bag:
            s.rect_z(
                X + 0.25,
                X + 0.45,
                hip - 0.1,
                hip + 0.25,
                Z - 0.02,
                s.seg(label, s.jitter((60, 45, 35), 10), T_CLOTH, 0.05, instance=inst),
            )
        head_y = shoulder + 0.13 * height * 0.75
        s.ellipse_z(X, head_y, 0.1, 0.13, Z, sk)
        s.plane_z(
            Z,
            [
                (X - 0.1, head_y + 0.04),
                (X + 0.1, head_y + 0.04),
                (X + 0.07, head_y + 0.13),
                (X - 0.07, head_y + 0.13),
            ],
            ha,
        )

    if draw_now:
        draw()
    else:
        s.add(Z, draw)


def _pedestrians(s):
    rng = s.rng
    for side in (-1, 1):
        lo, hi = (s.walk_l, s.road_l) if side < 0 else (s.road_r, s.walk_r)
        for _ in range(rng.poisson(3.5)):
            X = rng.uniform(lo + 0.3, hi - 0.3)
            Z = 4 + (min(s.z_end, 28) - 4) * rng.random() ** 1.4  # more people near the camera
            _person(s, X, Z, rng)
            if rng.random() < 0.35:  # a companion, partly overlapping
                _person(
                    s,
                    X + rng.choice([-1, 1]) * rng.uniform(0.35, 0.6),
                    Z + rng.uniform(-0.8, 0.8),
                    rng,
                )
    if rng.random() < 0.2:  # crossing the road
        for _ in range(rng.integers(1, 4)):
            _person(s, rng.uniform(s.road_l, s.road_r), rng.uniform(8, 25), rng)


def _bicycle_side(s, X, Z, rng, inst, facing):
    """Bicycle seen from the side in the plane at depth Z; returns saddle/handle positions."""
    frame = s.jitter(
        rng.choice([(30, 30, 30), (180, 30, 30), (30, 60, 150), (200, 200, 200), (40, 110, 60)]), 10
    )
    fseg = s.seg(BICYCLE, frame, T_METAL, 0.04, instance=inst)
    tseg = s.seg(BICYCLE, s.jitter((25, 25, 25), 3), T_FLAT, 0.04, instance=inst)
    r = 0.34
    back, front = X - facing * 0.52, X + facing * 0.52
    bracket = (X - facing * 0.05, 0.3)
    saddle = (X - facing * 0.2, 0.9)
    handle = (front - facing * 0.12, 1.0)
    inside = s.seg(BICYCLE, (0, 0, 0), instance=inst)  # label only: the wheel is see-through
    spoke = s.seg(BICYCLE, s.jitter((150, 150, 150), 10), T_METAL, 0.04, instance=inst)
    for cx in (back, front):
        s.see_through = True
        s.ellipse_z(cx, r, r, r, Z, inside)
        s.see_through = False
        s.ellipse_z(cx, r, r, r, Z, tseg, width=0.08, min_px=2)
        for a in (0.3, 1.35, 2.4):
            dx, dy = 0.9 * r * np.cos(a), 0.9 * r * np.sin(a)
            s.line_z([(cx - dx, r - dy), (cx + dx, r + dy)], Z, spoke, 0.01, min_px=1)
    s.line_z([(back, r), bracket, saddle, (back, r)], Z, fseg, 0.05, min_px=2)
    s.line_z([bracket, (handle[0] - facing * 0.05, 0.85), saddle], Z, fseg, 0.05, min_px=2)
    s.line_z([(front, r), handle], Z, fseg, 0.05, min_px=2)
    s.line_z(
        [(saddle[0] - 0.12, saddle[1] + 0.04), (saddle[0] + 0.12, saddle[1] + 0.04)],
        Z,
        tseg,
        0.05,
        min_px=1.5,
    )
    return saddle, handle, bracket


def _cyclists(s):
    rng = s.rng
    for _ in range(rng.binomial(3, 0.45)):
        crossing = rng.random() < 0.7
        rider, bike = s.instance(RIDER), s.instance(BICYCLE)
        if crossing:
            X, Z = rng.uniform(s.road_l + 1, s.road_r - 1), rng.uniform(4, 18)
            facing = rng.choice([-1, 1])
            skin = s.jitter(_SKIN[rng.integers(len(_SKIN))], 8)
            if rng.random() < 0.5:  # high-visibility jacket
                shirt = s.jitter(rng.choice([(225, 230, 50), (240, 130, 30)]), 12)
            else:
                shirt = s.jitter(_CLOTH_COLORS[rng.integers(len(_CLOTH_COLORS))], 12)
            pants = s.jitter(_CLOTH_COLORS[rng.integers(len(_CLOTH_COLORS))], 12)
            helmet = rng.random() < 0.7

            def draw(
                X=X,
                Z=Z,
                facing=facing,
                skin=skin,
                shirt=shirt,
                pants=pants,
                helmet=helmet,
                rider=rider,
                bike=bike,
            ):
                saddle, handle, bracket = _bicycle_side(s, X, Z, rng, bike, facing)
                sh = s.seg(RIDER, shirt, T_CLOTH, 0.07, instance=rider)
                pa = s.seg(RIDER, pants, T_CLOTH, 0.07, instance=rider)
                sk = s.seg(RIDER, skin, T_FLAT, 0.04, instance=rider)
                hip = (saddle[0], saddle[1] + 0.08)
                shoulder = (saddle[0] + facing * 0.25, saddle[1] + 0.62)
                knee = (saddle[0] + facing * 0.3, 0.62)
                s.line_z([hip, knee, (bracket[0] + facing * 0.08, 0.2)], Z - 0.02, pa, 0.13, 1.5)
                s.line_z([hip, shoulder], Z - 0.02, sh, 0.3, 2)
                s.line_z([shoulder, handle], Z - 0.02, sh, 0.08, 1.2)
                head = (shoulder[0] + facing * 0.05, shoulder[1] + 0.2)
                s.ellipse_z(head[0], head[1], 0.11, 0.13, Z - 0.02, sk)
                if helmet:
                    s.plane_z(
                        Z - 0.03,
                        [
                            (head[0] - 0.13, head[1] + 0.02),
                            (head[0] + 0.13, head[1] + 0.02),
                            (head[0], head[1] + 0.17),
                        ],
                        s.seg(RIDER, s.jitter((220, 220, 40), 20), T_FLAT, 0.03, instance=rider),
                    )

            s.add(Z, draw)
        else:  # riding along the street: seen from behind
            side = rng.choice([-1, 1])
            X = (s.road_l + 0.8) if side < 0 else (s.road_r - 0.8)
            Z = rng.uniform(4, 18)

            def draw(X=X, Z=Z, rider=rider, bike=bike):
                tseg = s.seg(BICYCLE, s.jitter((25, 25, 25), 3), T_FLAT, 0.04, instance=bike)
                s.rect_z(X - 0.04, X + 0.04, 0, 0.68, Z + 0.02, tseg, min_px=2)
                s.rect_z(X - 0.28, X + 0.28, 0.98, 1.03, Z + 0.5, tseg, min_px=1)
                # the rider sits on the saddle: a person lifted by 0.35 m
                _raised(
                    s, lambda: _person(s, X, Z, rng, label=RIDER, inst=rider, draw_now=True), 0.35
                )()

            s.add(Z, draw)
    if rng.random() < 0.4:  # parked bicycles on a sidewalk, side-on
        side = rng.choice([-1, 1])
        lo, hi = (s.walk_l, s.road_l) if side < 0 else (s.road_r, s.walk_r)
        Z = rng.uniform(4, 18)
        X = rng.uniform(lo + 0.6, hi - 0.6)
        for k in range(rng.integers(1, 4)):
            inst = s.instance(BICYCLE)
            s.add(
                Z + 0.6 * k,
                lambda Zk=Z + 0.6 * k, Xk=X + 0.15 * k, inst=inst: _bicycle_side(
                    s, Xk, Zk, rng, inst, 1
                ),
            )


def _raised(s, fn, dy):
    """Run ``fn`` with the world lifted by ``dy`` metres (camera height lowered)."""

    def wrapped():
        s.hc -= dy
        try:
            fn()
        finally:
            s.hc += dy

    return wrapped


def _clutter(s):
    """Void street furniture ("static"): bins, advertising columns, boxes."""
    rng = s.rng
    for _ in range(rng.integers(0, 4)):
        side = rng.choice([-1, 1])
        lo, hi = (s.walk_l, s.road_l) if side < 0 else (s.road_r, s.walk_r)
        X, Z = rng.uniform(lo + 0.3, hi - 0.3), rng.uniform(4, 40)
        w, h = rng.choice([(0.6, 1.0), (1.2, 2.8), (0.8, 1.3)])
        color = s.jitter(
            rng.choice([(40, 90, 50), (200, 120, 40), (90, 90, 95), (170, 60, 50)]), 15
        )
        s.add(
            Z,
            lambda X=X, Z=Z, w=w, h=h, color=color: s.rect_z(
                X - w / 2, X + w / 2, 0, h, Z, s.seg(STATIC, color, T_CONCRETE, 0.06)
            ),
        )


def _hood(s):
    rng = s.rng
    if rng.random() > 0.6:
        return
    depth = s.h * rng.uniform(0.06, 0.13)
    color = s.jitter(rng.choice([(30, 30, 35), (180, 180, 185), (60, 20, 20)]), 8)
    hood = s.seg(EGO, color, T_GLASS, 0.04)
    xs = np.linspace(-2, s.w + 2, 24)
    c, half = s.w * rng.uniform(0.45, 0.55), s.w * rng.uniform(0.6, 0.9)
    top = s.h - depth * np.clip(1 - ((xs - c) / half) ** 2, 0.15, 1)
    s.poly(list(zip(xs, top)) + [(s.w + 2, s.h + 2), (-2, s.h + 2)], hood)


def _build(s):
    _layout(s)
    _sky_and_ground(s)
    _facades(s)
    _street_trees(s)
    _poles(s)
    _traffic(s)
    _pedestrians(s)
    _cyclists(s)
    _clutter(s)
    for _, _, fn in sorted(s.objects, key=lambda o: (-o[0], o[1])):
        fn()
    _hood(s)


# --------------------------------------------------------------------------------------------------
# appearance
# --------------------------------------------------------------------------------------------------


def _noise(rng, h, w, cell):
    """Smooth noise of unit-ish spread with features ``cell`` pixels wide."""
    sh, sw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    small = rng.standard_normal((sh, sw)).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC))


def _render(s):
    rng, h, w = s.rng, s.h, s.w
    seg = np.asarray(s.canvas, dtype=np.int32)
    label_seg = seg
    if s.over is not None:
        over = np.asarray(s.over, dtype=np.int32)
        label_seg = np.where(over > 0, over, seg)
    label = np.asarray(s.p_label, np.uint8)[label_seg]
    instance = np.asarray(s.p_inst, np.int32)[label_seg]
    tex = np.asarray(s.p_tex, np.uint8)[seg].ravel()
    color = np.asarray(s.p_color, np.float32)[seg].reshape(-1, 3)
    amp = np.asarray(s.p_amp, np.float32)[seg].ravel()
    param = np.asarray(s.p_param, np.float32)[seg].ravel()

    scale = w / 512.0
    fine = rng.standard_normal(h * w, dtype=np.float32)
    mid = _noise(rng, h, w, 4 * scale).ravel()
    coarse = _noise(rng, h, w, 24 * scale).ravel()
    shade = 1.0 + amp * fine
    order = np.argsort(tex, kind="stable")
    bounds = np.searchsorted(tex[order], np.arange(T_PANEL + 2))
    present = {
        t: order[bounds[t] : bounds[t + 1]] for t in range(T_PANEL + 1) if bounds[t + 1] > bounds[t]
    }

    def coords(idx):
        return (idx // w).astype(np.float32), (idx % w).astype(np.float32)

    def ground_xz(idx):
        y, x = coords(idx)
        z = s.f * s.hc / np.maximum(y + 0.5 - s.yh, 0.5)
        return (x + 0.5 - s.xv) * z / s.f, z

    def wall_yz(idx):
        y, x = coords(idx)
        dx = x + 0.5 - s.xv
        dx = np.where(np.abs(dx) < 0.5, 0.5, dx)
        z = np.clip(s.f * param[idx] / dx, 0.5, 500)
        return s.hc - (y + 0.5 - s.yh) * z / s.f, z

    def fade(z, far):
        return np.clip(1.0 - z / far, 0.0, 1.0)

    for t, idx in present.items():
        if t == T_ASPHALT:
            shade[idx] += 0.04 * mid[idx] + 0.03 * coarse[idx]
        elif t == T_TILES:
            X, Z = ground_xz(idx)
            size = param[idx]
            u, v = np.mod(X / size, 1.0), np.mod(Z / size, 1.0)
            line = (np.minimum(u, 1 - u) < 0.06) | (np.minimum(v, 1 - v) < 0.06)
            shade[idx] += -0.22 * line * fade(Z, 25 * scale + 10) + 0.04 * coarse[idx]
        elif t == T_GRASS:
            shade[idx] += 0.1 * mid[idx] + 0.08 * coarse[idx]
            color[idx] += np.outer(mid[idx], [6.0, 8.0, -4.0])
        elif t == T_LEAVES:
            clusters = np.tanh(1.6 * mid[idx])
            shade[idx] += 0.28 * clusters + 0.05 * coarse[idx]
            color[idx] += np.outer(clusters, [4.0, 10.0, -2.0])
        elif t == T_PLASTER:
            shade[idx] += 0.05 * coarse[idx] + 0.02 * mid[idx]
        elif t == T_BRICK:
            Y, Z = wall_yz(idx)
            row = np.floor(Y / 0.25)
            u = np.mod(Z / 0.5 + 0.5 * np.mod(row, 2), 1.0)
            v = np.mod(Y / 0.25, 1.0)
            mortar = (np.minimum(u, 1 - u) < 0.07) | (np.minimum(v, 1 - v) < 0.1)
            shade[idx] += 0.3 * mortar * fade(Z, 30 * scale + 8) + 0.06 * coarse[idx]
        elif t == T_GLASS:
            shade[idx] += 0.22 * coarse[idx] + 0.05 * mid[idx]
        elif t == T_MESH:
            Y, Z = wall_yz(idx)
            a, b = np.mod((Y + Z) / 0.2, 1.0), np.mod((Y - Z) / 0.2, 1.0)
            wire = (np.minimum(a, 1 - a) < 0.12) | (np.minimum(b, 1 - b) < 0.12)
            shade[idx] += (0.35 * wire - 0.3) * fade(Z, 40 * scale + 10) - 0.1
        elif t == T_PANEL:  # concrete panels with joints every 2.5 m and a stain gradient
            Y, Z = wall_yz(idx)
            u = np.mod(Z / 2.5, 1.0)
            joint = np.minimum(u, 1 - u) < 0.02 + 0.01 * Z / 10
            shade[idx] += (
                -0.3 * joint * fade(Z, 40 * scale + 10)
                + 0.06 * coarse[idx]
                - 0.06 * np.clip(1.0 - Y, 0, 1)
            )
        elif t == T_CONCRETE:
            shade[idx] += 0.07 * coarse[idx] + 0.04 * mid[idx]
        elif t == T_METAL:
            y, _ = coords(idx)
            shade[idx] += 0.04 * np.sin(y * 0.7 / scale)
        elif t == T_MARKING:
            shade[idx] -= 0.25 * (mid[idx] > 1.0)
        elif t == T_BARK:
            _, x = coords(idx)
            shade[idx] += 0.08 * np.sin(x * 2.1 / scale + 3 * mid[idx])
        elif t == T_LAMP:
            shade[idx] = 1.0 + 0.02 * fine[idx]
        elif t == T_SKY:
            y, _ = coords(idx)
            g = np.clip(y / max(s.yh, 1.0), 0, 1)[:, None] ** 0.8
            color[idx] = (1 - g) * s.sky_top + g * s.sky_horizon
            cloud_noise = _noise(rng, h, w, 48 * scale).ravel()[idx] + 0.25 * coarse[idx]
            cloud = np.clip((cloud_noise - (1.2 - 1.6 * s.clouds)) * 1.5, 0, 1)[:, None]
            cloud_color = np.clip(s.sky_horizon * 0.3 + 170 + 10 * coarse[idx, None], 0, 255)
            color[idx] = (1 - cloud) * color[idx] + cloud * cloud_color
            shade[idx] = 1.0 + 0.01 * fine[idx]

    img = color * shade[:, None]
    # lighting: level, colour cast, cast shadows, soft illumination gradient, sensor noise, blur
    level = rng.uniform(0.7, 1.2)
    cast = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    light = level * (1.0 + 0.04 * coarse)
    shadow = np.asarray(s.shadow, np.float32).ravel() / 255.0
    sky_or_void = (label.ravel() == SKY) | (label.ravel() == EGO)
    light = light * (1.0 - rng.uniform(0.25, 0.45) * shadow * ~sky_or_void)
    img = img * light[:, None] * cast + rng.uniform(1.0, 4.0) * fine[:, None]
    img = np.clip(img, 0, 255).astype(np.uint8).reshape(h, w, 3)
    # slight optical blur: a 3x3 kernel whose centre weight varies per image
    centre = rng.uniform(2.0, 8.0) / max(scale, 0.25)
    kernel = ImageFilter.Kernel((3, 3), [0.5, 1, 0.5, 1, centre, 1, 0.5, 1, 0.5])
    return np.asarray(Image.fromarray(img).filter(kernel)), label, instance


def render_scene(seed, height=256, width=512):
    """One scene: (image uint8 (H, W, 3), labelIds uint8 (H, W), instanceIds int32 (H, W)).

    ``seed`` is anything ``numpy.random.default_rng`` accepts (an int or a sequence of ints).
    """
    s = _Scene(np.random.default_rng(seed), height, width)
    _build(s)
    return _render(s)


# --------------------------------------------------------------------------------------------------
# writing the set
# --------------------------------------------------------------------------------------------------


def _params(num_train, num_val, height, width, seed):
    for name, v, lo in (
        ("num_train", num_train, 0),
        ("num_val", num_val, 0),
        ("height", height, 16),
        ("width", width, 16),
    ):
        if int(v) != v or int(v) < lo:
            raise DataError(f"synthetic option {name} must be an integer >= {lo}, not {v!r}")
    if num_train + num_val < 1:
        raise DataError("synthetic data set needs num_train + num_val >= 1")
    return {
        "version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "height": int(height),
        "width": int(width),
        "seed": int(seed),
    }


def _read_manifest(data_dir):
    try:
        with open(os.path.join(data_dir, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _names(split, index, params):
    """City and id of image ``index`` of ``split``; validation cities follow the training ones."""
    first = 0 if split == "train" else -(-params["num_train"] // IMAGES_PER_CITY)
    city = f"synth{first + index // IMAGES_PER_CITY}"
    return city, f"{city}_{index % IMAGES_PER_CITY:06d}_000019"


def _write_example(root, split, index, params):
    seed = (params["seed"], _SPLIT_CODE[split], index)
    image, label, instance = render_scene(seed, params["height"], params["width"])
    city, ident = _names(split, index, params)
    img_dir = os.path.join(root, "leftImg8bit", split, city)
    gt_dir = os.path.join(root, "gtFine", split, city)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    Image.fromarray(image).save(os.path.join(img_dir, f"{ident}_leftImg8bit.png"), compress_level=1)
    gt = os.path.join(gt_dir, f"{ident}_gtFine_")
    Image.fromarray(label).save(gt + "labelIds.png", compress_level=1)
    Image.fromarray(instance.astype(np.uint16)).save(gt + "instanceIds.png", compress_level=1)
    Image.fromarray(CITYSCAPES_LABEL_ID_COLORS[label]).save(gt + "color.png", compress_level=1)


def _remove_stale_temps(parent, base):
    for name in os.listdir(parent):
        if not name.startswith(f".{base}.tmp-"):
            continue
        try:
            pid = int(name.split("-")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            pass


def generate_synthetic(
    data_dir, *, num_train=300, num_val=50, height=256, width=512, seed=0, verbose=True
):
    """Write the synthetic Cityscapes-format set into ``data_dir`` unless it is already there.

    A set is complete when ``data_dir/synthetic.json`` exists with the same parameters; it is then
    reused. Otherwise the set is rendered into a temporary sibling directory and renamed into place
    in one step, so an interrupted run never leaves a partial set that looks complete. An existing
    ``data_dir`` that is empty or holds a synthetic set with other parameters is replaced; any other
    non-empty directory raises ``DataError``. Returns ``data_dir``.
    """
    params = _params(num_train, num_val, height, width, seed)
    data_dir = os.fspath(data_dir)
    if _read_manifest(data_dir) == params:
        return data_dir
    if os.path.exists(data_dir):
        if not os.path.isdir(data_dir):
            raise DataError(f"data_dir {data_dir} exists and is not a directory")
        if os.listdir(data_dir) and _read_manifest(data_dir) is None:
            raise DataError(
                f"data_dir {data_dir} is not empty and holds no synthetic data set ({MANIFEST} "
                f"missing); choose a new or empty directory for --dataset=synthetic"
            )
    parent = os.path.dirname(os.path.abspath(data_dir))
    base = os.path.basename(os.path.abspath(data_dir))
    os.makedirs(parent, exist_ok=True)
    _remove_stale_temps(parent, base)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-{os.getpid()}-", dir=parent)
    start = time.perf_counter()
    total = params["num_train"] + params["num_val"]
    if verbose:
        print(
            f"generating the synthetic data set ({params['num_train']} train + "
            f"{params['num_val']} val images, {height}x{width}) in {data_dir} ...",
            file=sys.stderr,
            flush=True,
        )
    try:
        jobs = [(s, i) for s in ("train", "val") for i in range(params[f"num_{s}"])]
        # numpy and zlib release the GIL: two threads give ~1.5x on two cores
        pool = concurrent.futures.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))
        try:
            futures = [pool.submit(_write_example, tmp, split, i, params) for split, i in jobs]
            for future in futures:
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(params, f, indent=2)
        if os.path.exists(data_dir):
            old = tempfile.mkdtemp(prefix=f".{base}.tmp-{os.getpid()}-old-", dir=parent)
            os.rmdir(old)
            os.rename(data_dir, old)
            os.rename(tmp, data_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, data_dir)
            except OSError:
                if _read_manifest(data_dir) != params:  # not a concurrent twin: a real error
                    raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        seconds = time.perf_counter() - start
        print(
            f"generated {total} images in {seconds:.1f} s ({1000 * seconds / total:.0f} ms/image)",
            file=sys.stderr,
            flush=True,
        )
    return data_dir


@DATASETS.register("synthetic")
def synthetic(data_dir, *, num_train=300, num_val=50, height=256, width=512, seed=0):
    """Synthetic street scenes in Cityscapes format (generated on first use; 19 classes)."""
    generate_synthetic(
        data_dir, num_train=num_train, num_val=num_val, height=height, width=width, seed=seed
    )
    return DatasetSpec(
        "synthetic",
        data_dir,
        cityscapes_table(),
        lambda split: cityscapes_examples(data_dir, split),
        options={
            "num_train": num_train,
            "num_val": num_val,
            "height": height,
            "width": width,
            "seed": seed,
        },
    )
