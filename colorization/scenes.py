"""The embedded dataset: procedural outdoor scenes whose colours need global context.

Every scene is a landscape (countryside or coast) at a time of day (day or
sunset); the four combinations are the scene classes. Two kinds of colour:

* decided by local texture, visible to any small receptive field: foliage
  (blobby leaf texture) is green, grass (fine vertical blades) is yellow-green,
  water (horizontal ripples) is blue, roofs (tile stripes) are red, sand
  (fine speckle) is yellow, walls are near-white.
* decided only by the scene class: the sky. Its luminance is drawn from the
  same distribution at day and at sunset, but it is blue by day and orange to
  pink at sunset. The cue to the time of day is far away from most of the sky:
  at sunset the whole ground is darker (back-lit) and a large sun disc sits on
  the horizon. A network that sees only a patch of upper sky cannot tell the two
  apart; the global features, computed from the whole image, can.

`render_scene(seed, index, size)` is a pure function of its arguments, so the
dataset is the same on every machine.
"""

import cv2
import numpy as np

from colorization.colorspace import lab_to_rgb

CLASS_NAMES = ("countryside_day", "countryside_sunset", "coast_day", "coast_sunset")

# Chroma (a, b) of each material; L comes from the texture.
FOLIAGE = (-32.0, 34.0)
GRASS = (-22.0, 45.0)
WATER = (-6.0, -32.0)
ROOF = (48.0, 32.0)
SAND = (4.0, 28.0)
WALL = (1.0, 6.0)
TRUNK = (12.0, 20.0)
SKY_DAY = ((6.0, -42.0), (-4.0, -18.0))  # (top, horizon)
SKY_SUNSET = ((30.0, -8.0), (28.0, 58.0))
SUN_SUNSET = (20.0, 70.0)


def _noise(rng, size, cells, anisotropy=1.0):
    """Smooth random field in [-1, 1]: random cells upsampled bicubically."""
    ch = max(2, int(cells * anisotropy))
    cw = max(2, int(cells))
    field = rng.standard_normal((ch, cw)).astype(np.float32)
    field = cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC)
    return field / (np.abs(field).max() + 1e-6)


def _paint(lab, mask, l_values, chroma):
    lab[..., 0] = np.where(mask, l_values, lab[..., 0])
    lab[..., 1] = np.where(mask, chroma[0], lab[..., 1])
    lab[..., 2] = np.where(mask, chroma[1], lab[..., 2])


def _sky(lab, rng, size, horizon, sunset):
    y = np.arange(size, dtype=np.float32)[:, None] / max(horizon, 1)
    t = np.clip(y, 0, 1) ** rng.uniform(0.7, 1.6)
    l_top, l_horizon = rng.uniform(52, 72), rng.uniform(74, 90)
    sky_l = l_top + (l_horizon - l_top) * t + 2.0 * _noise(rng, size, 3)
    top, bottom = SKY_SUNSET if sunset else SKY_DAY
    jitter = rng.uniform(-5, 5, 2)
    a = top[0] + (bottom[0] - top[0]) * t + jitter[0]
    b = top[1] + (bottom[1] - top[1]) * t + jitter[1]
    lab[..., 0], lab[..., 1], lab[..., 2] = sky_l, a + 0 * sky_l, b + 0 * sky_l
    # Pale, colourless clouds of either time of day: texture without a colour cue.
    for _ in range(rng.integers(0, 4)):
        cx, cy = rng.uniform(0, size), rng.uniform(0.05, 0.7) * horizon
        rx, ry = rng.uniform(15, 45), rng.uniform(5, 12)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        cloud = np.clip(1.2 - d, 0, 1) * (0.6 + 0.4 * _noise(rng, size, 12))
        lab[..., 0] += 12 * cloud
        lab[..., 1:] *= (1 - 0.8 * cloud)[..., None]


def _grass(rng, size):
    blades = _noise(rng, size, 96, anisotropy=0.15)
    return 48 + 10 * blades + 4 * _noise(rng, size, 6)


def _foliage(rng, size):
    leaves = _noise(rng, size, 40)
    return 38 + 12 * np.sign(leaves) * np.abs(leaves) ** 0.5


