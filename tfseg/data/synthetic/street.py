"""The street itself: sky, terrain, sidewalks, road and markings, facades, walls, fences and trees.

Every function takes the ``Scene`` and draws with its random generator, in a fixed order: the
order of the calls is part of the generated data set (same seed, same images).
"""

from tfseg.data.synthetic.scene import (
    BUILDING,
    FACADE_COLORS,
    FENCE,
    PARKING,
    ROAD,
    SIDEWALK,
    SKY,
    T_ASPHALT,
    T_BARK,
    T_BRICK,
    T_CONCRETE,
    T_GLASS,
    T_GRASS,
    T_LEAVES,
    T_MARKING,
    T_MESH,
    T_METAL,
    T_PANEL,
    T_PLASTER,
    T_SKY,
    T_TILES,
    TERRAIN,
    VEGETATION,
    WALL,
)

# --------------------------------------------------------------------------------------------------
# sky and ground
# --------------------------------------------------------------------------------------------------


def sky_and_ground(s):
    """Sky, terrain, sidewalks with curbs, the road (patches, parking, markings) and a shadow."""
    _sky(s)
    _terrain(s)
    z0, z1 = s.z_near, s.z_end + 60
    _sidewalks(s, z0, z1)
    _road(s, z0, z1)
    _markings(s, z0, min(z1, 200))
    _facade_shadow(s, z0, z1)


def _sky(s):
    """Sky above the horizon: a clear or overcast gradient; the clouds are added when rendering."""
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


def _terrain(s):
    """Grass everywhere below the horizon (what the road and sidewalks do not cover)."""
    grass = s.jitter(s.rng.choice([(135, 160, 75), (155, 165, 90), (170, 158, 105)]), 10)
    terrain = s.seg(TERRAIN, grass, T_GRASS, 0.12)
    s.paint("rectangle", (0, int(s.yh), s.w, s.h), terrain)
    s.terrain_seg = terrain


def _sidewalks(s, z0, z1):
    """Paved sidewalks on both sides with a curb along the road."""
    rng = s.rng
    paving = rng.choice([(165, 165, 160), (185, 180, 170), (175, 125, 110), (140, 140, 140)])
    for x0, x1 in ((s.walk_l, s.road_l), (s.road_r, s.walk_r)):
        walk = s.seg(SIDEWALK, s.jitter(paving, 10), T_TILES, 0.05, param=rng.uniform(0.3, 0.6))
        s.ground(x0, x1, z0, z1, walk)
    curb = s.seg(SIDEWALK, s.jitter((190, 188, 182), 10), T_CONCRETE, 0.05)
    s.quad_x(s.road_l, 0, 0.15, z0, z1, curb)
    s.quad_x(s.road_r, 0, 0.15, z0, z1, curb)


def _road(s, z0, z1):
    """Asphalt, patches of other asphalt and parking strips (void) along the curbs."""
    rng = s.rng
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


def _facade_shadow(s, z0, z1):
    """Sometimes the cast shadow of one side's facades on the ground."""
    rng = s.rng
    if rng.random() < 0.6:
        side = rng.choice([-1, 1])
        face = s.face_l if side < 0 else s.face_r
        width = rng.uniform(2, 9)
        pts = [s.proj(face, 0, z0), s.proj(face - side * width, 0, z0)]
        pts += [s.proj(face - side * width, 0, z1), s.proj(face, 0, z1)]
        s.shadow_draw.polygon(pts, fill=255)


def _markings(s, z0, z1):
    """Dashed lane lines, sometimes edge lines and a crosswalk (road label, marking texture)."""
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


# --------------------------------------------------------------------------------------------------
# facades along both sides
# --------------------------------------------------------------------------------------------------


def facades(s):
    """Both street sides as a row of buildings, greenery, walls, fences and gaps; a backdrop."""
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
    """One stretch (depths z1..z2) of the plane at X: a building, greenery, a wall or a fence."""
    if kind == "building":
        _building(s, X, side, z1, z2, rng)
    elif kind == "vegetation":
        _greenery(s, X, side, z1, z2, rng)
    elif kind == "wall":
        _wall(s, X, side, z1, z2, rng, garden)
    elif kind == "fence":
        _fence(s, X, side, z1, z2, rng, garden)


