"""Road users, each a separate instance: cars, pedestrians, cyclists (rider + bicycle), bicycles.

Every function takes the ``Scene`` and draws with its random generator (call order matters: it is
part of the generated data set). Objects are queued with ``Scene.add`` and drawn far to near.
"""

import numpy as np

from tfseg.data.synthetic.scene import (
    BICYCLE,
    CAR,
    CAR_COLORS,
    CLOTH_COLORS,
    PERSON,
    RIDER,
    ROAD,
    SKIN,
    T_ASPHALT,
    T_CLOTH,
    T_FLAT,
    T_GLASS,
    T_LAMP,
    T_METAL,
)


def _car(s, X, Z, rng, front=False):
    """A car at lateral position X whose nearest face is at depth Z (rear, or front if oncoming)."""
    inst = s.instance(CAR)
    w, length = rng.uniform(1.65, 1.95), rng.uniform(3.8, 4.8)
    height = rng.uniform(1.35, 1.55) if rng.random() < 0.75 else rng.uniform(1.6, 1.85)
    color = s.jitter(CAR_COLORS[rng.integers(len(CAR_COLORS))], 10)
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


def traffic(s):
    """Cars in the lanes (oncoming on the left of multi-lane roads) and parked rows."""
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
    """A person facing the camera at (X, Z): drawn now, or queued in depth order."""
    inst = s.instance(label) if inst is None else inst
    height = rng.uniform(1.55, 1.95)
    shirt = s.jitter(CLOTH_COLORS[rng.integers(len(CLOTH_COLORS))], 12)
    pants = s.jitter(CLOTH_COLORS[rng.integers(len(CLOTH_COLORS))], 12)
    skin = s.jitter(SKIN[rng.integers(len(SKIN))], 8)
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


def pedestrians(s):
    """People on both sidewalks (some in pairs), sometimes people crossing the road."""
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


def cyclists(s):
    """Cyclists crossing the road (side-on) or riding along it (from behind); parked bicycles."""
    rng = s.rng
    for _ in range(rng.binomial(3, 0.45)):
        crossing = rng.random() < 0.7
        rider, bike = s.instance(RIDER), s.instance(BICYCLE)
        if crossing:
            _crossing_cyclist(s, rng, rider, bike)
        else:
            _cyclist_from_behind(s, rng, rider, bike)
    if rng.random() < 0.4:
        _parked_bicycles(s, rng)


def _crossing_cyclist(s, rng, rider, bike):
    """A rider on a bicycle seen from the side, crossing the road."""
    X, Z = rng.uniform(s.road_l + 1, s.road_r - 1), rng.uniform(4, 18)
    facing = rng.choice([-1, 1])
    skin = s.jitter(SKIN[rng.integers(len(SKIN))], 8)
    if rng.random() < 0.5:  # high-visibility jacket
        shirt = s.jitter(rng.choice([(225, 230, 50), (240, 130, 30)]), 12)
    else:
        shirt = s.jitter(CLOTH_COLORS[rng.integers(len(CLOTH_COLORS))], 12)
    pants = s.jitter(CLOTH_COLORS[rng.integers(len(CLOTH_COLORS))], 12)
    helmet = rng.random() < 0.7

    def draw():
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


def _cyclist_from_behind(s, rng, rider, bike):
    """A rider on a bicycle riding along the street near the curb, seen from behind."""
    side = rng.choice([-1, 1])
    X = (s.road_l + 0.8) if side < 0 else (s.road_r - 0.8)
    Z = rng.uniform(4, 18)

    def draw():
        tseg = s.seg(BICYCLE, s.jitter((25, 25, 25), 3), T_FLAT, 0.04, instance=bike)
        s.rect_z(X - 0.04, X + 0.04, 0, 0.68, Z + 0.02, tseg, min_px=2)
        s.rect_z(X - 0.28, X + 0.28, 0.98, 1.03, Z + 0.5, tseg, min_px=1)
        # the rider sits on the saddle: a person lifted by 0.35 m
        _raised(s, lambda: _person(s, X, Z, rng, label=RIDER, inst=rider, draw_now=True), 0.35)()

    s.add(Z, draw)


def _parked_bicycles(s, rng):
    """One to three bicycles parked side-on in a row on one sidewalk."""
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
