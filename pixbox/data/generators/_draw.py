"""Procedural drawing shared by the dataset generators: textures, sprites, shading, masks.

Everything here works on ``numpy`` arrays: an image being drawn is ``float32 [H, W, 3]`` with
values in ``[0, 255]``, and a mask is ``bool [H, W]``. Every function draws its random numbers
from the ``numpy.random.Generator`` it is given; nothing touches a global RNG.

A :class:`Sprite` is one object, cut out tightly: its colour and its coverage ``alpha``. A
pixel belongs to the object when its coverage is at least one half; the sprite functions set
the coverage of every other pixel to zero, so the object's pixels are exactly ``alpha > 0``,
compositing never changes a pixel outside them, and the edges are still softened (a border
pixel is blended with 50 to 100 % of the object's colour). A sprite's array is cropped to the
rows and columns that hold object pixels, so a sprite pasted at ``(x, y)`` has the tight box
``[x, y, x + w, y + h]`` when it lies inside the image.

What every generator does around the drawing (option checks, seeds, writing the splits) is in
:mod:`pixbox.data.generators._writing`.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["BLOB_KINDS", "SHAPE_KINDS", "Sprite", "banana_sprite", "blob_sprite", "boundary_band", "composite",
           "finish", "hsv", "paste_mask", "shape_sprite", "textured_background", "tight_box"]

#: The polygon-like object kinds of :func:`shape_sprite`.
SHAPE_KINDS: tuple[str, ...] = ("square", "disc", "triangle", "star", "ring", "cross")
#: The irregular, organic object kinds of :func:`blob_sprite`.
BLOB_KINDS: tuple[str, ...] = ("flower", "leaf", "pond", "rock", "starfish")

_SUPERSAMPLE = 4  # sub-pixels per pixel side for the coverage of polygon shapes


@dataclass
class Sprite:
    """One object, cropped tightly to its pixels.

    Attributes:
        rgb (ndarray[h, w, 3]): ``float32`` colour in ``[0, 255]``.
        alpha (ndarray[h, w]): ``float32`` coverage in ``[0.5, 1]`` on the object's pixels and
            exactly ``0`` elsewhere; every border row and column holds an object pixel.
    """

    rgb: np.ndarray
    alpha: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``bool [h, w]``: the object's pixels."""
        return self.alpha > 0


# --------------------------------------------------------------------------- colours, noise

def hsv(h: float, s: float, v: float) -> np.ndarray:
    """The RGB colour (``float32 [3]`` in ``[0, 255]``) of hue ``h`` (wraps), saturation and value in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Value noise: bicubic interpolation of uniform random values on a grid of ``cell`` pixels.

    Returns ``float32 [height, width]``, roughly in ``[0, 1]`` (bicubic overshoots a little).
    """
    cell = max(float(cell), 1.0)
    gh = int(math.ceil(height / cell)) + 3
    gw = int(math.ceil(width / cell)) + 3
    grid = Image.fromarray(rng.random((gh, gw), dtype=np.float32))  # mode "F"
    # Scale the part of the grid one cell in from its edge (where bicubic sees the edge).
    box = (1.0, 1.0, 1.0 + width / cell, 1.0 + height / cell)
    return np.asarray(grid.resize((width, height), Image.BICUBIC, box=box))


