"""Ground truth for the finishing tests and the benchmark: known sprites, and the fake pixel art a
diffusion model would draw of them.

`make_sprite` draws a sprite one pixel per art pixel (a symmetric silhouette filling exactly its
w x h box, bands and patches of well-separated colours, optionally a 1-pixel outline, a 1-pixel
eye and an enclosed pocket of the background's own colour). `render` draws it the way SDXL does:
an N x N art canvas over the whole image, so cells are image/N screen pixels (1024/48 = 21.33), a
grid offset, Gaussian blur, noise, a JPEG round trip and an opaque background.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from batches.sprites.palettes import oklab

MIN_SPREAD = 0.14   # OKLab distance between any two sprite colours (and the background)
NEAR_BG = 0.09      # the one sprite colour drawn close to the background


@dataclass
class Truth:
    sprite: np.ndarray          # (h, w, 4) uint8, transparent background, exactly w x h content
    background: tuple[int, int, int]
    near: tuple[int, int, int] | None  # the sprite colour close to the background, if any


def _pick_colors(rng: np.random.Generator, n: int, avoid: list) -> list[tuple[int, int, int]]:
    chosen: list = []
    labs = [oklab(np.array(c, dtype=np.uint8)) for c in avoid]
    while len(chosen) < n:
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        lab = oklab(np.array(c, dtype=np.uint8))
        if all(np.linalg.norm(lab - other) >= MIN_SPREAD for other in labs):
            chosen.append(c)
            labs.append(lab)
    return chosen


def _near_color(rng: np.random.Generator, bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """A colour NEAR_BG (+- 0.01) from the background in OKLab: a plausible 'light grey on white'."""
    base = oklab(np.array(bg, dtype=np.uint8))
    while True:
        c = np.clip(np.array(bg) + rng.integers(-40, 41, 3), 0, 255).astype(np.uint8)
        if abs(np.linalg.norm(oklab(c) - base) - NEAR_BG) < 0.01:
            return tuple(int(v) for v in c)


def make_sprite(seed: int, w: int, h: int, n_colors: int = 6, *, outline: bool = True, eye: bool = True,
                pocket: bool = False, near_bg: bool = False) -> Truth:
    rng = np.random.default_rng(seed)
    bg = _pick_colors(rng, 1, [])[0]
    near = _near_color(rng, bg) if near_bg else None
    colors = _pick_colors(rng, n_colors, [bg] + ([near] if near else []))
    # Silhouette: a union of ellipses, mirrored left-right, then stretched to touch all four sides.
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), bool)
    for _ in range(5):
        cx, cy = rng.uniform(0.2, 0.5) * w, rng.uniform(0.15, 0.85) * h
        rx, ry = rng.uniform(0.15, 0.35) * w, rng.uniform(0.12, 0.3) * h
        mask |= ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    mask |= mask[:, ::-1]
    mask[h // 4: 3 * h // 4, w // 3: w - w // 3] = True   # a trunk keeps it in one piece
    mask[:, w // 2 - 1: w // 2 + 1] = True                 # head to feet: touches top and bottom
    mask[h // 2, :] = True                                  # arms: touch left and right
    sprite = np.zeros((h, w, 4), np.uint8)
    # Colour regions: horizontal bands with random cuts, then a few elliptical patches.
    cuts = np.sort(rng.choice(np.arange(2, h - 2), size=min(len(colors) - 1, h - 4), replace=False))
    band = np.searchsorted(cuts, yy)
    region = band % len(colors)
    for i in range(3):
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        patch = ((xx - cx) / (0.1 * w + 1)) ** 2 + ((yy - cy) / (0.08 * h + 1)) ** 2 <= 1
        region[patch] = (i * 2 + 1) % len(colors)
    palette = np.array(colors, np.uint8)
    sprite[..., :3] = palette[region]
    if near is not None:   # the near-background colour on the silhouette's lower part
        sprite[(yy > 0.7 * h) & (yy < 0.85 * h), :3] = near
    sprite[..., 3] = np.where(mask, 255, 0)
    if outline:
        inner = np.zeros_like(mask)
        inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        edge = mask & ~inner
        sprite[edge, :3] = _darkest(colors)
    if pocket:   # an enclosed 3x3 window of the background colour, ringed by the outline colour
        py, px = int(0.4 * h), w // 2 - 2
        sprite[py - 1:py + 4, px - 1:px + 4, :3] = _darkest(colors)
        sprite[py:py + 3, px:px + 3, :3] = bg
        sprite[py - 1:py + 4, px - 1:px + 4, 3] = 255
    if eye:   # a 1-pixel accent of its own colour
        accent = _pick_colors(rng, 1, [bg] + colors + ([near] if near else []))[0]
        sprite[int(0.25 * h), int(0.35 * w), :3] = accent
        sprite[int(0.25 * h), int(0.35 * w), 3] = 255
    sprite[sprite[..., 3] == 0] = 0
    return Truth(sprite, bg, near)


def _darkest(colors) -> tuple[int, int, int]:
    return min(colors, key=lambda c: float(oklab(np.array(c, dtype=np.uint8))[0]))


def render(truth: Truth, *, px: int = 1024, cells: int = 48, phase: tuple[float, float] = (0.0, 0.0),
           offset: tuple[int, int] | None = None, blur: float = 1.5, noise: float = 3.0,
           jpeg: int | None = 90, seed: int = 0) -> Image.Image:
    """The sprite as fake pixel art: cells x cells art pixels over px x px screen pixels."""
    h, w = truth.sprite.shape[:2]
    s = px / cells
    canvas = np.empty((cells + 2, cells + 2, 3), np.uint8)
    canvas[:] = truth.background
    ox, oy = offset if offset is not None else ((cells - w) // 2, (cells - h) // 2)
    assert 2 <= ox and ox + w <= cells - 2 and 2 <= oy and oy + h <= cells - 2, "the sprite must fit"
    opaque = truth.sprite[..., 3] > 0
    region = canvas[oy + 1: oy + 1 + h, ox + 1: ox + 1 + w]
    region[opaque] = truth.sprite[..., :3][opaque]
    # Screen pixel x shows canvas cell floor((x + 0.5 - phase) / s) + 1 (cell 0: the partial one).
    cx = np.clip(np.floor((np.arange(px) + 0.5 - phase[0]) / s).astype(int) + 1, 0, cells + 1)
    cy = np.clip(np.floor((np.arange(px) + 0.5 - phase[1]) / s).astype(int) + 1, 0, cells + 1)
    image = Image.fromarray(canvas[cy][:, cx])
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        rng = np.random.default_rng(seed)
        arr = np.asarray(image).astype(np.float32) + rng.normal(0, noise, (px, px, 3)).astype(np.float32)
        image = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    if jpeg:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=jpeg)
        image = Image.open(io.BytesIO(buf.getvalue()))
        image.load()
        image = image.convert("RGB")
    return image


def accuracy(result: np.ndarray, truth: np.ndarray, *, tolerance: int = 24) -> float:
    """Share of the truth's pixels the result got right: the same alpha and, where opaque, every
    channel within `tolerance`. A result of another size is compared where the two overlap and is
    wrong everywhere else."""
    h, w = min(result.shape[0], truth.shape[0]), min(result.shape[1], truth.shape[1])
    r, t = result[:h, :w].astype(int), truth[:h, :w].astype(int)
    alpha_ok = (r[..., 3] > 0) == (t[..., 3] > 0)
    color_ok = (np.abs(r[..., :3] - t[..., :3]).max(-1) <= tolerance) | (t[..., 3] == 0)
    right = int((alpha_ok & color_ok).sum())
    return right / max(result.shape[0] * result.shape[1], truth.shape[0] * truth.shape[1])
