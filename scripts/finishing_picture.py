#!/usr/bin/env python3
"""Draw docs/finishing.png, the README's before/after of finishing, with the project's own parts.

    .venv/bin/python scripts/finishing_picture.py [OUT.png]

Before: a 1024x1024 image as the ComfyUI simulator paints pixel art (as SDXL does: soft blocks
of 21.8 px on a shifted grid, an opaque backdrop). After: the sprite `batches.sprites` finishes
from it with the balanced profile's settings, at 1:1 and zoomed, with its palette.
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dgxpixels.settings")

from PIL import Image, ImageDraw  # noqa: E402

from batches.comfyui_sim import sprites as sim  # noqa: E402
from batches.sprites import FinishSettings, finish_image  # noqa: E402

BG = (34, 36, 42)
INK = (220, 222, 228)


def checkerboard(size: tuple[int, int], cell: int = 8) -> Image.Image:
    board = Image.new("RGB", size, (60, 62, 70))
    draw = ImageDraw.Draw(board)
    for y in range(0, size[1], cell):
        for x in range((y // cell) % 2 * cell, size[0], cell * 2):
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(78, 80, 90))
    return board


def main(out: Path) -> None:
    recipe = sim.Recipe(text="pixel art knight, side view", negative="", seed=7, model="sd_xl_base_1.0.safetensors",
                        steps=20, cfg=8.0, sampler_name="euler_ancestral", scheduler="karras", denoise=1.0)
    before = sim.draw_sprite(recipe, 0, 1024, 1024)
    png = io.BytesIO()
    before.save(png, format="PNG")
    result = finish_image(png.getvalue(), FinishSettings(colors=32, background="auto"))
    sprite = result.image
    zoom = 12
    shown = 384
    canvas = Image.new("RGB", (shown + 60 + sprite.width * zoom + 40 + sprite.width + 40, shown + 120), BG)
    draw = ImageDraw.Draw(canvas)
    canvas.paste(before.resize((shown, shown), Image.BILINEAR), (20, 40))
    draw.text((20, 14), f"before: {before.width}x{before.height} from the model, opaque, soft", fill=INK)
    x = shown + 60
    big = sprite.resize((sprite.width * zoom, sprite.height * zoom), Image.NEAREST)
    board = checkerboard(big.size).convert("RGBA")
    board.alpha_composite(big)
    canvas.paste(board.convert("RGB"), (x, 40))
    small = checkerboard(sprite.size, 4).convert("RGBA")
    small.alpha_composite(sprite)
    canvas.paste(small.convert("RGB"), (x + big.width + 40, 40))
    info = result.info()
    draw.text((x, 14), f"after: {sprite.width}x{sprite.height} sprite (x{zoom}, and 1:1), transparent, "
                       f"{len(result.palette)} colours", fill=INK)
    draw.text((20, shown + 56), f"detected art pixel {info['pixel_size']:.2f} px, grid phase "
                                f"({info['phase'][0]:.1f}, {info['phase'][1]:.1f}) px", fill=INK)
    for i, colour in enumerate(result.palette):
        left = 20 + i * 26
        draw.rectangle((left, shown + 80, left + 22, shown + 102), fill=colour, outline=(0, 0, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    print(f"wrote {out} ({canvas.width}x{canvas.height}); {info}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "finishing.png")
