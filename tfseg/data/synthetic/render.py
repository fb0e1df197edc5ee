"""Rasterisation: compose a scene, then turn its segment canvas into image, labelIds, instanceIds.

``render_scene(seed, height, width)`` is the entry point. The appearance of every pixel is its
segment's base colour times a shading term from the segment's texture (asphalt grain, paving grid
and brick courses in world coordinates, wire mesh, leaves, sky gradient and clouds, ...), then the
whole image gets an illumination level, a colour cast, cast shadows, sensor noise and a slight blur.
The random draws happen in a fixed order: changing it changes the data set (see
``GENERATOR_VERSION`` in ``writer.py``).
"""

import numpy as np
from PIL import Image, ImageFilter

from tfseg.data.synthetic import furniture, street, traffic
from tfseg.data.synthetic.scene import (
    EGO,
    SKY,
    T_ASPHALT,
    T_BARK,
    T_BRICK,
    T_CONCRETE,
    T_GLASS,
    T_GRASS,
    T_LAMP,
    T_LEAVES,
    T_MARKING,
    T_MESH,
    T_METAL,
    T_PANEL,
    T_PLASTER,
    T_SKY,
    T_TILES,
    Scene,
    layout,
)


def build_scene(s):
    """Lay out and draw the whole street into ``s`` (queued objects far to near, the hood last)."""
    layout(s)
    street.sky_and_ground(s)
    street.facades(s)
    street.street_trees(s)
    furniture.poles(s)
    traffic.traffic(s)
    traffic.pedestrians(s)
    traffic.cyclists(s)
    furniture.clutter(s)
    for _, _, fn in sorted(s.objects, key=lambda o: (-o[0], o[1])):
        fn()
    furniture.hood(s)


def render_scene(seed, height=256, width=512):
    """One scene: (image uint8 (H, W, 3), labelIds uint8 (H, W), instanceIds int32 (H, W)).

    ``seed`` is anything ``numpy.random.default_rng`` accepts (an int or a sequence of ints).
    """
    s = Scene(np.random.default_rng(seed), height, width)
    build_scene(s)
    return _render(s)


# --------------------------------------------------------------------------------------------------
# appearance
# --------------------------------------------------------------------------------------------------


def _noise(rng, h, w, cell):
    """Smooth noise of unit-ish spread with features ``cell`` pixels wide."""
    sh, sw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    small = rng.standard_normal((sh, sw)).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC))


