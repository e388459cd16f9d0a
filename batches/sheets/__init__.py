"""Sprite sheets, atlases, tilesets and animations (issue 13): a pure library (NumPy and Pillow,
no Django) that the pages, the CLI and the API all call.

    sheet = pack_sheet([Frame("walk_0.png", image, 100), ...], layout="packed", trim=True, extrude=1)
    sheet.image.save("walk.png")
    atlas = aseprite_json(sheet, image_name="walk.png", tags=[Tag("walk", 0, 7)])   # Aseprite JSON
    tsx, tsj = tiled_tileset(grid_sheet, name="grass", image_name="grass.png", tile_w=32, tile_h=32)
    gif = export_gif(frames, loop="pingpong")       # also export_apng, export_webp
    seam_score(tile)                                # 0 = seamless
    cut_sheet(sheet.image, atlas)                   # the frames back, from the JSON alone
"""
from batches.sheets.animation import export_apng, export_gif, export_webp
from batches.sheets.atlas import aseprite_json
from batches.sheets.cut import cut_sheet
from batches.sheets.errors import SheetError
from batches.sheets.packing import DEFAULT_MAX_SIZE, pack_sheet
from batches.sheets.seams import seam_score
from batches.sheets.tiled import tiled_tileset
from batches.sheets.types import Frame, Placement, Sheet, Tag

__all__ = [
    "Frame", "Placement", "Sheet", "Tag", "SheetError", "pack_sheet", "aseprite_json", "tiled_tileset",
    "export_gif", "export_apng", "export_webp", "seam_score", "cut_sheet", "DEFAULT_MAX_SIZE",
]
