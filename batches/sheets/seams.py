"""How visible the seams of a repeating tile are.

Laid side by side, a tile's right column meets its left column and its bottom row meets its top
row. The seam shows when the step across it is larger than the steps between neighbouring
pixels inside the tile; a busy texture has large steps everywhere and is not penalised for them.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from batches.sheets.errors import SheetError
from batches.sprites.palettes import oklab

JND = 0.02       # OKLab distance of a just noticeable colour step: the smallest step a seam is measured against
QUANTILE = 0.9   # of the tile's own line-to-line steps: a pattern's regular edges (a checker) are not seams


def seam_score(tile: Image.Image) -> float:
    """0 for a seamless tile; higher is worse (1: the step across the seam is twice the tile's own
    large steps, or one just noticeable step more on a flat tile).

    Pixels are compared as d(p, q) = min(alpha_p, alpha_q) * |OKLab(p) - OKLab(q)| + |alpha_p - alpha_q|
    (alpha in 0..1; OKLab Euclidean, 0.02 about just noticeable). For each axis (x: columns,
    y: rows), with L lines (columns for x) and steps between neighbouring lines:

        seam     = mean of d(last line, first line)              (what tiling puts side by side)
        step_k   = mean of d(line k, line k + 1), k = 0 .. L - 2  (the tile's own steps)
        inside   = the 90th percentile of step_k
        score_ax = max(0, seam - inside) / max(inside, 0.02)

    score = max(score_x, score_y). The percentile, not the mean, is the reference so that a
    pattern's regular edges (a checker, hard stripes) do not count against a seam that falls on
    one of them, while a single odd line (a recoloured edge) stays above it. A flat tile scores
    0, a tile that repeats periodically about 0, a gradient or a recoloured edge well above. It
    measures colour discontinuity only: a smooth pattern cut mid-period scores low."""
    if not isinstance(tile, Image.Image):
        raise SheetError(f"tile: {type(tile).__name__}: give a PIL image")
    if tile.width < 2 or tile.height < 2:
        raise SheetError(f"tile: {tile.width}x{tile.height}: a tile needs at least 2x2 pixels to have seams")
    rgba = np.asarray(tile.convert("RGBA"))
    lab = oklab(rgba[..., :3])
    alpha = rgba[..., 3].astype(np.float64) / 255.0
    scores = []
    for axis in (1, 0):   # across the vertical seam (columns), then across the horizontal one (rows)
        first, last = np.take(lab, [0], axis), np.take(lab, [-1], axis)
        a_first, a_last = np.take(alpha, [0], axis), np.take(alpha, [-1], axis)
        seam = _step(first, last, a_first, a_last).mean()
        n = lab.shape[axis]
        steps = _step(np.take(lab, range(n - 1), axis), np.take(lab, range(1, n), axis),
                      np.take(alpha, range(n - 1), axis), np.take(alpha, range(1, n), axis))
        inside = float(np.quantile(steps.mean(axis=1 - axis), QUANTILE))
        scores.append(max(0.0, seam - inside) / max(inside, JND))
    return float(max(scores))


def _step(lab_p, lab_q, a_p, a_q) -> np.ndarray:
    return np.minimum(a_p, a_q) * np.linalg.norm(lab_p - lab_q, axis=-1) + np.abs(a_p - a_q)