class _Pixels:
    """Per-pixel (flattened) segment properties and noise fields of a scene being shaded."""

    def __init__(self, s, seg):
        rng, h, w = s.rng, s.h, s.w
        self.s, self.rng, self.h, self.w = s, rng, h, w
        self.tex = np.asarray(s.p_tex, np.uint8)[seg].ravel()
        self.color = np.asarray(s.p_color, np.float32)[seg].reshape(-1, 3)
        amp = np.asarray(s.p_amp, np.float32)[seg].ravel()
        self.param = np.asarray(s.p_param, np.float32)[seg].ravel()
        self.scale = w / 512.0
        self.fine = rng.standard_normal(h * w, dtype=np.float32)
        self.mid = _noise(rng, h, w, 4 * self.scale).ravel()
        self.coarse = _noise(rng, h, w, 24 * self.scale).ravel()
        self.shade = 1.0 + amp * self.fine

    def by_texture(self):
        """``{texture: flat pixel indices}`` for the textures present, in texture order."""
        order = np.argsort(self.tex, kind="stable")
        bounds = np.searchsorted(self.tex[order], np.arange(T_PANEL + 2))
        return {
            t: order[bounds[t] : bounds[t + 1]]
            for t in range(T_PANEL + 1)
            if bounds[t + 1] > bounds[t]
        }

    def coords(self, idx):
        """Row and column (float32) of flat pixel indices."""
        return (idx // self.w).astype(np.float32), (idx % self.w).astype(np.float32)

    def ground_xz(self, idx):
        """World X and Z of pixels on the ground plane."""
        s = self.s
        y, x = self.coords(idx)
        z = s.f * s.hc / np.maximum(y + 0.5 - s.yh, 0.5)
        return (x + 0.5 - s.xv) * z / s.f, z

    def wall_yz(self, idx):
        """World Y and Z of pixels on a wall in the plane X = the segment's ``param``."""
        s = self.s
        y, x = self.coords(idx)
        dx = x + 0.5 - s.xv
        dx = np.where(np.abs(dx) < 0.5, 0.5, dx)
        z = np.clip(s.f * self.param[idx] / dx, 0.5, 500)
        return s.hc - (y + 0.5 - s.yh) * z / s.f, z


def _fade(z, far):
    """1 near the camera, 0 from depth ``far`` on (texture detail fades with distance)."""
    return np.clip(1.0 - z / far, 0.0, 1.0)


def _asphalt(p, idx):
    p.shade[idx] += 0.04 * p.mid[idx] + 0.03 * p.coarse[idx]


def _tiles(p, idx):
    X, Z = p.ground_xz(idx)
    size = p.param[idx]
    u, v = np.mod(X / size, 1.0), np.mod(Z / size, 1.0)
    line = (np.minimum(u, 1 - u) < 0.06) | (np.minimum(v, 1 - v) < 0.06)
    p.shade[idx] += -0.22 * line * _fade(Z, 25 * p.scale + 10) + 0.04 * p.coarse[idx]


def _grass(p, idx):
    p.shade[idx] += 0.1 * p.mid[idx] + 0.08 * p.coarse[idx]
    p.color[idx] += np.outer(p.mid[idx], [6.0, 8.0, -4.0])


def _leaves(p, idx):
    clusters = np.tanh(1.6 * p.mid[idx])
    p.shade[idx] += 0.28 * clusters + 0.05 * p.coarse[idx]
    p.color[idx] += np.outer(clusters, [4.0, 10.0, -2.0])


def _plaster(p, idx):
    p.shade[idx] += 0.05 * p.coarse[idx] + 0.02 * p.mid[idx]


def _brick(p, idx):
    Y, Z = p.wall_yz(idx)
    row = np.floor(Y / 0.25)
    u = np.mod(Z / 0.5 + 0.5 * np.mod(row, 2), 1.0)
    v = np.mod(Y / 0.25, 1.0)
    mortar = (np.minimum(u, 1 - u) < 0.07) | (np.minimum(v, 1 - v) < 0.1)
    p.shade[idx] += 0.3 * mortar * _fade(Z, 30 * p.scale + 8) + 0.06 * p.coarse[idx]


def _glass(p, idx):
    p.shade[idx] += 0.22 * p.coarse[idx] + 0.05 * p.mid[idx]


def _mesh(p, idx):
    Y, Z = p.wall_yz(idx)
    a, b = np.mod((Y + Z) / 0.2, 1.0), np.mod((Y - Z) / 0.2, 1.0)
    wire = (np.minimum(a, 1 - a) < 0.12) | (np.minimum(b, 1 - b) < 0.12)
    p.shade[idx] += (0.35 * wire - 0.3) * _fade(Z, 40 * p.scale + 10) - 0.1


def _panel(p, idx):
    """Concrete panels with joints every 2.5 m and a stain gradient."""
    Y, Z = p.wall_yz(idx)
    u = np.mod(Z / 2.5, 1.0)
    joint = np.minimum(u, 1 - u) < 0.02 + 0.01 * Z / 10
    p.shade[idx] += (
        -0.3 * joint * _fade(Z, 40 * p.scale + 10)
        + 0.06 * p.coarse[idx]
        - 0.06 * np.clip(1.0 - Y, 0, 1)
    )


def _concrete(p, idx):
    p.shade[idx] += 0.07 * p.coarse[idx] + 0.04 * p.mid[idx]


def _metal(p, idx):
    y, _ = p.coords(idx)
    p.shade[idx] += 0.04 * np.sin(y * 0.7 / p.scale)


def _marking(p, idx):
    p.shade[idx] -= 0.25 * (p.mid[idx] > 1.0)


def _bark(p, idx):
    _, x = p.coords(idx)
    p.shade[idx] += 0.08 * np.sin(x * 2.1 / p.scale + 3 * p.mid[idx])


def _lamp(p, idx):
    p.shade[idx] = 1.0 + 0.02 * p.fine[idx]


def _sky(p, idx):
    """Vertical gradient from the top colour to the horizon colour, with clouds."""
    s = p.s
    y, _ = p.coords(idx)
    g = np.clip(y / max(s.yh, 1.0), 0, 1)[:, None] ** 0.8
    p.color[idx] = (1 - g) * s.sky_top + g * s.sky_horizon
    cloud_noise = _noise(p.rng, p.h, p.w, 48 * p.scale).ravel()[idx] + 0.25 * p.coarse[idx]
    cloud = np.clip((cloud_noise - (1.2 - 1.6 * s.clouds)) * 1.5, 0, 1)[:, None]
    cloud_color = np.clip(s.sky_horizon * 0.3 + 170 + 10 * p.coarse[idx, None], 0, 255)
    p.color[idx] = (1 - cloud) * p.color[idx] + cloud * cloud_color
    p.shade[idx] = 1.0 + 0.01 * p.fine[idx]


# texture -> shading function (T_FLAT and T_CLOTH keep the per-segment grain only)
_TEXTURES = {
    T_ASPHALT: _asphalt,
    T_TILES: _tiles,
    T_GRASS: _grass,
    T_LEAVES: _leaves,
    T_PLASTER: _plaster,
    T_BRICK: _brick,
    T_GLASS: _glass,
    T_MESH: _mesh,
    T_PANEL: _panel,
    T_CONCRETE: _concrete,
    T_METAL: _metal,
    T_MARKING: _marking,
    T_BARK: _bark,
    T_LAMP: _lamp,
    T_SKY: _sky,
}


def _label_maps(s, seg):
    """labelIds (uint8) and instanceIds (int32), see-through label segments on top."""
    label_seg = seg
    if s.over is not None:
        over = np.asarray(s.over, dtype=np.int32)
        label_seg = np.where(over > 0, over, seg)
    label = np.asarray(s.p_label, np.uint8)[label_seg]
    instance = np.asarray(s.p_inst, np.int32)[label_seg]
    return label, instance


def _light(p, label):
    """Lighting (level, colour cast, cast shadows, soft gradient), sensor noise, a slight blur."""
    rng, s = p.rng, p.s
    img = p.color * p.shade[:, None]
    level = rng.uniform(0.7, 1.2)
    cast = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    light = level * (1.0 + 0.04 * p.coarse)
    shadow = np.asarray(s.shadow, np.float32).ravel() / 255.0
    sky_or_void = (label.ravel() == SKY) | (label.ravel() == EGO)
    light = light * (1.0 - rng.uniform(0.25, 0.45) * shadow * ~sky_or_void)
    img = img * light[:, None] * cast + rng.uniform(1.0, 4.0) * p.fine[:, None]
    img = np.clip(img, 0, 255).astype(np.uint8).reshape(p.h, p.w, 3)
    # slight optical blur: a 3x3 kernel whose centre weight varies per image
    centre = rng.uniform(2.0, 8.0) / max(p.scale, 0.25)
    kernel = ImageFilter.Kernel((3, 3), [0.5, 1, 0.5, 1, centre, 1, 0.5, 1, 0.5])
    return np.asarray(Image.fromarray(img).filter(kernel))


def _render(s):
    """(image, labelIds, instanceIds) of a composed scene."""
    seg = np.asarray(s.canvas, dtype=np.int32)
    label, instance = _label_maps(s, seg)
    p = _Pixels(s, seg)
    for t, idx in p.by_texture().items():
        shade = _TEXTURES.get(t)
        if shade is not None:
            shade(p, idx)
    return _light(p, label), label, instance
