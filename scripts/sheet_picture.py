#!/usr/bin/env python3
"""Draw docs/sheet.png and docs/sheet.json, the README's sprite sheet, with the project's own parts.

    .venv/bin/python scripts/sheet_picture.py [OUT_DIR]

Eight frames as the ComfyUI simulator paints one latent batch (seed 12345, as the seed's
example 4), finished with the animation profile's settings (one 16-colour palette computed from
all eight, a 64x64 cell) and packed into a grid sheet with its Aseprite json-array atlas.
"""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dgxpixels.settings")

from PIL import Image  # noqa: E402

from batches.comfyui_sim import sprites as sim  # noqa: E402
from batches.sheets import Frame, Tag, aseprite_json, pack_sheet  # noqa: E402
from batches.sprites import FinishSettings, batch_palette, finish_image  # noqa: E402


def main(out: Path) -> None:
    recipe = sim.Recipe(text="pixel art knight walk cycle", negative="", seed=12345,
                        model="sd_xl_base_1.0.safetensors", steps=20, cfg=8.0, sampler_name="euler_ancestral",
                        scheduler="karras", denoise=1.0)
    pngs = []
    for index in range(8):
        buf = io.BytesIO()
        sim.draw_sprite(recipe, index, 1024, 1024).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    settings = FinishSettings(background="auto", cell=(64, 64))
    palette = batch_palette(pngs, settings, 16)
    frames = [Frame(name=f"sprite_{i + 1:04d}_{recipe.seed + i}.png",
                    image=finish_image(png, settings, locked_palette=palette).image, duration=100)
              for i, png in enumerate(pngs)]
    sheet = pack_sheet(frames, layout="grid", columns=4, padding=2)
    out.mkdir(parents=True, exist_ok=True)
    sheet.image.save(out / "sheet.png", optimize=True)
    atlas = aseprite_json(sheet, image_name="sheet.png", layout="array",
                          tags=[Tag(name="walk", start=0, end=len(frames) - 1, direction="forward")])
    (out / "sheet.json").write_text(json.dumps(atlas, indent=2) + "\n")
    # For the README: the same sheet x3, nearest-neighbour, on a dark backdrop.
    backdrop = Image.new("RGBA", sheet.image.size, (34, 36, 42, 255))
    backdrop.alpha_composite(sheet.image)
    backdrop.resize((sheet.image.width * 3, sheet.image.height * 3), Image.NEAREST).save(
        out / "sheet-preview.png", optimize=True)
    print(f"wrote {out / 'sheet.png'} ({sheet.image.width}x{sheet.image.height}, {len(frames)} frames, "
          f"{len(palette)} colours) and {out / 'sheet.json'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs")
