#!/usr/bin/env python3
"""Draw docs/comparison.png, the README's comparison grid, by running a real comparison.

    .venv/bin/python scripts/comparison_picture.py [OUT.png]

In a temporary workspace (its own SQLite database and OUTPUT_ROOT, as the benchmarks use): the
ComfyUI simulator, `comparison_submit` with checkpoint x cfg axes over two prompts, the GPU worker
draining it, the sprite worker finishing the images, then `grid_png` exactly as the comparison
page's "PNG" export draws it (sprites, checkpoints in columns, cfg and prompt/seed in rows).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(out: Path) -> None:
    from bench.common import Workspace, drain_in_process, make_user

    ws = Workspace("comparison-picture")
    try:
        ws.activate()
        from batches.services import comparisons
        from batches.services.comparison_grid import grid_png
        from batches.services.finishing import runner

        _, url = ws.simulator(step_ms=5)
        comparison = comparisons.comparison_submit(
            owner=make_user(), axes=["checkpoint=sd_xl_base_1.0.safetensors,pixel_art_xl.safetensors", "cfg=4,10"],
            prompts=["pixel art knight", "pixel art slime"], count=1, batch_size=1, steps=8, width=512, height=512,
            profile="quality", seed=31, client=None, wake=False, name="README grid")
        drain_in_process("picture", url)
        runner.run(stop=lambda: False, once=True)
        png = grid_png(comparison, rows="cfg", cols="checkpoint", sprites=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png if isinstance(png, bytes) else png.getvalue())
        print(f"wrote {out}")
    finally:
        ws.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "comparison.png")
