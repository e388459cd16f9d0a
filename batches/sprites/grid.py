"""Find the art-pixel grid of fake pixel art and resample each cell to one pixel.

A diffusion model draws an art pixel as a soft block of about s x s screen pixels, s not a whole
number and the grid not starting at 0. Colour edges therefore fall on x0 + k*s: summed over the
rows, the edge strength between neighbouring columns is a comb with period s. Its Fourier
transform (zero-padded, so periods are sampled finely) peaks at 1/s and the peak's angle gives
x0; rows and columns share s (art pixels are square) and each has its own phase. Blur and noise
only lower the comb's coherence; a photo or noise has none.

An image with at most 256 colours (a clean upscale, soft edges without noise, or a finished
sprite) must also have its colour steps on the grid's boundaries, not inside the cells: a grid
imagined on a finished sprite fails that, and the sprite is its own grid (pixel size 1), so
finishing a finished sprite changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batches.sprites.errors import NoGridError

MIN_CELLS = 8            # the art is at least 8 art pixels across
MIN_COHERENCE = 0.26     # grid contrast below it: the edges do not line up on any grid
MIN_EDGE_SHARE = 0.005   # of the edge profile standing out from its noise, or there are no edges
CANDIDATES = 10          # Fourier peaks whose grids are scored
EDGE_HALF_WIDTH = 1.5    # screen px either side of a boundary that count as on it
HARMONIC_TIE = 0.9       # a period this close to the best one and k times longer wins (perfect combs)
CLEAN_COLORS = 256
MAX_STEPS_INSIDE = 0.1   # share of a clean image's colour steps that may lie inside its cells
SAMPLE_TOLERANCE = 28    # max channel difference of samples that count as one colour in a cell
JPEG_BLOCK = 8           # JPEG's block size; its seams form a comb of their own
JPEG_RATIO = 1.5         # seams this much stronger than other boundaries: the image went through JPEG
PROFILE_STEP = 4         # edge profiles from every 4th line: the edges run through the whole image


@dataclass(frozen=True)
class Grid:
    size_x: float
    size_y: float
    phase_x: float = 0.0
    phase_y: float = 0.0
    coherence: float = 1.0

    def centres(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres (screen px) along x and y: every cell whose centre lies inside the image."""
        return _centres(width, self.size_x, self.phase_x), _centres(height, self.size_y, self.phase_y)


def _centres(n_px: int, size: float, phase: float) -> np.ndarray:
    first = (phase + size / 2) % size
    count = max(1, int(np.ceil((n_px - first) / size)))
    return first + size * np.arange(count)


def is_clean(rgba: np.ndarray) -> bool:
    """At most CLEAN_COLORS colours: drawn pixel for pixel, no blur, noise or JPEG."""
    # Subsamples: noise shows in a few thousand pixels, and a full count of a 1024 x 1024
    # image costs more than the rest of finishing.
    for step in (7, 3) if rgba.shape[0] * rgba.shape[1] > 65536 else (1,):
        if np.unique(pack_rgba(rgba[::step, ::step])).size > CLEAN_COLORS:
            return False
    return True


def pack_rgba(rgba: np.ndarray) -> np.ndarray:
    v = rgba.astype(np.uint32)
    return (v[..., 0] << 24) | (v[..., 1] << 16) | (v[..., 2] << 8) | v[..., 3]


def detect_grid(rgba: np.ndarray, *, pixel_size: float | None = None, clean: bool | None = None) -> Grid:
    """The grid of an (h, w, 4) uint8 image; `pixel_size` fixes s and only the phase is found."""
    clean = is_clean(rgba) if clean is None else clean
    if pixel_size is not None:
        if pixel_size <= 1:
            return Grid(1.0, 1.0)
        ex, ey = (_above_floor(e) for e in _profiles(rgba))
        px, py = _phase(ex, 1 / pixel_size), _phase(ey, 1 / pixel_size)
        return Grid(float(pixel_size), float(pixel_size), px, py)
    return _detect_clean(rgba) if clean else _detect_spectral(rgba)