def _fractal_noise(rng: np.random.Generator, height: int, width: int, cell: float,
                   octaves: int = 3) -> np.ndarray:
    """Octaves of :func:`_smooth_noise`, each half the cell size and half the weight, stretched to [0, 1]."""
    total = np.zeros((height, width), np.float32)
    amp = 1.0
    for _ in range(octaves):
        total += amp * _smooth_noise(rng, height, width, cell)
        amp *= 0.5
        cell = max(cell / 2, 1.5)
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _lerp(c0: np.ndarray, c1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of two colours: ``[..., 3]`` from ``t`` of shape ``[...]``."""
    return c0 + (c1 - c0) * t[..., None]


# --------------------------------------------------------------------------- backgrounds

def _palette(rng: np.random.Generator) -> list[np.ndarray]:
    """Three background colours in a random harmony (analogous, complementary or one hue)."""
    h0 = rng.random()
    scheme = rng.integers(3)
    if scheme == 0:
        hues = [h0, h0 + rng.uniform(0.04, 0.12), h0 - rng.uniform(0.04, 0.12)]
    elif scheme == 1:
        hues = [h0, h0 + 0.5 + rng.uniform(-0.05, 0.05), h0 + rng.uniform(-0.05, 0.05)]
    else:
        hues = [h0, h0, h0]
    return [hsv(h, rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.95)) for h in hues]


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random textured background: clouds, gradient, warped stripes, blotches or tiles.

    The texture is tinted with a random palette, lit by a soft linear light and given a fine
    grain.

    Returns:
        ndarray[H, W, 3]: ``float32`` RGB in ``[0, 255]``.
    """
    c0, c1, c2 = _palette(rng)
    side = float(min(height, width))
    ys = np.arange(height, dtype=np.float32)[:, None]  # [H, 1]
    xs = np.arange(width, dtype=np.float32)[None, :]  # [1, W]
    angle = rng.uniform(0, 2 * np.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)  # [H, W]
    kind = int(rng.integers(5))
    if kind == 0:  # clouds
        t = _fractal_noise(rng, height, width, rng.uniform(0.15, 0.5) * side, octaves=4)
        image = _lerp(c0, c1, t)
    elif kind == 1:  # gradient with a little cloudiness
        t = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
        t = 0.8 * t + 0.2 * _fractal_noise(rng, height, width, 0.3 * side)
        image = _lerp(c0, c1, t)
    elif kind == 2:  # stripes warped by noise: wood, fabric, sand ripples
        period = rng.uniform(0.03, 0.2) * side
        warp = _fractal_noise(rng, height, width, 0.4 * side) * rng.uniform(0, 3 * np.pi)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * along / period + warp)
        t = t ** rng.uniform(0.5, 2.0)
        image = _lerp(c0, c1, t)
    elif kind == 3:  # blotches: two thresholded noise layers, camouflage-like
        image = _lerp(c0, c1, _smoothstep(_fractal_noise(rng, height, width, 0.25 * side),
                                          0.45, 0.52))
        layer = _smoothstep(_fractal_noise(rng, height, width, 0.15 * side), 0.6, 0.66)
        image = image + (c2 - image) * layer[..., None]
    else:  # tiles with grout lines
        cell = rng.uniform(0.06, 0.25) * side
        across = -xs * math.sin(angle) + ys * math.cos(angle)
        i, j = np.floor(along / cell), np.floor(across / cell)
        t = ((i + j) % 2).astype(np.float32) * rng.uniform(0.2, 1.0)
        fu, fv = along / cell - i, across / cell - j
        grout = (np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) < 0.04)
        image = _lerp(c0, c1, t)
        image[grout] = c2
    # Soft light from one side, and a fine grain shared by the three channels.
    light = (along - along.mean()) / max(float(np.abs(along - along.mean()).max()), 1e-6)
    image = image * (1 + rng.uniform(0.0, 0.25) * light)[..., None]
    grain = _smooth_noise(rng, height, width, rng.uniform(1.0, 3.0)) - 0.5
    image = image + (rng.uniform(4, 20) * grain)[..., None]
    return np.clip(image, 0, 255).astype(np.float32)


