"""Test sprites and tiles with known pixels, for the sheets library's tests and benchmark.

`sprite` draws a w x h RGBA image: a content box inset by a margin (so trimming has something to
cut), filled with colours from a small random palette, a few transparent holes inside; every
transparent pixel is (0, 0, 0, 0), so pixel-exact comparisons need no masking. `wrapped_noise`
is a tile that repeats without seams (smoothed noise made periodic through the FFT).
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def sprite(seed: int, w: int, h: int, *, margin: tuple[int, int, int, int] = (0, 0, 0, 0),
           colors: int = 6) -> Image.Image:
    """margin: transparent (left, top, right, bottom) around the content box."""
    rng = np.random.default_rng(seed)
    left, top, right, bottom = margin
    cw, ch = w - left - right, h - top - bottom
    assert cw >= 1 and ch >= 1, "the margin leaves no content"
    palette = rng.integers(0, 256, (colors, 3), dtype=np.uint8)
    out = np.zeros((h, w, 4), np.uint8)
    content = np.dstack([palette[rng.integers(0, colors, (ch, cw))], np.full((ch, cw), 255, np.uint8)])
    if cw > 2 and ch > 2:  # holes inside, never on the content box's edge (it stays the trim box)
        holes = rng.random((ch - 2, cw - 2)) < 0.1
        content[1:-1, 1:-1][holes] = 0
    out[top:top + ch, left:left + cw] = content
    return Image.fromarray(out, "RGBA")


def random_sprite(seed: int, *, low: int = 8, high: int = 48) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A sprite of random size and random transparent margins; returns it and its margin."""
    rng = np.random.default_rng(seed + 10_000)
    w, h = (int(v) for v in rng.integers(low, high + 1, 2))
    margin = tuple(int(v) for v in rng.integers(0, 4, 4)) if rng.random() < 0.6 else (0, 0, 0, 0)
    if margin[0] + margin[2] >= w or margin[1] + margin[3] >= h:
        margin = (0, 0, 0, 0)
    return sprite(seed, w, h, margin=margin), margin


def wrapped_noise(seed: int, size: int = 32, sigma: float = 2.0, contrast: float = 40.0) -> np.ndarray:
    """(size, size, 3) float RGB noise, smoothed by `sigma` px and periodic: it tiles seamlessly."""
    rng = np.random.default_rng(seed)
    ky, kx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    blur = np.exp(-(kx ** 2 + ky ** 2) * (2 * np.pi * sigma) ** 2 / 2)
    channels = []
    for _ in range(3):
        x = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * blur))
        channels.append(128 + contrast * (x - x.mean()) / x.std())
    return np.stack(channels, -1)


def rgb(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGB")
