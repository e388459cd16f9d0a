"""Finishing: fake pixel art in, a game-ready sprite out (one pixel per art pixel, a small
palette, a transparent background). The steps, in order: grid, dominant colours, background,
palette, outline, trim, cell."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

import numpy as np
from PIL import Image

from batches.sprites import background, framing, grid as gridmod, quantize
from batches.sprites.decode import to_rgba
from batches.sprites.errors import PaletteError, SpriteError
from batches.sprites.palettes import load_palette, map_to_palette, parse_color, rgb_to_hex

MAX_PIXEL_SIZE = 512
MAX_SPRITE_SIDE = 4096
_SIZE = re.compile(r"\s*(\d{1,5})\s*(?:[xX×]\s*(\d{1,5}))?\s*")


@dataclass(frozen=True)
class FinishSettings:
    pixel_size: float | None = None      # None: detect; else the art-pixel size in screen pixels
    size: tuple[int, int] | None = None  # downscale to exactly (w, h) art pixels instead of detecting
    colors: int | None = None            # reduce to K colours (2..256); None keeps the recovered ones
    palette: str | None = None           # a palettes/ name ("pico-8") or a .hex / .gpl path
    background: str = "auto"            # "auto" | "keep" | "#rrggbb"
    outline: str | None = None           # "#rrggbb": a 1-pixel outline around the opaque content
    cell: tuple[int, int] | None = None  # pad (after trimming) into a (w, h) cell, bottom-centre
    trim: bool = True                    # crop to the opaque content (when there is transparency)
    dither: bool = False                 # ordered dithering when reducing colours

    def __post_init__(self) -> None:
        if self.pixel_size is not None:
            if not _is_number(self.pixel_size) or not 1 <= self.pixel_size <= MAX_PIXEL_SIZE:
                raise SpriteError(f"pixel_size: {self.pixel_size!r}: give the art-pixel size in screen pixels "
                                  f"(1 to {MAX_PIXEL_SIZE}, e.g. 21.33), or leave it out to detect it")
            object.__setattr__(self, "pixel_size", float(self.pixel_size))
        for name in ("size", "cell"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _pair(value, name))
        if self.colors is not None and (isinstance(self.colors, bool) or not isinstance(self.colors, int)
                                        or not 2 <= self.colors <= 256):
            raise SpriteError(f"colors: {self.colors!r}: give a number of colours from 2 to 256")
        if self.palette is not None and (not isinstance(self.palette, str) or not self.palette.strip()):
            raise SpriteError("palette: give a palette name (e.g. pico-8) or the path of a .hex/.gpl file")
        if self.colors is not None and self.palette is not None:
            raise SpriteError("colors: give either a number of colours or a palette, not both")
        bg = self.background.strip().lower() if isinstance(self.background, str) else self.background
        if bg not in ("auto", "keep"):
            if not isinstance(bg, str) or not bg.startswith("#"):
                raise SpriteError(f"background: {self.background!r}: give auto, keep or a colour #rrggbb")
            bg = rgb_to_hex(parse_color(bg, field="background"))
        object.__setattr__(self, "background", bg)
        if self.outline is not None:
            object.__setattr__(self, "outline", rgb_to_hex(parse_color(self.outline, field="outline")))
        for name in ("trim", "dither"):
            if not isinstance(getattr(self, name), bool):
                raise SpriteError(f"{name}: {getattr(self, name)!r}: give true or false")

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("size", "cell"):
            data[name] = list(data[name]) if data[name] is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FinishSettings":
        """Settings from JSON-like data (lists or 'WxH' for sizes); the palette must load."""
        if not isinstance(data, dict):
            raise SpriteError("finishing settings: expected an object with keys such as colors, palette, background")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise SpriteError(f"{key}: not a finishing setting: use {', '.join(sorted(known))}")
        settings = cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})
        if settings.palette is not None:
            try:
                load_palette(settings.palette)
            except PaletteError as exc:  # a file's own message names the file and line: add the key
                message = str(exc)
                raise PaletteError(message if message.startswith("palette: ") else f"palette: {message}") from None
        return settings


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _pair(value, name: str) -> tuple[int, int]:
    """(w, h) from a pair of whole numbers or a 'WxH' / 'N' string."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        value = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else None
    ok = (isinstance(value, tuple) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SPRITE_SIDE for v in value))
    if not ok:
        raise SpriteError(f"{name}: give a width and height in pixels as WxH (e.g. 48x48), "
                          f"each from 1 to {MAX_SPRITE_SIDE}")
    return value


@dataclass
class FinishResult:
    image: Image.Image                   # RGBA, one pixel per art pixel
    pixel_size: float                    # art-pixel size in screen px (detected, given or implied)
    phase: tuple[float, float]           # grid offset (x, y) in screen px
    palette: list[str]                   # "#rrggbb" of the opaque colours used, most common first
    content_size: tuple[int, int]        # opaque content in art pixels, before cell padding

    def info(self) -> dict:
        return {"pixel_size": round(self.pixel_size, 3), "phase": [round(p, 2) for p in self.phase],
                "size": list(self.image.size), "content_size": list(self.content_size),
                "palette": list(self.palette)}


