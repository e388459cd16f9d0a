"""Pack frames into one sheet: a grid of fixed cells, or packed tight (MaxRects or shelf), with
padding between rects and extrusion (edge pixels repeated outward, so texture filtering at a
frame's border samples the frame and not its neighbour).

Geometry, for every layout: each frame's rect is surrounded by `extrude` pixels of its own edge,
and neighbouring extruded rects are `padding` transparent pixels apart. The sheet has no border
beyond the extrusion. In a grid, cell (col, row) has its rect at
x = extrude + col * (cell_w + 2 * extrude + padding), likewise y: in Tiled's terms the margin is
`extrude` and the spacing `2 * extrude + padding`.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from batches.sheets import rects
from batches.sheets.errors import SheetError
from batches.sheets.types import Frame, Placement, Sheet

DEFAULT_MAX_SIZE = (8192, 8192)   # safe on desktop GPUs; 4096 x 4096 for older mobile ones
MAX_PADDING = 256
MAX_EXTRUDE = 64
LAYOUTS = ("grid", "packed")
ALGORITHMS = ("maxrects", "shelf")
WIDTH_TRIES = (1.0, 1.1, 1.25)   # packed: sheet widths tried, times sqrt(area); the smallest sheet wins


def pack_sheet(frames: list[Frame], *, layout: str = "grid", columns: int | None = None, rows: int | None = None,
               cell: tuple[int, int] | None = None, padding: int = 0, extrude: int = 0,
               algorithm: str = "maxrects", trim: bool = False, max_size: tuple[int, int] = DEFAULT_MAX_SIZE,
               power_of_two: bool = False) -> Sheet:
    """One sheet of the frames. Placements come back in the order of `frames` (atlas frame i is
    frames[i], so animation tags can count on it).

    grid: cells of the frames' common size, or of `cell` (each frame then sits bottom-centre in
    its cell, and the cell is the frame: the atlas records the cell rect, untrimmed). `columns`
    or `rows` (or both) fix the shape, else it is square-ish. packed: MaxRects (best short side
    fit) or shelf; `trim` crops each frame to its opaque pixels and records the offset (a frame
    is `trimmed` when that cut something; a fully transparent one keeps a 1x1 pixel).
    `power_of_two` rounds the sheet's sides up to powers of two."""
    _check(frames, layout, columns, rows, cell, padding, extrude, algorithm, trim, max_size, power_of_two)
    arrays = [np.asarray(f.image if f.image.mode == "RGBA" else f.image.convert("RGBA")) for f in frames]
    if layout == "grid":
        sheet_w, sheet_h, places, arrays, cell_wh, columns, rows = _grid(frames, arrays, columns, rows, cell,
                                                                         padding, extrude)
    else:
        sheet_w, sheet_h, places, arrays = _packed(frames, arrays, algorithm, trim, padding, extrude, max_size,
                                                   power_of_two)
        cell_wh = None
    if power_of_two:
        sheet_w, sheet_h = _pow2(sheet_w), _pow2(sheet_h)
    _fits(sheet_w, sheet_h, max_size, layout)
    image = Image.fromarray(_compose(sheet_w, sheet_h, places, arrays, extrude), "RGBA")
    return Sheet(image=image, placements=places, layout=layout, cell=cell_wh, padding=padding, extrude=extrude,
                 columns=columns, rows=rows)


