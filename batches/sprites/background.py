"""Background removal without a neural network: the background touches the border, so flood-fill
from the edges through background-coloured pixels; a region of the same colour enclosed by the
sprite is not reached and stays. Plus the optional 1-pixel outline."""
from __future__ import annotations

import numpy as np

from batches.sprites.palettes import oklab, pack_rgb, unpack_rgb

TOLERANCE = 0.06      # OKLab distance from a background colour that still counts as background
BORDER_SHARE = 0.10   # a border colour this common is a background colour too (two-tone backdrops)
MIN_BACKGROUND_SHARE = 0.5  # of the border the background colours cover, or there is no background


def border_connected(passable: np.ndarray) -> np.ndarray:
    """The pixels of `passable` (h, w bool) joined to the image border through `passable` (4-way).

    Flooding whole runs at once, alternately along rows and columns, until nothing changes: a
    handful of passes for any sprite, each a few vectorised operations.
    """
    reached = np.zeros_like(passable)
    reached[0, :], reached[-1, :], reached[:, 0], reached[:, -1] = (
        passable[0, :], passable[-1, :], passable[:, 0], passable[:, -1])
    while True:
        before = int(reached.sum())
        reached = _flood_runs(passable, reached)
        reached = _flood_runs(passable.T, reached.T).T
        if int(reached.sum()) == before:
            return reached


def _flood_runs(passable: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """Along each row: every run of passable pixels with one reached pixel is reached."""
    h, w = passable.shape
    padded = np.zeros((h, w + 1), bool)   # a blocked column between rows: runs never wrap
    padded[:, :w] = passable
    flat = padded.ravel()
    starts = flat & ~np.concatenate(([False], flat[:-1]))
    run = np.cumsum(starts) * flat
    seeds = np.zeros((h, w + 1), bool)
    seeds[:, :w] = reached
    hit = np.zeros(int(run.max()) + 1, bool)
    hit[run[seeds.ravel()]] = True
    hit[0] = False
    return hit[run].reshape(h, w + 1)[:, :w]


def background_mask(rgba: np.ndarray, mode: str | tuple[int, int, int]) -> np.ndarray:
    """Where the background is (h, w bool): 'keep' none; 'auto' the border's own colours (or the
    transparency the image already has); (r, g, b) that colour, where joined to the border."""
    transparent = rgba[..., 3] < 128
    if mode == "keep":
        return transparent
    if mode == "auto":
        if transparent.any():
            return transparent
        colors = _border_colors(rgba[..., :3])
        if colors is None:
            return transparent
    else:
        colors = np.array([mode], np.uint8)
    return border_connected(_background_like(rgba[..., :3], colors) | transparent) | transparent


def _background_like(rgb: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Pixels near one of the background colours: the ones the flood may cross."""
    keys, inverse = np.unique(pack_rgb(rgb).ravel(), return_inverse=True)
    lab = oklab(unpack_rgb(keys))
    near = np.linalg.norm(lab[:, None, :] - oklab(targets)[None, :, :], axis=-1).min(1) < TOLERANCE
    return near[inverse.ravel()].reshape(rgb.shape[:2])


def _border_colors(rgb: np.ndarray) -> np.ndarray | None:
    """The background's colours: the border's commonest, and any other on a good share of it.
    None when they cover less than half the border: art that fills the canvas has no background."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])
    keys, counts = np.unique(pack_rgb(border), return_counts=True)
    keep = counts >= BORDER_SHARE * len(border)
    keep[counts.argmax()] = True
    if counts[keep].sum() < MIN_BACKGROUND_SHARE * len(border):
        return None
    return unpack_rgb(keys[keep])


def add_outline(rgba: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """A 1-pixel outline (4-way) of `color` around the opaque content, the image grown by 1 on
    each side. Content already outlined in that colour gets no second ring."""
    padded = np.pad(rgba, ((1, 1), (1, 1), (0, 0)))
    opaque = padded[..., 3] > 0
    source = opaque & ~(padded[..., :3] == np.array(color, np.uint8)).all(-1)
    grown = np.zeros_like(source)
    grown[1:, :] |= source[:-1, :]
    grown[:-1, :] |= source[1:, :]
    grown[:, 1:] |= source[:, :-1]
    grown[:, :-1] |= source[:, 1:]
    ring = grown & ~opaque
    padded[ring] = (*color, 255)
    return padded
