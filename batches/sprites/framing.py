"""Framing: crop a sprite to its opaque content, or pad it into a fixed cell anchored at the feet
(bottom-centre), so that frames of an animation do not jump."""
from __future__ import annotations

import numpy as np

from batches.sprites.errors import SpriteError


def content_box(rgba: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the opaque pixels, right/bottom exclusive; None if none."""
    opaque = rgba[..., 3] > 0
    cols, rows = np.flatnonzero(opaque.any(0)), np.flatnonzero(opaque.any(1))
    if cols.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


NOTHING_LEFT = ("nothing is left once the background is removed: use background 'keep' (--background keep) "
                "or give the background colour (--background #rrggbb)")


def trim(rgba: np.ndarray) -> np.ndarray:
    box = content_box(rgba)
    if box is None:
        raise SpriteError(NOTHING_LEFT)
    left, top, right, bottom = box
    return rgba[top:bottom, left:right]


def place_in_cell(rgba: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
    """The sprite in a transparent cell (w, h): centred across, standing on the bottom edge."""
    h, w = rgba.shape[:2]
    cw, ch = cell
    if w > cw or h > ch:
        raise SpriteError(f"cell: the sprite is {w}x{h} pixels, larger than the {cw}x{ch} cell: "
                          f"give a cell of at least {max(w, cw)}x{max(h, ch)} (--cell)")
    out = np.zeros((ch, cw, 4), np.uint8)
    left = (cw - w) // 2
    out[ch - h:, left:left + w] = rgba
    return out