def _check(frames, layout, columns, rows, cell, padding, extrude, algorithm, trim, max_size, power_of_two) -> None:
    if not isinstance(frames, (list, tuple)) or not frames:
        raise SheetError("frames: select at least one image")
    for frame in frames:
        if not isinstance(frame, Frame):
            raise SheetError(f"frames: {type(frame).__name__} is not a Frame: give Frame(name, image)")
    seen: set[str] = set()
    for frame in frames:
        if frame.name in seen:
            raise SheetError(f"frames: the name {frame.name!r} appears twice: the atlas keys frames by name, "
                             f"give each frame its own")
        seen.add(frame.name)
    if layout not in LAYOUTS:
        raise SheetError(f"layout: {layout!r}: give grid or packed")
    if algorithm not in ALGORITHMS:
        raise SheetError(f"algorithm: {algorithm!r}: give maxrects or shelf")
    _int("padding", padding, 0, MAX_PADDING)
    _int("extrude", extrude, 0, MAX_EXTRUDE)
    for name, value in (("columns", columns), ("rows", rows)):
        if value is not None:
            _int(name, value, 1, 100_000)
            if layout != "grid":
                raise SheetError(f"{name}: only the grid layout has {name}: leave it out, or use layout grid")
    if cell is not None:
        if layout != "grid":
            raise SheetError("cell: only the grid layout has cells: leave it out, or use layout grid")
        if not isinstance(cell, (tuple, list)) or len(cell) != 2:
            raise SheetError(f"cell: {cell!r}: give (width, height) in pixels, e.g. (64, 64)")
        for value in cell:
            _int("cell", value, 1, 1 << 16)
    if not isinstance(trim, bool) or not isinstance(power_of_two, bool):
        raise SheetError("trim, power_of_two: give True or False")
    if trim and layout != "packed":
        raise SheetError("trim: only the packed layout trims (a grid keeps whole cells): use layout packed, "
                         "or trim off")
    if not isinstance(max_size, (tuple, list)) or len(max_size) != 2:
        raise SheetError(f"max_size: {max_size!r}: give (width, height) in pixels, e.g. (8192, 8192)")
    for value in max_size:
        _int("max_size", value, 1, 1 << 16)


def _int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SheetError(f"{name}: {value!r}: give a whole number from {low} to {high}")


def _grid(frames, arrays, columns, rows, cell, padding, extrude):
    n = len(frames)
    sizes = sorted({(a.shape[1], a.shape[0]) for a in arrays})
    if cell is None:
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h}" for w, h in sizes[:6]) + (" ..." if len(sizes) > 6 else "")
            big = (max(w for w, _ in sizes), max(h for _, h in sizes))
            raise SheetError(f"grid: the images differ in size ({listed}): give a cell that holds them all, "
                             f"e.g. --cell {big[0]}x{big[1]} (each sits bottom-centre), or use the packed layout")
        cell = sizes[0]
    cw, ch = int(cell[0]), int(cell[1])
    too_big = [f"{f.name} ({a.shape[1]}x{a.shape[0]})" for f, a in zip(frames, arrays)
               if a.shape[1] > cw or a.shape[0] > ch]
    if too_big:
        raise SheetError(f"cell: {len(too_big)} image(s) larger than the {cw}x{ch} cell, e.g. {too_big[0]}: "
                         f"give a cell of at least {max(a.shape[1] for a in arrays)}x{max(a.shape[0] for a in arrays)}")
    if columns is not None and rows is not None:
        if columns * rows < n:
            raise SheetError(f"columns x rows: {columns} x {rows} = {columns * rows} cells for {n} images: "
                             f"give more columns or rows, or leave one of them out")
    elif columns is not None:
        rows = math.ceil(n / columns)
    elif rows is not None:
        columns = math.ceil(n / rows)
    else:
        columns = math.ceil(math.sqrt(n))
        rows = math.ceil(n / columns)
    pitch_x, pitch_y = cw + 2 * extrude + padding, ch + 2 * extrude + padding
    sheet_w, sheet_h = columns * pitch_x - padding, rows * pitch_y - padding
    places, cells = [], []
    for i, (frame, a) in enumerate(zip(frames, arrays)):
        col, row = i % columns, i // columns
        places.append(Placement(name=frame.name, x=extrude + col * pitch_x, y=extrude + row * pitch_y, w=cw, h=ch,
                                source_w=cw, source_h=ch, offset_x=0, offset_y=0, trimmed=False,
                                duration=frame.duration))
        cells.append(in_cell(a, cw, ch))
    return sheet_w, sheet_h, places, cells, (cw, ch), columns, rows


def in_cell(a: np.ndarray, cw: int, ch: int) -> np.ndarray:
    """The image bottom-centre in a transparent cw x ch cell (as batches.sprites frames them)."""
    h, w = a.shape[:2]
    if (w, h) == (cw, ch):
        return a
    out = np.zeros((ch, cw, 4), np.uint8)
    left = (cw - w) // 2
    out[ch - h:, left:left + w] = a
    return out


