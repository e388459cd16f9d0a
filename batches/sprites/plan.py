"""A job's finishing plan, read the same way from every door: the profile's `finish:` block, the
form, the CLI flags, the admin and the Python API. Pure, like the rest of batches.sprites.

Stored on the job (and on each image, for its next run) as one JSON object: the engine's
FinishSettings fields, plus `lock_palette` (one palette computed from the whole batch) and
`palette_colors` (an uploaded palette, inlined so the job never depends on the upload's file).
"""
from __future__ import annotations

from dataclasses import fields

from batches.sprites import FinishSettings, SpriteError, parse_palette_text

# The keys the doors take, besides the engine's FinishSettings fields.
EXTRA_KEYS = ("lock_palette", "palette_colors")
SETTING_KEYS = tuple(f.name for f in fields(FinishSettings))
DEFAULT_COLORS_FOR_LOCK = 16  # a locked palette with neither colors nor a palette: this many


class FinishError(ValueError):
    """A finishing setting that cannot work; `field` names it (the form field / the CLI flag)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def from_profile(block: dict) -> dict | None:
    """A profile's `finish:` block as a plan; None when it says `enabled: false`. Raises FinishError."""
    block = dict(block)
    enabled = block.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise FinishError("enabled", f"enabled: {enabled!r}: give true or false")
    plan = build(block)
    return plan if enabled else None


def build(values: dict, *, base: dict | None = None) -> dict:
    """A checked finishing plan from `values` laid over `base` (the profile's, or the job's).

    `values` may hold text (the form, the CLI: "48x48", "16", "auto", "#ff00ff", "") or typed
    values (YAML, JSON). An empty text or None means "as in base". Raises FinishError.
    """
    plan = dict(base or {})
    for key, value in values.items():
        if key not in SETTING_KEYS + EXTRA_KEYS:
            raise FinishError(key, f"not a finishing setting: use {', '.join(SETTING_KEYS + EXTRA_KEYS)}")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        plan[key] = _typed(key, value)
    if values.get("colors") not in (None, "") and "palette" not in values:
        plan.pop("palette", None)  # asking for K colours replaces the base's palette
        plan.pop("palette_colors", None)
    if (values.get("palette") not in (None, "") or values.get("palette_colors")) and "colors" not in values:
        plan.pop("colors", None)
    if plan.get("palette_colors"):
        plan.pop("palette", None)
    checked = settings(plan)  # every value together: colors and palette at once, sizes, colours
    return {**checked.to_dict(), **{key: plan[key] for key in EXTRA_KEYS if plan.get(key)}}


def settings(plan: dict) -> FinishSettings:
    """The engine's settings for a plan; raises FinishError naming the setting."""
    try:
        return FinishSettings.from_dict({k: v for k, v in plan.items() if k in SETTING_KEYS})
    except SpriteError as exc:
        field, _, message = str(exc).partition(": ")
        raise FinishError(field if field in SETTING_KEYS else "finish", str(exc)) from None


def locked(plan: dict) -> bool:
    return bool(plan.get("lock_palette"))


def batch_colors(plan: dict) -> int:
    """How many colours a palette computed from the whole batch gets."""
    return int(plan.get("colors") or DEFAULT_COLORS_FOR_LOCK)


def needs_whole_batch(plan: dict | None) -> bool:
    """Its palette is computed from every image of the job, so its sprites wait for the job to end."""
    return bool(plan) and locked(plan) and not plan.get("palette") and not plan.get("palette_colors")


def read_palette_upload(text: str, *, filename: str) -> list[str]:
    """An uploaded .hex / .gpl palette as '#rrggbb' colours; FinishError names the file and line."""
    try:
        colors = parse_palette_text(text, source=filename)
    except SpriteError as exc:
        raise FinishError("palette_file", str(exc)) from None
    return ["#%02x%02x%02x" % tuple(c) for c in colors]


def _typed(key: str, value):
    if key in ("lock_palette", "trim", "dither"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise FinishError(key, f"{key}: {value!r}: give true or false")
    if key == "colors":
        return _whole(key, value)
    if key == "pixel_size":
        if isinstance(value, str) and value.strip().lower() == "auto":
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise FinishError(key, f"pixel_size: {value!r}: give auto or the art-pixel size in screen pixels "
                                   "(e.g. 21.33)") from None
        return number
    if key in ("size", "cell"):
        if isinstance(value, int) and not isinstance(value, bool):
            return [value, value]
        if isinstance(value, (list, tuple)):
            return list(value)
        return str(value).strip()
    if key == "palette_colors":
        if not isinstance(value, list) or not value:
            raise FinishError(key, "palette_colors: give a list of #rrggbb colours")
        return [str(c) for c in value]
    return str(value).strip() if isinstance(value, str) else value


def _whole(key: str, value) -> int:
    from batches.numbers import NumberError, parse_int

    try:
        return parse_int(value, field=key)
    except NumberError as exc:
        raise FinishError(key, f"{key}: {exc}") from None


def describe(plan: dict | None) -> str:
    """One line for pages and the CLI: 'pico-8, background auto, cell 64x64, locked palette'."""
    if not plan:
        return "no sprites"
    parts = []
    if plan.get("palette_colors"):
        parts.append(f"uploaded palette ({len(plan['palette_colors'])} colours)")
    elif plan.get("palette"):
        parts.append(f"palette {plan['palette']}")
    elif plan.get("colors"):
        parts.append(f"{plan['colors']} colours")
    if plan.get("pixel_size"):
        parts.append(f"pixel {plan['pixel_size']:g} px")
    if plan.get("size"):
        parts.append("size " + _wxh(plan["size"]))
    parts.append(f"background {plan.get('background', 'auto')}")
    if plan.get("outline"):
        parts.append(f"outline {plan['outline']}")
    if plan.get("cell"):
        parts.append("cell " + _wxh(plan["cell"]))
    if plan.get("lock_palette"):
        parts.append("one palette for the job")
    return ", ".join(parts)


def _wxh(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
