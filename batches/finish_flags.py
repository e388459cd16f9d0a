"""The command line's finishing flags, shared by `batch_generate` and `sprite_refinish`.

They read into the same plan as the form and the profile (batches.sprites.plan), so a mistake
gets the same message at every door, here prefixed with the flag.
"""
from __future__ import annotations

from pathlib import Path

from batches import cli
from batches.sprites.plan import FinishError, read_palette_upload

FLAG_FOR_FIELD = {
    "pixel_size": "--pixel-size", "size": "--size", "colors": "--colors", "palette": "--palette",
    "palette_colors": "--palette", "palette_file": "--palette", "background": "--background",
    "outline": "--outline", "cell": "--cell", "trim": "--no-trim", "dither": "--dither",
    "lock_palette": "--lock-palette", "finish": "--finish",
}
MAX_PALETTE_FILE = 64 * 1024


def add_arguments(parser, *, switch: bool = True) -> None:
    group = parser.add_argument_group("finishing (sprites/ beside images/; defaults: the profile's finish: block)")
    if switch:
        on_off = group.add_mutually_exclusive_group()
        on_off.add_argument("--finish", dest="finish", action="store_true", default=None,
                            help="make sprites with the profile's finishing settings (changed by the flags below)")
        on_off.add_argument("--no-finish", dest="finish", action="store_false", help="make no sprites")
    group.add_argument("--pixel-size", metavar="auto|N", help="the art-pixel size in image pixels (default: detect)")
    group.add_argument("--size", metavar="N|WxH", help="downscale to exactly this sprite size instead of detecting")
    colours = group.add_mutually_exclusive_group()
    colours.add_argument("--colors", metavar="K", help="reduce to K colours (2-256)")
    colours.add_argument("--palette", metavar="NAME|FILE",
                         help="map onto a palette: a name in palettes/ (pico-8, dawnbringer-16, dawnbringer-32, "
                              "endesga-32, gameboy) or a .hex / .gpl file (its colours are kept with the job)")
    group.add_argument("--background", metavar="auto|keep|#rrggbb", help="make the background transparent")
    group.add_argument("--outline", metavar="#rrggbb", help="a 1-pixel outline around the sprite")
    group.add_argument("--cell", metavar="WxH", help="pad each sprite into a WxH cell anchored bottom-centre")
    group.add_argument("--no-trim", dest="trim", action="store_false", default=None,
                       help="keep the whole frame instead of cropping to the sprite")
    group.add_argument("--dither", action="store_true", default=None, help="dither when reducing colours")
    lock = group.add_mutually_exclusive_group()
    lock.add_argument("--lock-palette", dest="lock_palette", action="store_true", default=None,
                      help="one palette for the whole job, computed from all its images (frames, variants)")
    lock.add_argument("--no-lock-palette", dest="lock_palette", action="store_false")


def values_from(options: dict) -> dict:
    """The finishing values the flags gave (none given: an empty dict)."""
    values = {key: options.get(key) for key in ("pixel_size", "size", "colors", "background", "outline", "cell",
                                                "trim", "dither", "lock_palette")
              if options.get(key) is not None}
    palette = options.get("palette")
    if palette:
        if _looks_like_file(palette):
            values["palette_colors"] = _read_palette_file(palette)
        else:
            values["palette"] = palette
    return values


def finish_from(options: dict) -> dict | bool | None:
    """What job_submit's `finish` takes: None (the profile's), False, True or the changed values."""
    values = values_from(options)
    if options.get("finish") is False:
        if values:
            raise cli.UsageError(f"--no-finish: drop {', '.join(_flags(values))} too, or leave out --no-finish")
        return False
    return values or (True if options.get("finish") else None)


def usage_line(exc: FinishError) -> str:
    return f"{FLAG_FOR_FIELD.get(exc.field, '--' + exc.field.replace('_', '-'))}: {exc}"


def _flags(values: dict) -> list[str]:
    return sorted({FLAG_FOR_FIELD.get(key, key) for key in values})


def _looks_like_file(value: str) -> bool:
    return value.lower().endswith((".hex", ".gpl")) or "/" in value or Path(value).is_file()


def _read_palette_file(path: str) -> list[str]:
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(MAX_PALETTE_FILE + 1)
    except OSError as exc:
        raise cli.UsageError(f"--palette: cannot read {path!r} ({exc.strerror or exc}): give a .hex or .gpl file "
                             "or a palette name such as pico-8") from None
    if len(data) > MAX_PALETTE_FILE:
        raise cli.UsageError(f"--palette: {path!r} is larger than {MAX_PALETTE_FILE // 1024} KiB: "
                             "a palette file holds at most 256 colours")
    try:
        return read_palette_upload(data.decode("utf-8"), filename=path)
    except UnicodeDecodeError:
        raise cli.UsageError(f"--palette: {path!r} is not UTF-8 text: give a .hex or .gpl palette file") from None
    except FinishError as exc:
        raise cli.UsageError(f"--palette: {exc}") from None
