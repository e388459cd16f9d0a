"""Aseprite's sprite-sheet JSON (`--format json-array` / `json-hash`), the atlas that Phaser
(load.atlas / load.aseprite), Godot importers, LibGDX and Unity importers read.

Each frame: `frame {x,y,w,h}` (the rect in the sheet), `rotated` (always false: nothing is
rotated), `trimmed`, `spriteSourceSize {x,y,w,h}` (where the rect sits in the original image),
`sourceSize {w,h}` (the original image), `duration` (ms). All numbers are ints, flags bools.
`meta`: app, version, image (relative to the JSON file), format RGBA8888, size {w,h}, scale "1"
(a string, as Aseprite writes it), frameTags [{name, from, to, direction}] (from/to inclusive
frame indices), layers [], slices [].
"""
from __future__ import annotations

from batches.sheets.errors import SheetError
from batches.sheets.types import Placement, Sheet, Tag

APP = "DGX Pixels"
APP_VERSION = "1.0"
ATLAS_LAYOUTS = ("array", "hash")


def aseprite_json(sheet: Sheet, *, image_name: str, layout: str = "array", tags: list[Tag] | tuple = (),
                  app_version: str = APP_VERSION) -> dict:
    """The atlas as a JSON-able dict: `frames` a list (layout "array", each with its `filename`)
    or an object keyed by filename (layout "hash"), in the sheet's frame order."""
    if isinstance(layout, str) and layout.startswith("json-"):  # Aseprite's own names: json-array, json-hash
        layout = layout[5:]
    if layout not in ATLAS_LAYOUTS:
        raise SheetError(f"atlas layout: {layout!r}: give array (Aseprite's json-array) or hash (json-hash)")
    if not isinstance(image_name, str) or not image_name.strip():
        raise SheetError("image_name: give the sheet's file name relative to the JSON file, e.g. sheet.png")
    count = len(sheet.placements)
    frame_tags = []
    for tag in tags:
        if not isinstance(tag, Tag):
            raise SheetError(f"tags: {type(tag).__name__} is not a Tag: give Tag(name, start, end, direction)")
        if tag.end >= count:
            raise SheetError(f"tag {tag.name!r}: frames {tag.start}..{tag.end}, but the sheet has {count} frames "
                             f"(0..{count - 1}): give frame indices inside the sheet")
        frame_tags.append({"name": tag.name, "from": tag.start, "to": tag.end, "direction": tag.direction})
    if layout == "array":
        frames: list | dict = [{"filename": p.name, **_frame(p)} for p in sheet.placements]
    else:
        frames = {p.name: _frame(p) for p in sheet.placements}
    return {
        "frames": frames,
        "meta": {
            "app": APP,
            "version": str(app_version),
            "image": image_name,
            "format": "RGBA8888",
            "size": {"w": int(sheet.image.width), "h": int(sheet.image.height)},
            "scale": "1",
            "frameTags": frame_tags,
            "layers": [],
            "slices": [],
        },
    }


def _frame(p: Placement) -> dict:
    return {
        "frame": {"x": int(p.x), "y": int(p.y), "w": int(p.w), "h": int(p.h)},
        "rotated": False,
        "trimmed": bool(p.trimmed),
        "spriteSourceSize": {"x": int(p.offset_x), "y": int(p.offset_y), "w": int(p.w), "h": int(p.h)},
        "sourceSize": {"w": int(p.source_w), "h": int(p.source_h)},
        "duration": int(p.duration),
    }
