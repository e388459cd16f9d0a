"""Animated exports of frames: GIF, APNG and WebP (Pillow writes all three).

- Order: `loop` "loop" and "once" play frames 0..n-1; "pingpong" plays 0..n-1 then n-2..1 and
  loops (a one- or two-frame pingpong is just the frames). "once" plays a single time.
- Durations: each frame's own, in ms. APNG and WebP keep them exactly. GIF counts in 10 ms
  units: a duration is rounded to the nearest 10 ms, and anything under 20 ms becomes 20 ms
  (browsers play 0 and 10 ms GIF frames at 100 ms).
- Identical consecutive frames are merged into one frame with the summed duration (Pillow and
  libwebp do it); the timing is unchanged.
- Transparency: APNG and WebP (lossless) keep RGBA exactly; colour under fully transparent
  pixels is not kept. GIF has one transparent palette index: alpha < 128 is transparent, the
  rest opaque, unless `background` (#rrggbb) is given, which the frames are composited onto.
  GIF frames share one palette (exact when all frames together use at most 255 colours, else
  median cut over all of them) so colours do not flicker from frame to frame.
- All frames must have one size, or give `cell` (w, h): each frame then stands bottom-centre in a
  transparent cell of that size, as in a grid sheet with that cell.
"""
from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, PngImagePlugin

from batches.sheets.errors import SheetError
from batches.sheets.packing import in_cell
from batches.sheets.types import Frame

LOOPS = ("loop", "pingpong", "once")
GIF_MIN_MS = 20
ALPHA_CUT = 128
TRANSPARENT = 255    # the GIF palette index of transparent pixels
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


def play_order(count: int, loop: str) -> list[int]:
    """The frame indices as played: pingpong is 0..n-1 then n-2..1."""
    if loop not in LOOPS:
        raise SheetError(f"loop: {loop!r}: give one of {', '.join(LOOPS)}")
    order = list(range(count))
    return order + order[-2:0:-1] if loop == "pingpong" else order


def gif_duration(ms: int) -> int:
    """The duration a GIF stores for `ms`: the nearest 10 ms, at least 20 ms."""
    return max(GIF_MIN_MS, int(round(ms / 10.0)) * 10)


def export_gif(frames: list[Frame], *, loop: str = "loop", background=None,
               cell: tuple[int, int] | None = None) -> bytes:
    order, arrays = _prepare(frames, loop, cell)
    if background is not None:
        arrays = _flatten(arrays, _color(background))
    indices, palette = _shared_palette(arrays)
    images = []
    for idx in indices:
        image = Image.fromarray(idx, "P")
        image.putpalette(palette)
        images.append(image)
    options = {"duration": [gif_duration(frames[i].duration) for i in order], "disposal": 2, "optimize": False}
    if background is None:
        options["transparency"] = TRANSPARENT
    if loop != "once":
        options["loop"] = 0     # no NETSCAPE loop block at all: play once
    return _save([images[i] for i in order], "GIF", **options)


def export_apng(frames: list[Frame], *, loop: str = "loop", cell: tuple[int, int] | None = None) -> bytes:
    order, arrays = _prepare(frames, loop, cell)
    images = [Image.fromarray(arrays[i], "RGBA") for i in order]
    # blend OP_SOURCE: a frame replaces what is under it, so transparent pixels stay transparent.
    return _save(images, "PNG", duration=[frames[i].duration for i in order], loop=1 if loop == "once" else 0,
                 blend=PngImagePlugin.Blend.OP_SOURCE, default_image=False)


def export_webp(frames: list[Frame], *, loop: str = "loop", cell: tuple[int, int] | None = None) -> bytes:
    order, arrays = _prepare(frames, loop, cell)
    images = [Image.fromarray(arrays[i], "RGBA") for i in order]
    return _save(images, "WEBP", duration=[frames[i].duration for i in order], loop=1 if loop == "once" else 0,
                 lossless=True, quality=100, method=4)