def _countryside(lab, rng, size, horizon):
    ground = np.arange(size)[:, None] >= horizon
    ground = np.broadcast_to(ground, (size, size))
    _paint(lab, ground, _grass(rng, size), GRASS)
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(rng.integers(2, 6)):  # trees: trunk plus a leafy crown
        cx, base = rng.uniform(0, size), horizon + rng.uniform(5, 0.6 * (size - horizon))
        r = rng.uniform(14, 30)
        trunk = (np.abs(xx - cx) < r * 0.15) & (yy <= base) & (yy >= base - 1.6 * r)
        _paint(lab, trunk, 30 + 4 * _noise(rng, size, 30), TRUNK)
        crown = np.zeros((size, size), np.uint8)
        for _ in range(4):
            ox, oy = rng.normal(0, r * 0.35, 2)
            cv2.circle(crown, (int(cx + ox), int(base - 1.8 * r + oy)), int(r * 0.75), 1, -1)
        _paint(lab, crown.astype(bool), _foliage(rng, size), FOLIAGE)
    tiles = (np.sin(yy * rng.uniform(0.9, 1.3)) > 0).astype(np.float32)
    for _ in range(rng.integers(1, 4)):  # houses: wall and a striped red roof
        w, h = rng.uniform(28, 60), rng.uniform(18, 34)
        x0, y1 = rng.uniform(0, size - w), horizon + rng.uniform(8, 0.7 * (size - horizon))
        wall = np.zeros((size, size), np.uint8)
        cv2.rectangle(wall, (int(x0), int(y1 - h)), (int(x0 + w), int(y1)), 1, -1)
        _paint(lab, wall.astype(bool), 82 + 3 * _noise(rng, size, 20), WALL)
        roof = np.zeros((size, size), np.uint8)
        pts = np.array([[x0 - 5, y1 - h], [x0 + w + 5, y1 - h], [x0 + w / 2, y1 - h - 0.6 * h]])
        cv2.fillPoly(roof, [pts.astype(np.int32)], 1)
        _paint(lab, roof.astype(bool), 40 + 10 * tiles, ROOF)


def _coast(lab, rng, size, horizon):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    shore = horizon + rng.uniform(0.45, 0.75) * (size - horizon)
    shore_line = shore + 6 * np.sin(xx * rng.uniform(0.02, 0.06) + rng.uniform(0, 6))
    sea = (yy >= horizon) & (yy < shore_line)
    ripples = np.sin(yy * rng.uniform(0.6, 1.0) + 3 * _noise(rng, size, 10))
    _paint(lab, sea, 46 + 9 * ripples, WATER)
    sand = yy >= shore_line
    speckle = rng.standard_normal((size, size)).astype(np.float32)
    _paint(lab, sand, 74 + 3 * speckle + 3 * _noise(rng, size, 4), SAND)
    for _ in range(rng.integers(0, 3)):  # palm-like trees on the beach
        cx, base = rng.uniform(0, size), rng.uniform(shore, size)
        r = rng.uniform(10, 22)
        trunk = (np.abs(xx - cx) < 2.5) & (yy <= base) & (yy >= base - 3 * r)
        _paint(lab, trunk, 30 + 4 * _noise(rng, size, 30), TRUNK)
        crown = ((xx - cx) ** 2 + (yy - (base - 3 * r)) ** 2) < r ** 2
        _paint(lab, crown, _foliage(rng, size), FOLIAGE)


def render_scene(seed, index, size=256, with_sky=False):
    """(float32 RGB image in [0, 1] of shape (size, size, 3), class id), and with
    with_sky the boolean mask of the sky and sun: the colours only the scene's
    class decides (evaluate.py scores them separately)."""
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(CLASS_NAMES)))
    coast, sunset = label >= 2, label % 2 == 1
    horizon = int(rng.uniform(0.38, 0.58) * size)
    lab = np.zeros((size, size, 3), np.float32)
    _sky(lab, rng, size, horizon, sunset)
    sky_l = lab[..., 0].copy()
    (_coast if coast else _countryside)(lab, rng, size, horizon)
    is_ground = lab[..., 0] != sky_l
    if sunset:
        # Back-lit ground: darker and slightly warmer; the sun sits on the horizon.
        lab[..., 0] = np.where(is_ground, lab[..., 0] * 0.55, lab[..., 0])
        yy, xx = np.mgrid[0:size, 0:size]
        cx, r = rng.uniform(0.15, 0.85) * size, rng.uniform(14, 24)
        sun = (((xx - cx) ** 2 + (yy - horizon) ** 2) < r ** 2) & ~is_ground
        _paint(lab, sun, np.float32(95.0), SUN_SUNSET)
    if with_sky:
        return lab_to_rgb(lab), label, ~is_ground
    return lab_to_rgb(lab), label
