"""Deterministic pixel-art sprites standing in for what SDXL would have drawn.

A sprite is drawn on a small grid (16 or 32 cells wide), mirrored left to right like a
classic sprite generator and outlined, then painted as SDXL paints pixel art (`as_generated`):
an RGB picture on an opaque backdrop, with art pixels of a non-integer size on a shifted grid
and soft edges. Everything comes from hashes of
the inputs, never from a global RNG, so the same inputs give byte-identical PNGs.

What drives what (so that images look related the way real generations do):
- the silhouette: prompt text + seed + index in the batch;
- the palette: prompt text + checkpoint + LoRAs;
- the colours' strength: CFG (low washed out, high saturated and contrasty);
- the figure's bulk and smoothing: the sampler and scheduler;
- a sprinkle of detail: steps, cfg, sampler, scheduler, denoise and the negative prompt.
"""
from __future__ import annotations

import colorsys
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

Color = tuple[int, int, int, int]
TRANSPARENT: Color = (0, 0, 0, 0)


@dataclass(frozen=True)
class Recipe:
    """Everything a KSampler run decides about the pictures it will produce."""

    text: str
    negative: str
    seed: int
    model: str  # checkpoint name plus the LoRA chain, as text
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    denoise: float


def _rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _rgb(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, max(0.0, min(1.0, s)), max(0.0, min(1.0, v)))
    return (round(r * 255), round(g * 255), round(b * 255), 255)


def _palette(rng: random.Random, cfg: float = 7.0) -> dict[str, Color]:
    hue = rng.random()
    accent = hue + rng.choice((0.33, 0.5, 0.66))
    # CFG pushes colours as guidance does: low is washed out and soft, high saturated and contrasty.
    push = max(0.35, min(1.6, cfg / 7.0))
    sat = min(1.0, (0.45 + rng.random() * 0.4) * push)
    dark = max(0.2, 0.5 - (push - 1.0) * 0.25)
    return {
        "light": _rgb(hue, sat * 0.7, 0.95),
        "mid": _rgb(hue, sat, 0.75),
        "dark": _rgb(hue, sat, dark),
        "accent": _rgb(accent, 0.8, 0.9),
        "outline": _rgb(hue, 0.6, 0.15),
        "eye": (20, 20, 28, 255),
    }


def _grid_size(width: int, height: int) -> tuple[int, int]:
    cells = 16 if min(width, height) < 128 else 32
    if width >= height:
        return cells, max(8, round(cells * height / width))
    return max(8, round(cells * width / height)), cells