def _prepare(frames: list[Frame], loop: str, cell) -> tuple[list[int], list[np.ndarray]]:
    if not isinstance(frames, (list, tuple)) or not frames:
        raise SheetError("frames: select at least one image")
    for frame in frames:
        if not isinstance(frame, Frame):
            raise SheetError(f"frames: {type(frame).__name__} is not a Frame: give Frame(name, image, duration)")
    order = play_order(len(frames), loop)
    sizes = sorted({frame.image.size for frame in frames})
    big = (max(w for w, _ in sizes), max(h for _, h in sizes))
    if cell is None and len(sizes) > 1:
        listed = ", ".join(f"{w}x{h}" for w, h in sizes[:6])
        raise SheetError(f"frames: an animation's frames share one size, these are {listed}: give a cell that "
                         f"holds them all (--cell {big[0]}x{big[1]}), each then stands bottom-centre in it")
    arrays = [np.asarray(f.image if f.image.mode == "RGBA" else f.image.convert("RGBA")) for f in frames]
    if cell is not None:
        if (not isinstance(cell, (tuple, list)) or len(cell) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in cell)):
            raise SheetError(f"cell: {cell!r}: give (width, height) in pixels, e.g. (64, 64)")
        if big[0] > cell[0] or big[1] > cell[1]:
            raise SheetError(f"cell: a frame is larger than the {cell[0]}x{cell[1]} cell: give a cell of at least "
                             f"{max(big[0], cell[0])}x{max(big[1], cell[1])}")
        arrays = [in_cell(a, int(cell[0]), int(cell[1])) for a in arrays]
    return order, arrays


def _save(images: list[Image.Image], fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    images[0].save(buf, format=fmt, save_all=True, append_images=images[1:], **options)
    return buf.getvalue()


def _color(value) -> np.ndarray:
    if isinstance(value, str) and _HEX.fullmatch(value.strip()):
        n = int(_HEX.fullmatch(value.strip()).group(1), 16)
        return np.array([(n >> 16) & 255, (n >> 8) & 255, n & 255], np.float32)
    if isinstance(value, (tuple, list)) and len(value) in (3, 4) and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value):
        return np.array(value[:3], np.float32)
    raise SheetError(f"background: {value!r}: give a colour as #rrggbb, or leave it out to keep transparency")


def _flatten(arrays: list[np.ndarray], color: np.ndarray) -> list[np.ndarray]:
    out = []
    for a in arrays:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        rgb = np.rint(a[..., :3] * alpha + color * (1.0 - alpha)).astype(np.uint8)
        out.append(np.dstack([rgb, np.full(a.shape[:2], 255, np.uint8)]))
    return out


def _shared_palette(arrays: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Palette indices per frame and one 256-entry palette for all: index 255 is transparent."""
    stack = np.stack(arrays)                                   # (n, h, w, 4)
    opaque = stack[..., 3] >= ALPHA_CUT
    rgb = stack[..., :3].astype(np.uint32)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colors = np.unique(codes[opaque])
    if len(colors) <= TRANSPARENT:
        table = np.stack([(colors >> 16) & 255, (colors >> 8) & 255, colors & 255], 1).astype(np.uint8)
        index = np.searchsorted(colors, codes).astype(np.uint8) if len(colors) else np.zeros(codes.shape, np.uint8)
    else:
        # Median cut over every opaque pixel of every frame, then each pixel to its nearest entry.
        sample = Image.fromarray(stack[..., :3][opaque].reshape(-1, 1, 3), "RGB")
        quantized = sample.quantize(TRANSPARENT, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        table = np.array(quantized.getpalette()[:3 * TRANSPARENT], np.uint8).reshape(-1, 3)
        n, h, w = codes.shape
        tall = Image.fromarray(stack[..., :3].reshape(n * h, w, 3), "RGB")
        index = np.asarray(tall.quantize(palette=quantized, dither=Image.Dither.NONE)).reshape(n, h, w)
    index = np.where(opaque, index, TRANSPARENT).astype(np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(table)] = table
    return list(index), palette.reshape(-1).tolist()