def finish(image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Adds mild Gaussian pixel noise and rounds: ``float [H, W, 3]`` -> ``Tensor[3, H, W]`` uint8."""
    sigma = rng.uniform(1.0, 4.0)
    noisy = image.transpose(2, 0, 1) + sigma * rng.standard_normal(image.shape[2:] + image.shape[:2],
                                                                   dtype=np.float32)  # [3, H, W]
    noisy += 0.5  # round half up by truncation: the values are >= 0 after the clip
    return torch.from_numpy(np.clip(noisy, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- sprites

def _cut(rgb: np.ndarray, coverage: np.ndarray) -> Sprite | None:
    """Crops colour (clipped to [0, 255]) and coverage to the object's pixels (coverage >= 0.5); ``None`` if none."""
    alpha = np.where(coverage >= 0.5, coverage, 0).astype(np.float32)
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    if len(rows) == 0:
        return None
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return Sprite(rgb=np.clip(rgb[sl], 0, 255).astype(np.float32), alpha=np.ascontiguousarray(alpha[sl]))


def _grid(x0: float, x1: float, y0: float, y1: float, angle: float):
    """Pixel centres of the window ``[x0, x1) x [y0, y1)`` around a sprite's origin, rotated by ``-angle``.

    Returns ``(u, v)``, ``float32 [h, w]`` each: the pixel centres in the sprite's own frame.
    """
    xs = np.arange(math.floor(x0), math.ceil(x1), dtype=np.float32) + 0.5
    ys = np.arange(math.floor(y0), math.ceil(y1), dtype=np.float32) + 0.5
    c, s = math.cos(angle), math.sin(angle)
    u = xs[None, :] * c + ys[:, None] * s  # [h, w]
    v = -xs[None, :] * s + ys[:, None] * c  # [h, w]
    return u, v


def _extent(u: np.ndarray, v: np.ndarray, angle: float, pad: float = 2.0):
    """The image-frame window ``(x0, x1, y0, y1)`` holding the sprite-frame points ``(u, v)``."""
    c, s = math.cos(angle), math.sin(angle)
    x = u * c - v * s
    y = u * s + v * c
    return x.min() - pad, x.max() + pad, y.min() - pad, y.max() + pad


def banana_sprite(rng: np.random.Generator, length: float, *, hue: float | None = None) -> Sprite:
    """A banana about ``length`` pixels long: a curved, tapering crescent with shading.

    The body follows a circular arc; its half-width swells from the blunt dark tip, peaks a
    little before the middle and narrows to a neck that ends in a short greenish-brown stem.
    It is shaded like a cylinder lit from one side, with darker longitudinal ridges, and ripe
    bananas get brown speckles. Rotation, curvature, thickness and mirroring are random.

    Args:
        rng (Generator): the random numbers.
        length (float): the arc length of the body in pixels, > 4.
        hue (float | None): the peel's hue in [0, 1); ``None`` picks a banana yellow (or, one
            time in four, an unripe greenish yellow).
    """
    arc = rng.uniform(0.8, 1.7)  # angle spanned by the body, radians
    radius = length / arc
    width = length * rng.uniform(0.08, 0.13)  # maximal half-width
    tip, stem = 0.025, rng.uniform(0.06, 0.1)  # extensions beyond the body, in units of the body
    angle = rng.uniform(0, 2 * np.pi)
    mirror = rng.random() < 0.5
    # The arc's centre sits below the origin so that the banana is centred on the origin.
    half_span = (1 + tip + stem) * arc / 2
    yc = radius - radius * (1 - math.cos(half_span)) / 2

    def half_width(t):
        body = np.maximum(np.sin(np.pi * np.clip(t, 0, 1) ** 0.8), 0) ** 0.6
        return width * np.where(t < 0, 0.22, np.where(t <= 1, np.maximum(body, 0.15), 0.13))

    # Window: the outline sampled along the arc, in the image frame.
    t = np.linspace(-tip, 1 + stem, 48)
    theta = (t - 0.5) * arc * (-1 if mirror else 1)
    r = radius + np.array([-1, 1])[:, None] * half_width(t)[None, :]  # [2, 48]
    x0, x1, y0, y1 = _extent(r * np.sin(theta), yc - r * np.cos(theta), angle)
    u, v = _grid(x0, x1, y0, y1, angle)

    dx, dy = u, v - yc
    r = np.hypot(dx, dy)
    theta = np.arctan2(dx, -dy)  # 0 straight above the arc's centre
    t = theta / arc * (-1 if mirror else 1) + 0.5
    hw = half_width(t)
    across = (r - radius) / hw  # [-1, 1] across the banana
    dist = np.minimum(hw - np.abs(r - radius), np.minimum(t + tip, 1 + stem - t) * length)
    coverage = np.clip(dist + 0.5, 0, 1)

    if hue is None:
        hue = rng.uniform(0.11, 0.16) if rng.random() < 0.75 else rng.uniform(0.16, 0.23)
    peel = hsv(hue, rng.uniform(0.65, 0.95), rng.uniform(0.8, 1.0))
    a = np.clip(np.abs(across), 0, 1)
    light = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.2)
    shade = (0.55 + 0.45 * np.sqrt(1 - a * a) + light * across)
    shade = shade * (1 - 0.12 * np.exp(-(((a - 0.5) / 0.08) ** 2)))  # ridges
    rgb = peel * shade[..., None]
    # Greener towards the stem, a dark stem and a near-black tip.
    neck = np.clip((t - 0.85) / 0.15, 0, 1) * rng.uniform(0.2, 0.6)
    rgb = rgb + (hsv(0.2, 0.7, 0.55) * shade[..., None] - rgb) * neck[..., None]
    rgb = np.where((t > 1)[..., None], hsv(0.13, 0.6, 0.35) * shade[..., None], rgb)
    rgb = np.where((t < 0)[..., None], np.array([45, 35, 20], np.float32) * shade[..., None], rgb)
    if rng.random() < 0.5:  # ripe: brown speckles
        spots = _smooth_noise(rng, *t.shape, rng.uniform(1.5, 3.5)) > rng.uniform(0.72, 0.9)
        rgb = np.where(spots[..., None], rgb * 0.35 + np.array([70, 45, 20], np.float32) * 0.65, rgb)
    sprite = _cut(rgb, coverage)
    if sprite is None:  # pragma: no cover - length > 4 always covers pixels
        raise ValueError(f"length must give a visible banana, got {length}")
    return sprite


