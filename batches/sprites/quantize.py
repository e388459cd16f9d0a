"""Colours: fold the noise of fake pixel art into the colours the artist meant, and reduce a
sprite (or a whole batch) to K colours that keep both the large areas and the small accents."""
from __future__ import annotations

import numpy as np

from batches.sprites.palettes import nearest, oklab, pack_rgb, unpack_rgb

MERGE_RADIUS = 0.04      # OKLab: noise and JPEG shifts stay inside it; drawn colours lie further apart
MAX_AGGLOMERATE = 256    # colours going into the pairwise merge (its matrix is n x n)
WEIGHT_POWER = 0.3       # how much a colour's area protects it from being merged (0: not at all)


def unique_colors(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct colours of an (h, w, 3) image (where `mask`), their pixel counts and, for each
    pixel of rgb[mask], the index of its colour."""
    pixels = rgb[mask] if mask is not None else rgb.reshape(-1, 3)
    keys, inverse, counts = np.unique(pack_rgb(pixels), return_inverse=True, return_counts=True)
    return unpack_rgb(keys), counts, inverse.ravel()


def merge_near(rgb: np.ndarray, mask: np.ndarray, *, radius: float = MERGE_RADIUS) -> np.ndarray:
    """The image with each colour (where `mask`) replaced by the mean of its cluster of near-equal
    colours: clusters grow around the densest remaining colour, one cluster per loop."""
    if not mask.any():
        return rgb
    colors, counts, inverse = unique_colors(rgb, mask)
    centres = cluster_centres(colors, counts.astype(float), radius=radius)
    nearest_centre, _ = nearest(oklab(colors), oklab(centres))
    # One averaging step over the final assignment: the centre is its members' weighted mean.
    weights = np.bincount(nearest_centre, weights=counts, minlength=len(centres))
    means = np.stack([np.bincount(nearest_centre, weights=counts * colors[:, c], minlength=len(centres))
                      for c in range(3)], axis=1) / np.maximum(weights, 1)[:, None]
    out = rgb.copy()
    out[mask] = np.rint(means).astype(np.uint8)[nearest_centre][inverse]
    return out


def cluster_centres(colors: np.ndarray, weights: np.ndarray, *, radius: float) -> np.ndarray:
    lab = oklab(colors)
    # Density seeds: 5-bit colour bins, heaviest first, so a noisy outlier never seeds a cluster.
    bins = np.unique(pack_rgb(colors >> 3), return_inverse=True)[1].ravel()
    remaining = np.ones(len(colors), bool)
    centres = []
    while remaining.any():
        mass = np.bincount(bins[remaining], weights=weights[remaining], minlength=bins.max() + 1)
        seed = remaining & (bins == mass.argmax())
        centre = np.average(lab[seed], axis=0, weights=weights[seed])
        for _ in range(2):
            near = remaining & (np.linalg.norm(lab - centre, axis=1) < radius)
            if not near.any():
                near = seed
            centre = np.average(lab[near], axis=0, weights=weights[near])
        best = near.nonzero()[0][np.argmax(weights[near])]
        centres.append(colors[best])
        remaining &= ~near
    return np.array(centres, np.uint8)


def reduce_colors(colors: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """At most k of the given colours (uint8 (n, 3), with pixel counts), most common first.

    Agglomerative: the closest pair in OKLab merges, its heavier colour standing for both (so the
    palette holds colours that were drawn, not averages). Closeness is damped only a little by
    area, so a 1-pixel eye far from every other colour outlives two shades of a large area.
    """
    colors = np.asarray(colors, np.uint8).reshape(-1, 3)
    weights = np.asarray(weights, float).copy()
    if len(colors) > MAX_AGGLOMERATE:
        colors, weights = _premerge(colors, weights)
    lab = oklab(colors)
    n = len(colors)
    alive = np.ones(n, bool)
    d2 = ((lab[:, None, :] - lab[None, :, :]) ** 2).sum(-1)
    cost = _costs(d2, weights)
    while alive.sum() > k:
        i, j = np.unravel_index(np.argmin(cost), cost.shape)
        keep, drop = (i, j) if (weights[i], -i) >= (weights[j], -j) else (j, i)
        weights[keep] += weights[drop]
        alive[drop] = False
        cost[drop, :] = cost[:, drop] = np.inf
        row = d2[keep] * _pair_weight(weights[keep], weights)
        row[~alive] = np.inf
        row[keep] = np.inf
        cost[keep, :] = cost[:, keep] = row
    order = np.lexsort((pack_rgb(colors[alive]), -weights[alive]))
    return colors[alive][order]


def _pair_weight(wa, wb):
    return (wa * wb / (wa + wb)) ** WEIGHT_POWER


def _costs(d2: np.ndarray, weights: np.ndarray) -> np.ndarray:
    cost = d2 * _pair_weight(weights[:, None], weights[None, :])
    np.fill_diagonal(cost, np.inf)
    return cost


def _premerge(colors: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Too many colours for the pairwise merge: cluster with a growing radius until few enough."""
    radius = MERGE_RADIUS
    while True:
        centres = cluster_centres(colors, weights, radius=radius)
        if len(centres) <= MAX_AGGLOMERATE:
            break
        radius *= 1.5
    nearest_centre, _ = nearest(oklab(colors), oklab(centres))
    return centres, np.bincount(nearest_centre, weights=weights, minlength=len(centres))
