"""The scene description: label ids, textures, palettes, the ``Scene`` canvas and the street layout.

A ``Scene`` is a canvas of segment ids; every segment carries a label, an instance id, a base colour
and a texture. Drawing helpers project world coordinates (metres; X to the right, Y up, Z away from
the camera) through a pinhole camera above the road and paint shapes with a segment id. Objects are
queued with a depth (``Scene.add``) and drawn far to near, so that nearer ones occlude farther ones.
"""

import numpy as np
from PIL import Image, ImageDraw

from tfseg.data.labels import CITYSCAPES_LABEL_IDS

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

FACADE_COLORS = np.array(
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
CAR_COLORS = np.array(
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
CLOTH_COLORS = np.array(
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
SKIN = np.array([(235, 200, 170), (200, 150, 110), (150, 100, 70), (95, 65, 45)], np.float32)


# --------------------------------------------------------------------------------------------------
# scene drawing: a canvas of segment ids, each segment with label, instance, colour and texture
# --------------------------------------------------------------------------------------------------


class Scene:
    """Canvas of segment ids plus the segments' properties, the camera and the queued objects."""

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
        self.objects = []  # (depth, order, callable) drawn far to near

    # ---- segments -------------------------------------------------------------------------------
    def seg(self, label, color, tex=T_FLAT, amp=0.04, instance=None, param=0.0):
        """A new segment; returns its id. ``param``: texture parameter (e.g. a wall's X)."""
        self.p_label.append(label)
        self.p_inst.append(label if instance is None else instance)
        self.p_color.append(tuple(float(c) for c in np.clip(color, 0, 255)))
        self.p_tex.append(tex)
        self.p_amp.append(amp)
        self.p_param.append(param)
        return len(self.p_label) - 1

    def instance(self, label):
        """The next instance id of ``label`` (``label * 1000 + k``)."""
        k = self.instances.get(label, 0)
        self.instances[label] = k + 1
        return label * 1000 + k

    def jitter(self, color, sigma=12.0):
        """``color`` with Gaussian noise per channel, clipped to 0..255."""
        return np.clip(np.asarray(color, np.float32) + self.rng.normal(0, sigma, 3), 0, 255)

    def shade(self, color, factor):
        """``color`` scaled by ``factor``, clipped to 0..255."""
        return np.clip(np.asarray(color, np.float32) * factor, 0, 255)

    # ---- projection -----------------------------------------------------------------------------
    def proj(self, X, Y, Z):
        """Image position (x, y) of the world point (X, Y, Z)."""
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
        """Rectangle in the vertical plane at lateral position X."""
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
        """Ellipse facing the camera (filled, or its outline ``width`` metres wide)."""
        cx, cy = self.proj(X, Y, Z)
        ax, ay = max(self.f * rx / Z, 0.5), max(self.f * ry / Z, 0.5)
        box = (cx - ax, cy - ay, cx + ax, cy + ay)
        if width:
            px = max(1, round(max(self.f * width / Z, min_px)))
            self.paint("ellipse", box, seg, key="outline", width=px)
        else:
            self.paint("ellipse", box, seg)

    def line_z(self, pts, Z, seg, width, min_px=1.0):
        """Polyline facing the camera, ``width`` metres (at least ``min_px`` pixels) wide."""
        xy = [self.proj(x, y, Z) for x, y in pts]
        self.paint(
            "line", xy, seg, width=max(1, round(max(self.f * width / Z, min_px))), joint="curve"
        )

    def add(self, depth, fn):
        """Queue ``fn`` to be drawn at ``depth`` (far to near; ties in the order added)."""
        self.objects.append((depth, len(self.objects), fn))


def layout(s):
    """Road, sidewalk and facade positions (metres) and the depth range of the street."""
    rng = s.rng
    s.road_l = -rng.uniform(2.5, 9.0)
    s.road_r = rng.uniform(2.5, 9.0)
    s.walk_l = s.road_l - rng.uniform(2.5, 5.5)
    s.walk_r = s.road_r + rng.uniform(2.5, 5.5)
    s.face_l = s.walk_l - (rng.uniform(2.0, 6.0) if rng.random() < 0.6 else 0.0)
    s.face_r = s.walk_r + (rng.uniform(2.0, 6.0) if rng.random() < 0.6 else 0.0)
    s.z_end = rng.uniform(45, 140) if rng.random() < 0.55 else 400.0
    s.z_near = 1.2
