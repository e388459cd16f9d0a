"""The pixel engine of finishing (issue 12): fake pixel art from the model in, a game-ready sprite
out. A pure library (NumPy and Pillow, no Django): the worker, the pages and `manage.py
sprite_finish` all call it.

    result = finish_image(png_bytes, FinishSettings(colors=16))
    result.image            # RGBA, one pixel per art pixel, transparent background
    result.info()           # pixel size and phase found, sizes, palette (JSON-able)
"""
from batches.sprites.errors import NoGridError, PaletteError, SpriteError
from batches.sprites.finish import FinishResult, FinishSettings, batch_palette, finish_image
from batches.sprites.palettes import load_palette, palette_names, palette_text, parse_palette_text

__all__ = [
    "FinishSettings", "FinishResult", "finish_image", "batch_palette", "load_palette", "parse_palette_text",
    "palette_text", "palette_names", "SpriteError", "PaletteError", "NoGridError",
]