def _shape_polygons(kind: str, rng: np.random.Generator, radius: float, angle: float):
    """The polygons of a shape around the origin: ``[(points [K, 2], fill)]``, fill 1 adds, 0 cuts."""
    def ring(r_u, r_v, k=64):
        a = np.linspace(0, 2 * np.pi, k, endpoint=False)
        return np.stack([r_u * np.cos(a), r_v * np.sin(a)], 1)

    if kind == "square":
        pts = ring(radius, radius, 4)
    elif kind == "disc":
        pts = ring(radius, radius * rng.uniform(0.85, 1.0))
    elif kind == "triangle":
        a = np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.15, 0.15, 3) - np.pi / 2
        pts = np.stack([np.cos(a), np.sin(a)], 1) * radius
    elif kind == "star":
        n = 5
        a = np.arange(2 * n) * np.pi / n - np.pi / 2
        r = np.where(np.arange(2 * n) % 2 == 0, radius, radius * rng.uniform(0.38, 0.5))
        pts = np.stack([r * np.cos(a), r * np.sin(a)], 1)
    elif kind == "ring":
        aspect = rng.uniform(0.8, 1.0)
        inner = rng.uniform(0.45, 0.65)
        return [(_rotate(ring(radius, radius * aspect), angle), 1),
                (_rotate(ring(radius * inner, radius * aspect * inner), angle), 0)]
    elif kind == "cross":
        w = radius * rng.uniform(0.28, 0.4)
        r = radius
        pts = np.array([(w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
                        (-r, w), (-r, -w), (-w, -w), (-w, -r)], np.float64)
    else:  # pragma: no cover - guarded by the callers
        raise ValueError(f"kind must be one of {SHAPE_KINDS}, got {kind!r}")
    return [(_rotate(pts, angle), 1)]


def _rotate(pts: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def shape_sprite(rng: np.random.Generator, kind: str, size: float, *, hue: float | None = None) -> Sprite:
    """A geometric shape (one of :data:`SHAPE_KINDS`) fitting a circle of diameter ``size`` pixels.

    The shape is rotated at random, filled with a colour lit from a random direction, maybe
    patterned (stripes, dots or mottling), and given a darker rim so that touching shapes stay
    distinguishable. Coverage comes from drawing at 4x resolution.

    Args:
        rng (Generator): the random numbers.
        kind (str): one of :data:`SHAPE_KINDS`.
        size (float): the diameter of the shape's circumscribed circle in pixels, > 2.
        hue (float | None): the fill hue in [0, 1); ``None`` picks one at random.
    """
    ss = _SUPERSAMPLE
    side = int(math.ceil(size)) + 2
    polys = _shape_polygons(kind, rng, size / 2 * ss, rng.uniform(0, 2 * np.pi))
    canvas = Image.new("L", (side * ss, side * ss), 0)
    draw = ImageDraw.Draw(canvas)
    centre = side * ss / 2
    for pts, fill in polys:
        draw.polygon([(float(x + centre), float(y + centre)) for x, y in pts], fill=255 * fill)
    coverage = np.asarray(canvas.resize((side, side), Image.BOX), dtype=np.float32) / 255

    if hue is None:
        hue = rng.random()
    colour = hsv(hue, rng.uniform(0.45, 1.0), rng.uniform(0.35, 0.95))
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
    a = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0.1, 0.35) * (xs * math.cos(a) + ys * math.sin(a)) * 2  # [side, side]
    pattern = int(rng.integers(4))
    if pattern == 1:  # stripes
        b = rng.uniform(0, np.pi)
        period = max(side * rng.uniform(0.15, 0.35), 3.0)
        shade = shade * (1 - 0.25 * (np.sin(2 * np.pi * (xs * math.cos(b) + ys * math.sin(b)) * side
                                            / period) > 0))
    elif pattern == 2:  # dots
        period = max(side * rng.uniform(0.15, 0.3), 4.0)
        fx = (xs * side / period) % 1 - 0.5
        fy = (ys * side / period) % 1 - 0.5
        shade = shade * np.where(fx * fx + fy * fy < 0.09, 1.3, 1.0)
    elif pattern == 3:  # mottled
        shade = shade * (0.85 + 0.3 * _smooth_noise(rng, side, side, max(side / 5, 2.0)))
    rgb = colour * shade[..., None]
    # Darker rim: object pixels next to a non-object pixel.
    inside = Image.fromarray(((coverage >= 0.5) * 255).astype(np.uint8))
    core = np.asarray(inside.filter(ImageFilter.MinFilter(3))) > 0
    rgb = np.where(core[..., None], rgb, rgb * 0.6)
    sprite = _cut(rgb, coverage)
    if sprite is None:
        raise ValueError(f"size must be large enough for a visible {kind}, got {size}")
    return sprite


def _wobble(rng: np.random.Generator, theta: np.ndarray, harmonics: range, amp: float) -> np.ndarray:
    """A smooth random periodic function of ``theta``: a few Fourier terms, amplitude ``amp / k``."""
    out = np.zeros_like(theta)
    for k in harmonics:
        out = out + (amp / k) * rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return out


def blob_sprite(rng: np.random.Generator, kind: str, size: float, *, hue: float | None = None) -> Sprite:
    """An organic object (one of :data:`BLOB_KINDS`) with an irregular outline, about ``size`` pixels across.

    - ``"flower"``: 5 to 8 rounded petals around a yellow-brown centre;
    - ``"leaf"``: a pointed, serrated leaf with a midrib, side veins and a stalk;
    - ``"pond"``: a flat, wavy-edged water patch, darker in the middle, with faint ripples;
    - ``"rock"``: a lumpy, speckled grey-brown stone lit like a dome;
    - ``"starfish"``: five uneven arms, with light bumps.

    The outline is a random polar radius function (a few Fourier harmonics on top of the
    kind's basic shape), stretched and rotated at random.

    Args:
        rng (Generator): the random numbers.
        kind (str): one of :data:`BLOB_KINDS`.
        size (float): the object's approximate diameter in pixels, > 4.
        hue (float | None): the main hue in [0, 1); ``None`` picks the kind's usual colours.
    """
    r0 = size / 2
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "leaf":
        return _leaf(rng, size, angle, hue)
    aspect = {"flower": (0.85, 1.0), "pond": (0.45, 0.8), "rock": (0.6, 1.0),
              "starfish": (0.9, 1.0)}[kind]
    aspect = rng.uniform(*aspect)
    if kind == "flower":
        petals = int(rng.integers(5, 9))
        sharp = rng.uniform(0.4, 0.9)
        phase = rng.uniform(0, 2 * np.pi)
        wob = [rng.uniform(0, 2 * np.pi) for _ in range(3)]

        def radius_of(th):
            lobes = (0.5 + 0.5 * np.cos(petals * th + phase)) ** sharp
            return (0.5 + 0.5 * lobes) * (1 + 0.04 * np.cos(3 * th + wob[0]) + 0.03 * np.cos(2 * th + wob[1]))
    elif kind == "starfish":
        phase = rng.uniform(0, 2 * np.pi)
        arms = rng.uniform(0.85, 1.0, 5)
        curl = rng.uniform(1.2, 2.0)

        def radius_of(th):
            k = np.floor(((th + phase) % (2 * np.pi)) / (2 * np.pi) * 5 + 0.5).astype(int) % 5
            return (0.28 + 0.72 * (0.5 + 0.5 * np.cos(5 * (th + phase))) ** curl) * arms[k]
    else:
        big, small = (0.35, 0.05) if kind == "pond" else (0.25, 0.04)
        coeffs = [(big / k * rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)) for k in range(2, 6)]
        coeffs += [(small / k * 8 * rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)) for k in range(8, 14)]

        def radius_of(th):
            out = 1.0
            for k, (a, p) in enumerate(coeffs[:4], start=2):
                out = out + a * np.cos(k * th + p)
            for k, (a, p) in enumerate(coeffs[4:], start=8):
                out = out + a * np.cos(k * th + p)
            return np.maximum(out, 0.3) * 0.85

    th = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    rr = radius_of(th)
    x0, x1, y0, y1 = _extent(rr * np.cos(th) * r0, rr * np.sin(th) * r0 * aspect, angle)
    u, v = _grid(x0, x1, y0, y1, angle)
    un, vn = u / r0, v / (r0 * aspect)
    rho = np.hypot(un, vn)
    theta = np.arctan2(vn, un)
    rad = radius_of(theta)
    q = np.clip(rho / np.maximum(rad, 1e-6), 0, 1)  # 0 at the centre, 1 on the outline
    coverage = np.clip((rad - rho) * r0 * aspect + 0.5, 0, 1)
    lx, ly = math.cos(rng.uniform(0, 2 * np.pi)), math.sin(rng.uniform(0, 2 * np.pi))
    towards_light = (un * lx + vn * ly) / np.maximum(rho, 1e-6) * q  # [-1, 1]
    dome = 0.6 + 0.4 * np.sqrt(1 - q * q) + 0.15 * towards_light

    if kind == "flower":
        petal = hsv(rng.uniform(0.75, 1.05) if hue is None else hue, rng.uniform(0.3, 0.9), rng.uniform(0.75, 1.0))
        heart = hsv(rng.uniform(0.08, 0.15), 0.9, rng.uniform(0.55, 0.9))
        core = rng.uniform(0.18, 0.3)
        veins = 0.85 + 0.15 * (0.5 + 0.5 * np.cos(petals * theta + phase)) ** 0.5
        rgb = petal * ((0.7 + 0.3 * np.clip(q / 0.8, 0, 1)) * veins)[..., None]
        centre = rho < core
        spots = _smooth_noise(rng, *rho.shape, max(size / 25, 1.5))
        rgb = np.where(centre[..., None], heart * (0.7 + 0.5 * spots)[..., None], rgb)
    elif kind == "starfish":
        skin = hsv(rng.uniform(0.98, 1.1) if hue is None else hue, rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95))
        bumps = _smooth_noise(rng, *rho.shape, max(size / 20, 1.5)) > 0.7
        rgb = skin * (dome * np.where(bumps, 1.25, 1.0))[..., None]
    elif kind == "pond":
        water = hsv(rng.uniform(0.5, 0.62) if hue is None else hue, rng.uniform(0.4, 0.85), rng.uniform(0.45, 0.8))
        ripples = 1 + 0.06 * np.sin(rho * rng.uniform(12, 30) + 3 * _smooth_noise(rng, *rho.shape, size / 4))
        rgb = water * ((0.75 + 0.35 * q ** 4) * ripples)[..., None]
    else:  # rock
        stone = hsv(rng.uniform(0.05, 0.12) if hue is None else hue, rng.uniform(0.05, 0.35), rng.uniform(0.4, 0.75))
        speckle = 0.8 + 0.4 * _smooth_noise(rng, *rho.shape, max(size / 40, 1.2))
        cracks = _fractal_noise(rng, *rho.shape, max(size / 4, 2.0))
        rgb = stone * (dome * speckle * (1 - 0.25 * (np.abs(cracks - 0.5) < 0.02)))[..., None]
    sprite = _cut(rgb, coverage)
    if sprite is None:
        raise ValueError(f"size must be large enough for a visible {kind}, got {size}")
    return sprite