def _smooth(mask: list[list[bool]], rounds: int) -> list[list[bool]]:
    """Cellular-automaton smoothing: speckle becomes blobs. Symmetric rule, so symmetry survives."""
    gh, gw = len(mask), len(mask[0])
    for _ in range(rounds):
        nxt = [[False] * gw for _ in range(gh)]
        for y in range(1, gh - 1):
            for x in range(1, gw - 1):
                n = sum(mask[y + dy][x + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
                nxt[y][x] = n >= 5 or (mask[y][x] and n >= 4)
        mask = nxt
    return mask


def draw_sprite(recipe: Recipe, index: int, width: int, height: int) -> Image.Image:
    """One RGBA sprite of exactly width x height, transparent around the figure."""
    gw, gh = _grid_size(width, height)
    half = (gw + 1) // 2
    shape = _rng("shape", recipe.text, recipe.seed, index)
    colors = _palette(_rng("palette", recipe.text, recipe.model), recipe.cfg)
    # The sampler shapes the figure as a sampler would: its own bulk and smoothing.
    style = _rng("sampler", recipe.sampler_name, recipe.scheduler)
    chunk, smooth_extra = style.uniform(-0.12, 0.12), style.randrange(0, 2)
    detail = _rng("detail", recipe.steps, recipe.cfg, recipe.sampler_name, recipe.scheduler,
                  recipe.denoise, recipe.negative, recipe.seed, index)
    bulk = 0.8 + shape.random() * 0.3 + chunk  # some prompts/seeds (and samplers) give chunkier figures

    # 1. A random left half, denser towards the middle, mirrored; then smoothed into blobs.
    mask = [[False] * gw for _ in range(gh)]
    for y in range(1, gh - 1):  # a one-cell margin keeps room for the outline
        cy = abs(y + 0.5 - gh / 2) / (gh / 2)
        for x in range(1, half):
            cx = (half - 0.5 - x) / half
            if shape.random() < bulk * (1.0 - max(cx, cy) ** 1.4):
                mask[y][x] = mask[y][gw - 1 - x] = True
    mask = _smooth(mask, (2 if gw >= 32 else 1) + smooth_extra)

    # 2. Accent patches come from a coarser noise grid, so they read as markings, not speckle.
    block = max(2, gw // 8)
    accents = {(bx, by) for by in range(gh // block + 1) for bx in range((half + block - 1) // block + 1)
               if shape.random() < 0.18}

    pixels: list[Color] = [TRANSPARENT] * (gw * gh)
    for y in range(gh):
        for x in range(half):
            if not mask[y][x]:
                continue
            edge = any(not mask[y + dy][x + dx] for dx, dy in ((-1, 0), (0, -1), (0, 1))
                       if 0 <= y + dy < gh and 0 <= x + dx < gw)
            tone = "light" if y < gh * 0.35 else ("mid" if y < gh * 0.7 else "dark")
            if (x // block, y // block) in accents and not edge:
                tone = "accent"
            elif edge and tone != "dark":
                tone = "mid" if tone == "light" else "dark"  # rim shading
            if detail.random() < 0.04:
                tone = "light" if tone == "dark" else "dark"
            pixels[y * gw + x] = pixels[y * gw + (gw - 1 - x)] = colors[tone]
    # Eyes: two dark cells a third of the way down, when the body is there to hold them.
    eye_y, eye_x = gh // 3, max(1, half - 1 - max(1, gw // 8))
    if mask[eye_y][eye_x]:
        pixels[eye_y * gw + eye_x] = pixels[eye_y * gw + gw - 1 - eye_x] = colors["eye"]

    filled = [p != TRANSPARENT for p in pixels]
    for y in range(gh):
        for x in range(gw):
            if filled[y * gw + x]:
                continue
            neighbours = ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1))
            if any(0 <= nx < gw and 0 <= ny < gh and filled[ny * gw + nx] for nx, ny in neighbours):
                pixels[y * gw + x] = colors["outline"]

    small = Image.new("RGBA", (gw, gh), TRANSPARENT)
    small.putdata(pixels)
    return as_generated(small, recipe, index, width, height, background=_background(colors))


def _background(colors: dict[str, Color]) -> Color:
    """A flat backdrop close to (not equal to) the figure's lightest tone, as SDXL tends to paint."""
    r, g, b, _ = colors["light"]
    return (min(255, r + 18), min(255, g + 14), min(255, b + 22), 255)


def as_generated(small: Image.Image, recipe: Recipe, index: int, width: int, height: int, *,
                 background: Color) -> Image.Image:
    """Draw the sprite the way SDXL draws pixel art: a picture *of* it, not the sprite itself.

    RGB on an opaque backdrop (ComfyUI's SaveImage writes no alpha), the art pixels blocks of a
    non-integer size (the art is ~1.5x the figure's grid, so 1024 / 48 = 21.33 px) on a grid that
    does not start at 0, with soft edges. Finishing has to undo exactly this.
    """
    gw, gh = small.size
    cells_x, cells_y = round(gw * 1.5), round(gh * 1.5)
    canvas = Image.new("RGBA", (cells_x, cells_y), background)
    canvas.alpha_composite(small, ((cells_x - gw) // 2, cells_y - gh - max(1, (cells_y - gh) // 4)))
    place = _rng("phase", recipe.seed, index)
    # Shift by a fraction of a cell: the grid's phase in screen pixels is then neither 0 nor whole.
    fx, fy = 0.2 + place.random() * 0.6, 0.2 + place.random() * 0.6
    box = (fx, fy, cells_x - 1 + fx, cells_y - 1 + fy)
    if min(width / (cells_x - 1), height / (cells_y - 1)) < 10:  # small images: hard blocks only
        return canvas.convert("RGB").resize((width, height), Image.NEAREST, box=box)
    # Hard blocks at half size, then a bilinear doubling: edges a pixel or two soft, cheaply
    # (a Gaussian blur of the full image cost ~5x more simulator CPU per image).
    half = canvas.convert("RGB").resize((width // 2, height // 2), Image.NEAREST, box=box)
    return half.resize((width, height), Image.BILINEAR)


def blank_image(width: int, height: int) -> Image.Image:
    """What decoding an empty (never sampled) latent looks like: flat grey."""
    return Image.new("RGBA", (width, height), (124, 118, 110, 255))


def save_png(image: Image.Image, path: Path, *, prompt: dict | None, extra_pnginfo: dict | None,
             compress_level: int) -> None:
    """Write the PNG as SaveImage does: a `prompt` tEXt chunk, then one per extra_pnginfo key."""
    metadata = PngInfo()
    if prompt is not None:
        metadata.add_text("prompt", json.dumps(prompt))
    if extra_pnginfo is not None:
        for key in extra_pnginfo:
            metadata.add_text(key, json.dumps(extra_pnginfo[key]))
    image.save(path, pnginfo=metadata, compress_level=compress_level)
