"""Cut a sheet back into frames, from its atlas JSON alone (the inverse of pack_sheet +
aseprite_json, and what a game engine does when it draws a frame)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from batches.sheets.errors import SheetError


def cut_sheet(sheet_image: Image.Image, atlas: dict) -> dict[str, Image.Image]:
    """Each frame (by filename, in atlas order) as an RGBA image of its `sourceSize`, with the
    `frame` rect of the sheet pasted at `spriteSourceSize` x, y and transparent elsewhere: the
    original image, untrimmed. For a grid sheet with a cell bigger than the sprite, that is the
    cell-sized image with the sprite bottom-centre in it (the cell is the frame). Works on both
    json-array and json-hash atlases; rotated frames are refused."""
    if not isinstance(atlas, dict) or "frames" not in atlas:
        raise SheetError("atlas: no 'frames': give the atlas JSON (Aseprite json-array or json-hash) of this sheet")
    frames = atlas["frames"]
    if isinstance(frames, list):
        entries = []
        for i, entry in enumerate(frames):
            if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
                raise SheetError(f"atlas frames[{i}]: no 'filename': a json-array atlas names each frame")
            entries.append((entry["filename"], entry))
    elif isinstance(frames, dict):
        entries = list(frames.items())
        for name, entry in entries:
            if not isinstance(entry, dict):
                raise SheetError(f"atlas frame {name!r}: give an object with frame, spriteSourceSize and sourceSize")
    else:
        raise SheetError("atlas frames: give a list (json-array) or an object keyed by filename (json-hash)")
    sheet = np.asarray(sheet_image if sheet_image.mode == "RGBA" else sheet_image.convert("RGBA"))
    sheet_h, sheet_w = sheet.shape[:2]
    out: dict[str, Image.Image] = {}
    for name, entry in entries:
        if entry.get("rotated"):
            raise SheetError(f"atlas frame {name!r}: rotated frames are not supported: pack without rotation")
        x, y, w, h = _ints(entry, "frame", "xywh", name)
        sx, sy, sw, sh = _ints(entry, "spriteSourceSize", "xywh", name)
        src_w, src_h = _ints(entry, "sourceSize", "wh", name)
        if x < 0 or y < 0 or x + w > sheet_w or y + h > sheet_h or w < 1 or h < 1:
            raise SheetError(f"atlas frame {name!r}: frame {x},{y} {w}x{h} lies outside the {sheet_w}x{sheet_h} "
                             f"sheet: is this the atlas of this sheet?")
        if (sw, sh) != (w, h) or sx < 0 or sy < 0 or sx + w > src_w or sy + h > src_h:
            raise SheetError(f"atlas frame {name!r}: spriteSourceSize {sx},{sy} {sw}x{sh} does not fit the frame "
                             f"{w}x{h} inside sourceSize {src_w}x{src_h}")
        frame = np.zeros((src_h, src_w, 4), np.uint8)
        frame[sy:sy + h, sx:sx + w] = sheet[y:y + h, x:x + w]
        out[name] = Image.fromarray(frame, "RGBA")
    return out


def _ints(entry: dict, field: str, keys: str, name: str) -> list[int]:
    value = entry.get(field)
    if not isinstance(value, dict) or any(isinstance(value.get(k), bool) or not isinstance(value.get(k), int)
                                          for k in keys):
        raise SheetError(f"atlas frame {name!r}: {field} must be {{{', '.join(keys)}}} of whole numbers")
    return [value[k] for k in keys]