def _leaf(rng: np.random.Generator, size: float, angle: float, hue: float | None) -> Sprite:
    half = size / 2  # half-length of the blade
    width = rng.uniform(0.25, 0.45)  # maximal half-width, in half-lengths
    teeth = rng.uniform(0.0, 0.08)
    n_teeth = rng.uniform(8, 16)
    bend = rng.uniform(-0.25, 0.25)  # the midrib bends like a parabola
    stalk = rng.uniform(0.15, 0.3)

    def blade(un):
        return width * np.clip(1 - un * un, 0, 1) ** 0.8 * (1 + teeth * np.abs(np.sin(n_teeth * np.pi * un)))

    un = np.linspace(-1, 1 + stalk, 64)
    mid = bend * (1 - un * un)
    hw = np.maximum(blade(un), 0.03)
    x0, x1, y0, y1 = _extent(np.concatenate([un, un]) * half,
                             np.concatenate([mid - hw, mid + hw]) * half, angle)
    u, v = _grid(x0, x1, y0, y1, angle)
    un, vn = u / half, v / half
    vn = vn - bend * (1 - un * un)
    hw = blade(un)
    dist_blade = np.minimum(hw - np.abs(vn), 1 - np.abs(un))
    dist_stalk = np.minimum(0.03 - np.abs(vn), np.minimum(un - 0.9, 1 + stalk - un))
    dist = np.maximum(dist_blade, dist_stalk) * half
    coverage = np.clip(dist + 0.5, 0, 1)

    if hue is None:
        hue = rng.uniform(0.2, 0.38) if rng.random() < 0.8 else rng.uniform(0.02, 0.12)
    green = hsv(hue, rng.uniform(0.5, 0.95), rng.uniform(0.4, 0.85))
    across = np.abs(vn) / np.maximum(hw, 1e-3)
    side = np.sign(vn)
    light = 0.85 + 0.2 * side * rng.choice([-1.0, 1.0]) * np.clip(across, 0, 1)
    veins = ((un * n_teeth / 2 + np.abs(vn) * 3) % 1.0 < 0.08) & (across < 0.85)
    rib = np.abs(vn) < 0.025
    shade = light * np.where(veins | rib, 1.3, 1.0)
    rgb = green * shade[..., None]
    sprite = _cut(rgb, coverage)
    if sprite is None:
        raise ValueError(f"size must be large enough for a visible leaf, got {size}")
    return sprite


