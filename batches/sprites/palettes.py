"""Palettes: the shipped ones in palettes/, Lospec .hex and GIMP .gpl files, OKLab distance and
mapping a sprite's colours onto a palette (nearest in OKLab, optionally ordered dithering)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from batches.sprites.errors import PaletteError, SpriteError

PALETTE_DIR = Path(__file__).resolve().parents[2] / "palettes"
PALETTE_SUFFIXES = (".hex", ".gpl")
MAX_PALETTE_COLORS = 256
MAX_PALETTE_FILE_BYTES = 64 * 1024

Color = tuple[int, int, int]

_HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{6})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# sRGB -> linear light, one entry per 8-bit level (the conversion runs on whole images).
_LEVELS = np.arange(256) / 255.0
_LINEAR = np.where(_LEVELS <= 0.04045, _LEVELS / 12.92, ((_LEVELS + 0.055) / 1.055) ** 2.4)
_M1 = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                [0.2119034982, 0.6806995451, 0.1073969566],
                [0.0883024619, 0.2817188376, 0.6299787005]])
_M2 = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                [1.9779984951, -2.4285922050, 0.4505937099],
                [0.0259040371, 0.7827717662, -0.8086757660]])


def oklab(rgb: np.ndarray) -> np.ndarray:
    """OKLab (float, shape (..., 3)) of 8-bit sRGB colours (shape (..., 3))."""
    linear = _LINEAR[np.asarray(rgb, dtype=np.uint8)]
    return _mat3(np.cbrt(_mat3(linear, _M1)), _M2)


def _mat3(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    # Written out rather than `x @ m.T`: a multi-threaded BLAS spins up threads for this and, on
    # a busy worker, costs several times the arithmetic.
    return x[..., 0:1] * m[:, 0] + x[..., 1:2] * m[:, 1] + x[..., 2:3] * m[:, 2]


def oklab_distance(a, b) -> np.ndarray:
    """Perceptual distance between 8-bit sRGB colours: about 0.02 is just noticeable."""
    return np.linalg.norm(oklab(np.asarray(a)) - oklab(np.asarray(b)), axis=-1)


def parse_color(value: str, *, field: str) -> Color:
    """`#rrggbb` as an (r, g, b) tuple; a SpriteError naming `field` otherwise."""
    match = _HEX_COLOR.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise SpriteError(f"{field}: {value!r} is not a colour: give it as #rrggbb, e.g. #1d2b53")
    return hex_to_rgb(match.group(1))


def hex_to_rgb(digits: str) -> Color:
    n = int(digits, 16)
    return (n >> 16) & 255, (n >> 8) & 255, n & 255


def rgb_to_hex(color) -> str:
    r, g, b = (int(c) for c in color[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


# --- reading and writing palette files -----------------------------------------------------


def parse_palette_text(text: str, *, source: str) -> list[Color]:
    """The colours of a Lospec .hex or a GIMP .gpl palette (told apart by the 'GIMP Palette' header)."""
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    colors = _parse_gpl(lines, source) if first == "GIMP Palette" else _parse_hex(lines, source)
    if not colors:
        raise PaletteError(f"{source}: the palette has no colours: give one rrggbb per line (.hex) "
                           f"or 'R G B name' lines after a 'GIMP Palette' header (.gpl)")
    if len(colors) > MAX_PALETTE_COLORS:
        raise PaletteError(f"{source}: {len(colors)} colours, the limit is {MAX_PALETTE_COLORS}: "
                           f"use a smaller palette")
    return colors


def _parse_hex(lines: list[str], source: str) -> list[Color]:
    colors = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        match = _HEX_COLOR.fullmatch(entry)
        if not match:
            raise PaletteError(f"{source}, line {number}: {entry[:40]!r} is not a colour: a .hex palette "
                               f"has one rrggbb per line (e.g. 1d2b53), nothing else")
        colors.append(hex_to_rgb(match.group(1)))
    return colors


def _parse_gpl(lines: list[str], source: str) -> list[Color]:
    colors = []
    header_done = False
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not header_done:
            if entry:
                header_done = True  # the 'GIMP Palette' line
            continue
        if not entry or entry.startswith("#") or re.match(r"(Name|Columns)\s*:", entry):
            continue
        parts = entry.split(None, 3)
        try:
            rgb = tuple(int(p) for p in parts[:3])
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise ValueError
        except ValueError:
            raise PaletteError(f"{source}, line {number}: {entry[:40]!r} is not a colour: a .gpl colour line "
                               f"is 'R G B name' with R, G, B from 0 to 255") from None
        colors.append(rgb)
    return colors


def palette_text(colors, *, fmt: str = "hex", name: str = "palette") -> str:
    """A palette as the text of a Lospec .hex (fmt='hex') or a GIMP .gpl (fmt='gpl') file."""
    if fmt == "hex":
        return "".join(rgb_to_hex(c)[1:] + "\n" for c in colors)
    if fmt == "gpl":
        rows = [f"{int(c[0]):3d} {int(c[1]):3d} {int(c[2]):3d}\t{rgb_to_hex(c)[1:]}" for c in colors]
        return "GIMP Palette\nName: " + " ".join(name.split()) + "\nColumns: 8\n#\n" + "\n".join(rows) + "\n"
    raise ValueError(f"fmt: {fmt!r}: give 'hex' or 'gpl'")


def palette_names() -> list[str]:
    """The palettes shipped in palettes/, by name (the file name without .hex / .gpl)."""
    if not PALETTE_DIR.is_dir():
        return []
    return sorted({p.stem for p in PALETTE_DIR.iterdir() if p.suffix.lower() in PALETTE_SUFFIXES and p.is_file()})


def load_palette(name_or_path: str) -> list[Color]:
    """A shipped palette by name ("pico-8"), or a .hex / .gpl file by path."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise PaletteError(f"palette: give a name ({', '.join(palette_names())}) or the path of a .hex/.gpl file")
    value = name_or_path.strip()
    if _NAME.fullmatch(value) and "/" not in value:
        for suffix in PALETTE_SUFFIXES:
            shipped = PALETTE_DIR / f"{value.lower()}{suffix}"
            if shipped.is_file():
                return _read_palette_file(shipped, source=value)
    path = Path(value).expanduser()
    if path.exists():
        return _read_palette_file(path, source=str(path))
    if path.suffix.lower() in PALETTE_SUFFIXES and path.parent == Path(".") and path.stem.lower() in palette_names():
        return _read_palette_file(PALETTE_DIR / path.name.lower(), source=value)  # "pico-8.hex"
    if path.suffix.lower() in PALETTE_SUFFIXES:
        return _read_palette_file(path, source=str(path))
    raise PaletteError(f"palette: no palette named {value!r}: give one of {', '.join(palette_names())} "
                       f"or the path of a .hex/.gpl file")


