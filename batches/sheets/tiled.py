"""Tiled tilesets of a grid sheet: the `.tsx` file (TMX format's <tileset> with an <image>) and
Tiled's JSON tileset (`.tsj`), with the same fields.

Tiled cuts the image itself on a regular grid: the tile in column c, row r is at
margin + c * (tilewidth + spacing), likewise y, and it counts
columns = (imagewidth - 2 * margin + spacing) // (tilewidth + spacing) (rows alike),
tilecount = columns * rows (empty cells at the end included, as Tiled would count them). For a
sheet from pack_sheet(layout="grid") the margin is its extrusion and the spacing twice the
extrusion plus the padding.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from batches.sheets.errors import SheetError
from batches.sheets.types import Sheet

TILED_FORMAT_VERSION = "1.10"
TILED_VERSION = "1.10.2"


def tiled_tileset(sheet: Sheet, *, name: str, image_name: str, tile_w: int, tile_h: int,
                  spacing: int | None = None, margin: int | None = None) -> tuple[str, dict]:
    """(the .tsx XML text, Tiled's JSON tileset dict) for a grid sheet. spacing and margin
    default to the sheet's own (2 * extrude + padding, extrude); values given must match it."""
    if sheet.layout != "grid" or sheet.cell is None:
        raise SheetError("tileset: Tiled cuts tilesets on a regular grid: pack the tiles with layout grid")
    if not isinstance(name, str) or not name.strip():
        raise SheetError("tileset name: give the tileset a name, e.g. grass")
    if not isinstance(image_name, str) or not image_name.strip():
        raise SheetError("image_name: give the sheet's file name relative to the tileset file, e.g. grass.png")
    want_spacing, want_margin = 2 * sheet.extrude + sheet.padding, sheet.extrude
    spacing = want_spacing if spacing is None else spacing
    margin = want_margin if margin is None else margin
    for field, value in (("tile_w", tile_w), ("tile_h", tile_h), ("spacing", spacing), ("margin", margin)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if field.startswith("tile") else 0):
            raise SheetError(f"{field}: {value!r}: give a whole number of pixels")
    if (tile_w, tile_h) != tuple(sheet.cell):
        raise SheetError(f"tile size: {tile_w}x{tile_h}, but the sheet's cells are {sheet.cell[0]}x{sheet.cell[1]}: "
                         f"give tile_w={sheet.cell[0]}, tile_h={sheet.cell[1]}")
    if (spacing, margin) != (want_spacing, want_margin):
        raise SheetError(f"spacing/margin: {spacing}/{margin} would cut the tiles off their cells: this sheet has "
                         f"spacing {want_spacing} and margin {want_margin} (padding {sheet.padding}, "
                         f"extrude {sheet.extrude}): leave them out or give those")
    width, height = sheet.image.width, sheet.image.height
    columns = (width - 2 * margin + spacing) // (tile_w + spacing)
    rows = (height - 2 * margin + spacing) // (tile_h + spacing)
    fields = {"name": name, "tilewidth": tile_w, "tileheight": tile_h, "spacing": spacing, "margin": margin,
              "tilecount": columns * rows, "columns": columns}
    root = ET.Element("tileset", {"version": TILED_FORMAT_VERSION, "tiledversion": TILED_VERSION,
                                  **{k: str(v) for k, v in fields.items()}})
    ET.SubElement(root, "image", {"source": image_name, "width": str(width), "height": str(height)})
    ET.indent(root, space=" ")
    tsx = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    data = {**fields, "image": image_name, "imagewidth": width, "imageheight": height, "type": "tileset",
            "version": TILED_FORMAT_VERSION, "tiledversion": TILED_VERSION}
    return tsx, data