# --------------------------------------------------------------------------- compositing, masks

def _window(shape: tuple[int, int], sprite: Sprite, x: int, y: int):
    """The image slices and sprite slices where ``sprite`` pasted at ``(x, y)`` overlaps the image."""
    h, w = sprite.alpha.shape
    iy0, ix0 = max(y, 0), max(x, 0)
    iy1, ix1 = min(y + h, shape[0]), min(x + w, shape[1])
    if iy1 <= iy0 or ix1 <= ix0:
        return None
    return ((slice(iy0, iy1), slice(ix0, ix1)),
            (slice(iy0 - y, iy1 - y), slice(ix0 - x, ix1 - x)))


def paste_mask(shape: tuple[int, int], sprite: Sprite, x: int, y: int) -> np.ndarray:
    """``bool [H, W]``: the image pixels that ``sprite`` pasted at ``(x, y)`` covers (clipped to the image)."""
    mask = np.zeros(shape, dtype=bool)
    win = _window(shape, sprite, x, y)
    if win is not None:
        mask[win[0]] = sprite.mask[win[1]]
    return mask


def composite(image: np.ndarray, sprite: Sprite, x: int, y: int) -> None:
    """Blends ``sprite`` over ``image`` (``float32 [H, W, 3]``, in place) with its top-left corner at ``(x, y)``.

    Parts outside the image are clipped; pixels outside the sprite's mask are left unchanged.
    """
    win = _window(image.shape[:2], sprite, x, y)
    if win is None:
        return
    dst, src = win
    a = sprite.alpha[src][..., None]
    image[dst] = image[dst] * (1 - a) + sprite.rgb[src] * a


def tight_box(mask: np.ndarray) -> list[float]:
    """The pixel-edge box ``[x_min, y_min, x_max + 1, y_max + 1]`` of a non-empty ``bool [H, W]`` mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def boundary_band(instances: np.ndarray, width: int = 1) -> np.ndarray:
    """``bool [H, W]``: the pixels within ``width`` pixels of a boundary between two regions.

    Args:
        instances (ndarray[H, W]): integer region ids (0 for the background, one id per object).
        width (int): how far the band reaches beyond the two pixels on either side of an outline.

    Returns:
        ndarray[H, W]: ``bool``; every pair of 4-neighbours with different ids is in the band,
        and the band is ``2 + 2 * width`` pixels wide across a straight outline.
    """
    edge = np.zeros(instances.shape, dtype=bool)
    dx = instances[:, 1:] != instances[:, :-1]  # [H, W - 1]
    dy = instances[1:, :] != instances[:-1, :]  # [H - 1, W]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    if width > 0:
        img = Image.fromarray(edge.astype(np.uint8) * 255)
        edge = np.asarray(img.filter(ImageFilter.MaxFilter(2 * width + 1))) > 0
    return edge