def _packed(frames, arrays, algorithm, trim, padding, extrude, max_size, power_of_two):
    boxes = [_trim_box(a) if trim else (0, 0, a.shape[1], a.shape[0]) for a in arrays]
    crops = [a[y:y + h, x:x + w] for a, (x, y, w, h) in zip(arrays, boxes)]
    # Each rect takes its extrusion and the padding after it; the last padding is cut off the sheet.
    grow = 2 * extrude + padding
    sizes = np.array([[w + grow, h + grow] for _, _, w, h in boxes], np.int64)
    pack = rects.maxrects if algorithm == "maxrects" else rects.shelf
    best = None
    for width in _widths(sizes, padding, max_size, power_of_two):
        pos = pack(sizes, width)
        if pos is None:
            continue
        used_w = int((pos[:, 0] + sizes[:, 0]).max()) - padding
        used_h = int((pos[:, 1] + sizes[:, 1]).max()) - padding
        w2, h2 = (_pow2(used_w), _pow2(used_h)) if power_of_two else (used_w, used_h)
        inside = w2 <= max_size[0] and h2 <= max_size[1]
        key = (not inside, w2 * h2, abs(w2 - h2))
        if best is None or key < best[0]:
            best = (key, used_w, used_h, pos)
    _, sheet_w, sheet_h, pos = best
    places = []
    for frame, a, (ox, oy, w, h), (px, py) in zip(frames, arrays, boxes, pos):
        places.append(Placement(name=frame.name, x=int(px) + extrude, y=int(py) + extrude, w=w, h=h,
                                source_w=a.shape[1], source_h=a.shape[0], offset_x=ox, offset_y=oy,
                                trimmed=(w, h) != (a.shape[1], a.shape[0]), duration=frame.duration))
    return sheet_w, sheet_h, places, crops


def _trim_box(a: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the opaque pixels; a fully transparent image keeps one pixel at (0, 0)."""
    opaque = a[..., 3] > 0
    cols, rows_ = np.flatnonzero(opaque.any(0)), np.flatnonzero(opaque.any(1))
    if cols.size == 0:
        return 0, 0, 1, 1
    return int(cols[0]), int(rows_[0]), int(cols[-1] - cols[0] + 1), int(rows_[-1] - rows_[0] + 1)


def _widths(sizes: np.ndarray, padding: int, max_size, power_of_two: bool) -> list[int]:
    """Bin widths to try (each including one trailing padding)."""
    widest = int(sizes[:, 0].max())
    side = math.sqrt(float((sizes[:, 0] * sizes[:, 1]).sum()))
    if power_of_two:
        low = _pow2(max(widest - padding, 1))
        out = [p for p in (low << k for k in range(0, 16)) if p >= side / 2 and p <= 2 * side + 1][:3] or [low]
        return [max(p + padding, widest) for p in out]
    out = {max(widest, int(math.ceil(side * f))) for f in WIDTH_TRIES}
    limit = max_size[0] + padding
    if widest <= limit:
        out = {min(w, limit) for w in out}
    return sorted(out)


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def _fits(w: int, h: int, max_size, layout: str) -> None:
    if w <= max_size[0] and h <= max_size[1]:
        return
    if layout == "grid":
        fix = "select fewer images, use the packed layout (with trim)"
        if w > max_size[0] and h <= max_size[1]:
            fix += ", or fewer columns"
        elif h > max_size[1] and w <= max_size[0]:
            fix += ", or more columns"
    else:
        fix = "select fewer images, trim them, or lower the padding"
    raise SheetError(f"sheet size: the sheet needs {w}x{h} pixels, over the limit of {max_size[0]}x{max_size[1]} "
                     f"(max_size): {fix}")


def _compose(w: int, h: int, places: list[Placement], arrays: list[np.ndarray], extrude: int) -> np.ndarray:
    sheet = np.zeros((h, w, 4), np.uint8)
    for p, a in zip(places, arrays):
        if extrude:
            sheet[p.y - extrude:p.y + p.h + extrude, p.x - extrude:p.x + p.w + extrude] = np.pad(
                a, ((extrude, extrude), (extrude, extrude), (0, 0)), mode="edge")
        else:
            sheet[p.y:p.y + p.h, p.x:p.x + p.w] = a
    return sheet