def _read_palette_file(path: Path, *, source: str) -> list[Color]:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PALETTE_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PaletteError(f"{source}: no such palette file: check the path") from None
    except IsADirectoryError:
        raise PaletteError(f"{source}: is a folder: give a .hex or .gpl file") from None
    except OSError as exc:
        raise PaletteError(f"{source}: cannot read it ({exc.strerror or exc}): check the path and permissions") from None
    if len(data) > MAX_PALETTE_FILE_BYTES:
        raise PaletteError(f"{source}: larger than {MAX_PALETTE_FILE_BYTES // 1024} KB: not a palette file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PaletteError(f"{source}: not UTF-8 text: give a .hex or .gpl palette file") from None
    return parse_palette_text(text, source=source)


# --- mapping colours onto a palette --------------------------------------------------------

# 4x4 Bayer thresholds in (0, 1): ordered dithering is the same for every pixel position, so it
# is vectorised and deterministic (and reads better in pixel art than error diffusion).
_BAYER = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) + 0.5) / 16


def map_to_palette(rgb: np.ndarray, palette, *, dither: bool = False) -> np.ndarray:
    """Each colour of an (h, w, 3) uint8 image replaced by its nearest palette colour in OKLab.

    With `dither`, a colour between its two nearest palette colours becomes an ordered mix of them
    in proportion to where it lies between them.
    """
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    pal_lab = oklab(pal)
    h, w = rgb.shape[:2]
    if not dither or len(pal) < 2:
        keys, inverse = np.unique(pack_rgb(rgb).ravel(), return_inverse=True)
        first, _ = nearest(oklab(unpack_rgb(keys)), pal_lab)
        return pal[first][inverse.ravel()].reshape(h, w, 3)
    lab = oklab(rgb).reshape(-1, 3)
    first, second = nearest(lab, pal_lab, two=True)
    seg = pal_lab[second] - pal_lab[first]
    t = ((lab - pal_lab[first]) * seg).sum(1) / np.maximum((seg ** 2).sum(1), 1e-12)
    thresholds = np.tile(_BAYER, (h // 4 + 1, w // 4 + 1))[:h, :w].ravel()
    choice = np.where(np.clip(t, 0, 1) > thresholds, second, first)
    return pal[choice].reshape(h, w, 3)


def nearest(lab: np.ndarray, targets: np.ndarray, *, two: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Index of the nearest target (and, with `two`, the second nearest) for each OKLab colour.

    One pass per target with running minima: memory stays at a few arrays of len(lab), whatever
    the palette (an n x m distance matrix of a large image would not).
    """
    n = len(lab)
    best, best_d = np.zeros(n, np.intp), np.full(n, np.inf)
    second, second_d = np.zeros(n, np.intp), np.full(n, np.inf)
    for i, target in enumerate(targets):
        d = ((lab - target) ** 2).sum(1)
        if two:
            demote = d < best_d
            push = ~demote & (d < second_d)
            second = np.where(demote, best, np.where(push, i, second))
            second_d = np.where(demote, best_d, np.where(push, d, second_d))
        closer = d < best_d
        best = np.where(closer, i, best)
        best_d = np.where(closer, d, best_d)
    return best, (second if two else None)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack_rgb(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint32)
    return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=-1).astype(np.uint8)