def recover(image, settings: FinishSettings) -> tuple[np.ndarray, gridmod.Grid]:
    """The art pixels of an image (h, w, 4), background removed as settings say, and the grid."""
    rgba = to_rgba(image)
    clean = gridmod.is_clean(rgba)
    h, w = rgba.shape[:2]
    if settings.size is not None:
        grid = gridmod.grid_for_size(w, h, settings.size)
    else:
        grid = gridmod.detect_grid(rgba, pixel_size=settings.pixel_size, clean=clean)
    small = gridmod.resample(rgba, grid)
    if not clean:
        opaque = small[..., 3] > 0
        small[..., :3] = quantize.merge_near(small[..., :3], opaque)
    mode = settings.background
    if mode.startswith("#"):
        mode = parse_color(mode, field="background")
    small[background.background_mask(small, mode)] = 0
    return small, grid


def finish_image(image: "Image.Image | bytes", settings: FinishSettings, *,
                 locked_palette: list[tuple[int, int, int]] | None = None) -> FinishResult:
    """Finish one image; `locked_palette` (a batch's shared colours) wins over colors / palette."""
    small, grid = recover(image, settings)
    small = _apply_palette(small, _target_palette(small, settings, locked_palette), dither=settings.dither)
    transparent = bool((small[..., 3] == 0).any())
    if settings.outline:
        small = background.add_outline(small, parse_color(settings.outline, field="outline"))
        transparent = True
    if settings.trim and transparent:
        small = framing.trim(small)
    box = framing.content_box(small)
    if box is None:
        raise SpriteError(framing.NOTHING_LEFT)
    content_size = (box[2] - box[0], box[3] - box[1])
    if settings.cell is not None:
        small = framing.place_in_cell(framing.trim(small), settings.cell)
    return FinishResult(image=Image.fromarray(small, "RGBA"), pixel_size=float(grid.size_x),
                        phase=(float(grid.phase_x), float(grid.phase_y)),
                        palette=used_colors(small), content_size=content_size)


def _target_palette(small: np.ndarray, settings: FinishSettings, locked) -> np.ndarray | None:
    if locked is not None:
        return _check_locked(locked)
    if settings.palette is not None:
        return np.array(load_palette(settings.palette), np.uint8)
    if settings.colors is not None:
        colors, counts, _ = quantize.unique_colors(small[..., :3], small[..., 3] > 0)
        if len(colors) > settings.colors:
            return quantize.reduce_colors(colors, counts, settings.colors)
    return None


def _check_locked(locked) -> np.ndarray:
    try:
        pal = np.array(locked, dtype=np.int64).reshape(-1, 3)
        if not 1 <= len(pal) <= 256 or pal.min() < 0 or pal.max() > 255:
            raise ValueError
    except (ValueError, TypeError):
        raise SpriteError("locked_palette: give 1 to 256 (r, g, b) colours with values 0 to 255") from None
    return pal.astype(np.uint8)


def _apply_palette(small: np.ndarray, palette: np.ndarray | None, *, dither: bool) -> np.ndarray:
    opaque = small[..., 3] > 0
    if palette is None or not opaque.any():
        return small
    out = small.copy()
    out[..., :3] = np.where(opaque[..., None], map_to_palette(small[..., :3], palette, dither=dither), 0)
    return out


def used_colors(rgba: np.ndarray) -> list[str]:
    """The opaque colours, most common first (ties by value)."""
    colors, counts, _ = quantize.unique_colors(rgba[..., :3], rgba[..., 3] > 0)
    order = np.lexsort((np.arange(len(colors)), -counts))
    return [rgb_to_hex(c) for c in colors[order]]


def batch_palette(images: list, settings: FinishSettings, k: int) -> list[tuple[int, int, int]]:
    """One palette of k colours for a whole batch (frames, variants), from every image's art
    pixels once the background is gone: large areas' colours and small accents alike."""
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 256:
        raise SpriteError(f"colors: {k!r}: give a number of colours from 2 to 256")
    if not images:
        raise SpriteError("images: give at least one image to take the batch palette from")
    pixels = []
    for image in images:
        small, _ = recover(image, settings)
        pixels.append(small[..., :3][small[..., 3] > 0])
    allpx = np.concatenate(pixels)[None, :, :] if pixels else np.zeros((1, 0, 3), np.uint8)
    colors, counts, _ = quantize.unique_colors(allpx)
    if len(colors) == 0:
        raise SpriteError(f"images: {framing.NOTHING_LEFT}")
    palette = quantize.reduce_colors(colors, counts, min(k, len(colors)))
    return [tuple(int(v) for v in c) for c in palette]