def _profiles(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength between neighbouring columns and rows, summed over every PROFILE_STEP-th
    line and the four channels."""
    rgba = np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    step = PROFILE_STEP if min(h, w) >= 64 * PROFILE_STEP else 1
    # Contiguous uint8 views all the way (a strided or widened copy costs ten times as much).
    rows = rgba[::step]
    ex = _absdiff(rows[:, 1:], rows[:, :-1]).reshape(len(rows), -1).sum(0, dtype=np.uint32)
    ex = ex.reshape(w - 1, 4).sum(1).astype(float)
    cols = np.ascontiguousarray(rgba.view(np.uint32)[:, ::step, 0]).view(np.uint8).reshape(h, -1)
    ey = _absdiff(cols[1:], cols[:-1]).sum(1, dtype=np.uint32).astype(float)
    return ex, ey


def _above_floor(e: np.ndarray, spread: float = 0.0) -> np.ndarray:
    """The profile less its floor (the median: noise and texture), plus `spread` robust standard
    deviations of it."""
    if e.size == 0:
        return e
    median = np.median(e)
    mad = 1.4826 * np.median(np.abs(e - median))
    return np.maximum(e - median - spread * mad, 0)


def _absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| of uint8 arrays without widening them (a quarter of the memory traffic)."""
    out = np.maximum(a, b)
    out -= np.minimum(a, b)
    return out


def _dtft(e: np.ndarray, nus: np.ndarray) -> np.ndarray:
    if e.size == 0:
        return np.zeros(len(nus), dtype=complex)
    i = np.arange(e.size)
    return (np.exp(-2j * np.pi * np.outer(nus, i)) * e).sum(1)  # not `@`: see palettes._mat3


def _phase(e: np.ndarray, nu: float) -> float:
    """Where the first boundary lies (screen px, in [0, 1/nu)): profile index i is the boundary i+1."""
    z = _dtft(e, np.array([nu]))[0]
    if abs(z) < 1e-9:
        return 0.0
    return float((1 - np.angle(z) / (2 * np.pi * nu)) % (1 / nu))


def _detect_spectral(rgba: np.ndarray) -> Grid:
    raw = _profiles(rgba)
    # Noise alone has no edges that stand out from it (its strongest are ~0.01 % of the profile
    # above 3 robust deviations; the sparsest art in the tests has 2 %).
    mass = sum(float(e.sum()) for e in raw)
    if mass <= 0 or sum(float(_above_floor(e, 3).sum()) for e in raw) < MIN_EDGE_SHARE * mass:
        raise NoGridError(_no_grid("it has no edges that stand out from its noise"))
    ex, ey = (_above_floor(e) for e in raw)
    if _blocky(ex, ey):
        try:
            return _detect_in(rgba.shape, _deblock(ex), _deblock(ey))
        except NoGridError:
            pass  # a hard-edged grid of 8, 16, 24... px aligned at 0 is the JPEG grid: it stands
    return _detect_in(rgba.shape, ex, ey)


def _blocky(ex: np.ndarray, ey: np.ndarray) -> bool:
    """JPEG's 8x8 blocks: edges at every 8th boundary from 0, far above the rest."""
    e = np.concatenate([ex, ey])
    on = (np.concatenate([np.arange(1, ex.size + 1), np.arange(1, ey.size + 1)]) % JPEG_BLOCK) == 0
    return bool(on.any() and e[on].mean() > JPEG_RATIO * max(e[~on].mean(), 1e-9))


def _deblock(e: np.ndarray) -> np.ndarray:
    """The profile less JPEG's periodic pattern: per position within the 8-px block, the median
    strength (block seams and their ringing, present everywhere) comes off; the sparse, strong
    edges of the art stay."""
    blocks = e.size // JPEG_BLOCK
    if blocks < 4:
        return e
    pattern = np.median(e[:blocks * JPEG_BLOCK].reshape(blocks, JPEG_BLOCK), axis=0)
    pattern -= pattern.min()
    return np.maximum(e - np.resize(pattern, e.size), 0)


def _detect_in(shape: tuple, ex: np.ndarray, ey: np.ndarray) -> Grid:
    h, w = shape[:2]
    total = ex.sum() + ey.sum()
    s_max = min(w, h) / MIN_CELLS
    if total <= 0 or s_max < 2:
        raise NoGridError(_no_grid("it has no edges"))
    n_fft = 1 << int(np.ceil(np.log2(8 * max(w, h))))
    coherence = np.abs(np.fft.rfft(ex, n_fft)) + np.abs(np.fft.rfft(ey, n_fft))
    lo, hi = int(np.ceil(n_fft / s_max)), n_fft // 2
    band = coherence[lo - 1:hi + 2]
    peaks = lo + np.flatnonzero((band[1:-1] >= band[:-2]) & (band[1:-1] > band[2:]))
    peaks = peaks[np.argsort(-coherence[peaks], kind="stable")[:CANDIDATES]]
    grids = []
    for k in peaks:
        nu = _refine(coherence, k) / n_fft
        s = 1 / nu
        px, py = _phase(ex, nu), _phase(ey, nu)
        grids.append(Grid(s, s, px, py, _contrast(ex, ey, s, px, py)))
    if not grids:
        raise NoGridError(_no_grid("it has no edges"))
    best = max(grids, key=lambda g: g.coherence)
    # A perfect comb (whole-number s, hard edges) is as good at s/2, s/3...: take the longest
    # period that is as good and a whole multiple of the best one.
    for g in sorted(grids, key=lambda g: -g.size_x):
        n = round(g.size_x / best.size_x)
        if n >= 1 and abs(g.size_x / best.size_x - n) < 0.02 * n and g.coherence >= HARMONIC_TIE * best.coherence:
            best = g
            break
    if best.coherence < MIN_COHERENCE:
        raise NoGridError(_no_grid(f"its edges do not line up on a grid (score {best.coherence:.2f})"))
    return best


def _contrast(ex: np.ndarray, ey: np.ndarray, s: float, px: float, py: float) -> float:
    """How much of the edge strength lies on the grid's boundaries rather than between them: 1 for
    edges only on boundaries, about 0 for edges anywhere (a smooth envelope, noise), below 0 for
    edges between them. Unlike the Fourier peak, it tells a grid from the sprite's outline."""
    half = min(EDGE_HALF_WIDTH, 0.3 * s)  # the same for every s, or longer periods would win
    off = -2 * half / (s - 2 * half)
    score = 0.0
    for e, phase in ((ex, px), (ey, py)):
        r = (np.arange(1, e.size + 1) - phase) % s
        near = np.minimum(r, s - r) <= half
        score += float(np.where(near, e, off * e).sum())
    return score / float(ex.sum() + ey.sum())


def _refine(spectrum: np.ndarray, k: int) -> float:
    """The peak's position in FFT bins, between bins: a parabola through the log magnitudes (the
    spectrum is 8x zero-padded, so the peak spans several bins and the parabola fits it well)."""
    if not 0 < k < spectrum.size - 1:
        return float(k)
    a, b, c = np.log(np.maximum(spectrum[k - 1:k + 2], 1e-12))
    denom = a - 2 * b + c
    return float(k + (0.5 * (a - c) / denom if denom < 0 else 0.0))


def _detect_clean(rgba: np.ndarray) -> Grid:
    """A clean image: a grid on whose boundaries every colour step lies (a whole-number one from
    the runs between steps, else the Fourier one); else it is its own grid (a finished sprite)."""
    packed = pack_rgba(rgba)
    bx = np.flatnonzero((packed[:, 1:] != packed[:, :-1]).any(axis=0)) + 1
    by = np.flatnonzero((packed[1:, :] != packed[:-1, :]).any(axis=1)) + 1
    if bx.size == 0 and by.size == 0:
        raise NoGridError(_no_grid("it is a single colour"))
    runs = np.concatenate([np.diff(bx), np.diff(by)])
    if runs.size and runs.min() > 1:
        g = int(np.gcd.reduce(runs))
        if g >= 2:
            grid = Grid(float(g), float(g), float(bx[0] % g) if bx.size else 0.0,
                        float(by[0] % g) if by.size else 0.0)
            if _jumps_on_boundaries(rgba, grid):
                return grid
    try:
        grid = _detect_spectral(rgba)
    except NoGridError:
        return Grid(1.0, 1.0)
    return grid if _jumps_on_boundaries(rgba, grid) else Grid(1.0, 1.0)


def _jumps_on_boundaries(rgba: np.ndarray, grid: Grid) -> bool:
    """The big steps between neighbouring pixels lie near the grid's boundaries, (almost) none
    in the cells' central halves; an imagined grid on a finished sprite has half of them there."""
    steps = []
    for axis, (size, phase) in enumerate(((grid.size_x, grid.phase_x), (grid.size_y, grid.phase_y))):
        a, b = (rgba[:, 1:], rgba[:, :-1]) if axis == 0 else (rgba[1:], rgba[:-1])
        count = (_absdiff(a, b).max(-1) > SAMPLE_TOLERANCE).sum(axis=axis)  # per column, per row
        r = (np.arange(1, count.size + 1) - phase) % size
        inside = np.minimum(r, size - r) >= 0.25 * size
        steps.append((count[inside].sum(), count.sum()))
    inside, total = (sum(v) for v in zip(*steps))
    return inside <= MAX_STEPS_INSIDE * total


def _cell_index(n_px: int, centres: np.ndarray, size: float) -> np.ndarray:
    j = np.floor((np.arange(n_px) + 0.5 - (centres[0] - size / 2)) / size).astype(int)
    return np.clip(j, 0, len(centres) - 1)


def grid_for_size(width: int, height: int, size: tuple[int, int]) -> Grid:
    """The grid that downscales the whole image to exactly `size` (w, h) art pixels."""
    return Grid(width / size[0], height / size[1], 0.0, 0.0)


def resample(rgba: np.ndarray, grid: Grid) -> np.ndarray:
    """One pixel per cell: the cell's dominant colour.

    A few samples from the cell's central region (clear of the blurred edges); the sample that
    most others are close to wins, and the samples close to it are averaged. That is a mode, not a
    mean of the cell, so no in-between colour appears.
    """
    h, w = rgba.shape[:2]
    cx, cy = grid.centres(w, h)
    m = int(np.clip(min(grid.size_x, grid.size_y) // 3, 1, 3))
    if m == 1:
        return rgba[np.clip(cy.astype(int), 0, h - 1)][:, np.clip(cx.astype(int), 0, w - 1)].copy()
    spread = np.linspace(-0.22, 0.22, m)
    xs = np.clip(np.floor(cx[:, None] + spread[None, :] * grid.size_x).astype(int), 0, w - 1)  # (nx, m)
    ys = np.clip(np.floor(cy[:, None] + spread[None, :] * grid.size_y).astype(int), 0, h - 1)  # (ny, m)
    ny, nx, k = len(cy), len(cx), m * m
    samples = rgba[ys.reshape(-1)][:, xs.reshape(-1)]  # (ny*m, nx*m, 4)
    samples = samples.reshape(ny, m, nx, m, 4).transpose(0, 2, 1, 3, 4).reshape(ny * nx, k, 4)
    # Pairwise "same colour" among a cell's k samples, one channel at a time (no 4-D temporary).
    far = None
    for c in range(4 if (samples[..., 3] < 255).any() else 3):
        ch = samples[:, :, c].astype(np.int16)
        d = ch[:, :, None] - ch[:, None, :]
        np.abs(d, out=d)
        far = d if far is None else np.maximum(far, d, out=far)
    close = far <= SAMPLE_TOLERANCE
    best = close.sum(-1, dtype=np.int8).argmax(-1)
    members = close[np.arange(ny * nx), best].astype(np.float32)  # (cells, k)
    total = np.einsum("nk,nkc->nc", members, samples.astype(np.float32))
    out = np.rint(total / members.sum(-1, keepdims=True)).astype(np.uint8)
    return out.reshape(ny, nx, 4)


def _no_grid(why: str) -> str:
    return (f"no pixel grid found: {why}; give the sprite size (--size WxH, e.g. --size 48x48) "
            f"or the art-pixel size (--pixel-size N)")