def _building(s, X, side, z1, z2, rng):
    """A building: brick or plaster face, a side wall, windows (or a shop front) and a cornice."""
    height = rng.uniform(6, 26)
    base = FACADE_COLORS[rng.integers(len(FACADE_COLORS))]
    color = s.jitter(base, 10)
    brick = base[0] < 160 and base[0] > base[2] + 50 and rng.random() < 0.8
    tex = T_BRICK if brick else T_PLASTER
    face = s.seg(BUILDING, color, tex, 0.05, param=X)
    sidewall = s.seg(BUILDING, s.shade(color, 0.72), tex, 0.05)
    s.plane_z(z1, [(X, 0), (X + side * 25, 0), (X + side * 25, height), (X, height)], sidewall)
    s.quad_x(X, 0, height, z1, z2, face)
    glass_base = s.jitter(rng.choice([(55, 65, 80), (80, 95, 110), (40, 45, 50)]), 8)
    glass = [s.seg(BUILDING, s.shade(glass_base, k), T_GLASS, 0.05) for k in (0.8, 1.0, 1.3)]
    if z1 < 40 and rng.random() < 0.7:
        _side_windows(s, X, side, z1, height, glass, rng)
    frame = s.seg(BUILDING, s.shade(color, rng.uniform(0.6, 1.2)), T_PLASTER, 0.04)
    _window_grid(s, X, z1, z2, height, glass, frame, rng)
    s.quad_x(X, height - 0.5, height, z1, z2, frame)


def _side_windows(s, X, side, z1, height, glass, rng):
    """Windows on the side wall (the plane at depth z1) of a building."""
    y = rng.uniform(2.5, 3.5)
    while y + 1.5 < height - 0.5:
        d = 2.0
        while d < 23:
            x0, x1 = sorted((X + side * d, X + side * (d + 1.2)))
            s.rect_z(x0, x1, y, y + 1.4, z1 - 0.01, glass[rng.integers(len(glass))])
            d += 3.2
        y += 3.3


def _window_grid(s, X, z1, z2, height, glass, frame_seg, rng):
    """Rows of windows on a facade, with a shop front on the ground floor half of the time."""
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


def _greenery(s, X, side, z1, z2, rng):
    """Often a hedge, and one to three big trees behind it."""
    hedge = s.seg(VEGETATION, s.jitter((55, 95, 40), 12), T_LEAVES, 0.1)
    if rng.random() < 0.6:
        s.quad_x(X, 0, rng.uniform(0.8, 1.8), z1, z2, hedge)
    for _ in range(rng.integers(1, 4)):
        tree(s, X + side * rng.uniform(0, 4), rng.uniform(z1, z2), rng, big=True, draw_now=True)


def _wall(s, X, side, z1, z2, rng, garden):
    """A concrete wall with panel joints and a coping (trees behind a street wall sometimes)."""
    color = s.jitter(rng.choice([(175, 172, 160), (150, 150, 145), (195, 185, 165)]), 10)
    if not garden and rng.random() < 0.4:
        for _ in range(rng.integers(1, 3)):
            tree(
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


def _fence(s, X, side, z1, z2, rng, garden):
    """A wire-mesh fence with posts and a top rail (a tree behind a street fence sometimes)."""
    color = s.jitter(rng.choice([(110, 115, 110), (60, 90, 70), (130, 100, 70)]), 10)
    if not garden and rng.random() < 0.5:
        tree(s, X + side * rng.uniform(1, 5), rng.uniform(z1, z2), rng, big=True, draw_now=True)
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
    """Buildings (with windows) and trees across the street where it ends."""
    Z = s.z_end
    x = s.face_l - 10
    while x < s.face_r + 10:
        w = rng.uniform(8, 25)
        if rng.random() < 0.75:
            color = s.jitter(FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 10)
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
            tree(s, x + w / 2, Z, rng, big=True, draw_now=True)
        x += w


# --------------------------------------------------------------------------------------------------
# trees
# --------------------------------------------------------------------------------------------------


def tree(s, X, Z, rng, big=False, draw_now=False):
    """A tree (trunk and leaf blobs) at (X, Z): drawn now, or queued to be drawn in depth order."""
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


def street_trees(s):
    """Rows of trees along the curb on either side, half of the time."""
    rng = s.rng
    for side in (-1, 1):
        if rng.random() < 0.5:
            edge = s.road_l if side < 0 else s.road_r
            z = rng.uniform(3, 12)
            while z < min(s.z_end, 70):
                tree(s, edge - side * rng.uniform(0.8, 1.4), z, rng)
                z += rng.uniform(7, 15)
