"""Street furniture: poles with lamps, traffic signs and lights, gantries, clutter, the hood.

Every function takes the ``Scene`` and draws with its random generator (call order matters: it is
part of the generated data set).
"""

import numpy as np

from tfseg.data.synthetic.scene import (
    EGO,
    LIGHT,
    POLE,
    SIGN,
    STATIC,
    T_CONCRETE,
    T_FLAT,
    T_GLASS,
    T_LAMP,
    T_METAL,
)


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


def poles(s):
    """Lamp posts, sign posts and traffic-light posts along both curbs; a gantry sometimes."""
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
    """A pole carrying one or two signs, a traffic light, or a lamp on an arm."""
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
    """A pole with an arm over the road carrying one to three traffic lights."""
    pole = s.seg(POLE, metal, T_METAL, 0.04)
    height = rng.uniform(5.5, 6.5)
    s.rect_z(X - 0.12, X + 0.12, 0, height, Z, pole, min_px=2)
    end = X + side * rng.uniform(4, 8)
    lo, hi = min(X, end), max(X, end)
    s.rect_z(lo, hi, height - 0.25, height, Z, pole, min_px=1)
    for k in range(rng.integers(1, 4)):
        _traffic_light(s, end - side * (0.3 + 2.2 * k), height - 1.2, Z - 0.05, rng)


def clutter(s):
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


def hood(s):
    """The ego vehicle's hood (void) at the bottom of the image, in 60 % of the scenes."""
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
