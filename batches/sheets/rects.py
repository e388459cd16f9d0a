"""Rectangle packing: where each (w, h) box goes in a bin of a given width, no box overlapping
another. Pure geometry; packing.py turns it into a sheet.

MaxRects (Jylänki, "A Thousand Ways to Pack the Bin", 2010) keeps every maximal free rectangle
and puts each box where it leaves the shortest leftover side (best short side fit). The free
rectangles live in one NumPy array, so scoring, splitting and pruning are whole-array steps, not
a Python loop over the free list. Shelf packing fills rows left to right, tallest boxes first.

Both pack into a bin `width` wide and tall enough for anything (the sum of the heights); the
caller reads the height used and tries a few widths.
"""
from __future__ import annotations

import numpy as np

def order(sizes: np.ndarray) -> np.ndarray:
    """The packing order: tallest first, then widest (stable, so equal boxes keep their order)."""
    return np.lexsort((-sizes[:, 0], -sizes[:, 1]))


def maxrects(sizes: np.ndarray, width: int) -> np.ndarray | None:
    """Top-left (x, y) of each box (sizes: (n, 2) of w, h), or None if a box is wider than the bin."""
    n = len(sizes)
    if n == 0:
        return np.zeros((0, 2), np.int64)
    if int(sizes[:, 0].max()) > width:
        return None
    height = int(sizes[:, 1].sum())
    free = np.array([[0, 0, width, height]], np.int64)
    out = np.zeros((n, 2), np.int64)
    for i in order(sizes):
        w, h = int(sizes[i, 0]), int(sizes[i, 1])
        fits = (free[:, 2] >= w) & (free[:, 3] >= h)
        if not fits.any():  # cannot happen: the bin is as tall as all the boxes together
            return None
        idx = np.flatnonzero(fits)
        cand = free[idx]
        left_w, left_h = cand[:, 2] - w, cand[:, 3] - h
        # Best short side, then best long side, then the topmost and leftmost: it keeps the sheet short.
        best = cand[np.lexsort((cand[:, 0], cand[:, 1], np.maximum(left_w, left_h), np.minimum(left_w, left_h)))[0]]
        x, y = int(best[0]), int(best[1])
        out[i] = x, y
        free = _split(free, x, y, w, h)
    return out


def _split(free: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The free rectangles once (x, y, w, h) is taken: each one it cuts becomes up to four
    maximal pieces; pieces inside another free rectangle are dropped."""
    fx, fy, fw, fh = free[:, 0], free[:, 1], free[:, 2], free[:, 3]
    hit = (fx < x + w) & (fx + fw > x) & (fy < y + h) & (fy + fh > y)
    if not hit.any():
        return free
    keep, cut = free[~hit], free[hit]
    cx, cy, cw, ch = cut[:, 0], cut[:, 1], cut[:, 2], cut[:, 3]
    right, bottom = cx + cw, cy + ch
    pieces = np.concatenate([
        np.stack([cx, cy, x - cx, ch], 1)[x > cx],                                  # left of the box
        np.stack([np.full_like(cx, x + w), cy, right - (x + w), ch], 1)[x + w < right],  # right
        np.stack([cx, cy, cw, y - cy], 1)[y > cy],                                  # above
        np.stack([cx, np.full_like(cy, y + h), cw, bottom - (y + h)], 1)[y + h < bottom],  # below
    ])
    if len(pieces) == 0:
        return keep
    # A kept rectangle cannot lie inside a new piece (each piece lies inside a cut rectangle, and
    # no free rectangle lay inside another), so only the pieces need checking.
    inside_kept = _contained(pieces, keep).any(1) if len(keep) else np.zeros(len(pieces), bool)
    among = _contained(pieces, pieces)
    same = (pieces[:, None, :] == pieces[None, :, :]).all(2)
    # Inside another piece; of identical pieces the first one stays.
    earlier = np.tri(len(pieces), k=-1, dtype=bool)
    inside_piece = (among & (~same | earlier)).any(1)
    return np.concatenate([keep, pieces[~(inside_kept | inside_piece)]])


def _contained(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): a[i] lies inside b[j]."""
    ax, ay, ar, ab = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx, by, br, bb = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    return (ax >= bx) & (ay >= by) & (ar <= br) & (ab <= bb)


def shelf(sizes: np.ndarray, width: int) -> np.ndarray | None:
    """Top-left (x, y) of each box: rows left to right, tallest first; None if a box is too wide."""
    n = len(sizes)
    if n == 0:
        return np.zeros((0, 2), np.int64)
    if int(sizes[:, 0].max()) > width:
        return None
    out = np.zeros((n, 2), np.int64)
    x = y = row_h = 0
    for i in order(sizes):
        w, h = int(sizes[i, 0]), int(sizes[i, 1])
        if x + w > width:
            x, y, row_h = 0, y + row_h, 0
        out[i] = x, y
        x += w
        row_h = max(row_h, h)
    return out
