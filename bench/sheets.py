"""Figure 11, sheets: seconds and memory to pack --sprites sprites of --size x --size px into one
sheet and write it (the PNG and its Aseprite JSON atlas) to a temp folder (batches.sheets, issue 13).

The sprites are made first (untimed) by the finishing tests' generator (tests/sprite_truth.py:
symmetric silhouettes, bands and patches of 3 to 11 colours, outlines), one per --size canvas:
--trimmed of them drawn smaller (half to full size) and standing bottom-centre, as finishing's
cell places them, so trimming has work to do. Each variant runs --repeat times and its median counts:
  grid            fixed cells (the sprites' common size), square-ish
  packed maxrects MaxRects, best short side fit, trimmed
  packed shelf    shelf packing, trimmed
all with --padding and --extrude. A variant's time is pack_sheet + aseprite_json + writing the
JSON + writing the PNG (Pillow, zlib level --compress-level), split by step. Memory is measured
first, one run of each variant in a forked child of a process that holds only the sprites: the
tracemalloc peak (Python and NumPy allocations) and the growth of the child's peak RSS over its
RSS at the start (Pillow's image memory is not seen by tracemalloc; RSS sees everything).
No database and no other processes: the library is pure.

Target (issue 13): under 2 s per variant for 1000 64 x 64 sprites; memory under 300 MB.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import tempfile
import time
import tracemalloc

import numpy as np
from PIL import Image

from bench.common import Table, header, verdict

TARGET_S = 2.0
TARGET_MB = 300.0
VARIANTS = [
    ("grid", {"layout": "grid"}),
    ("packed maxrects (trim)", {"layout": "packed", "algorithm": "maxrects", "trim": True}),
    ("packed shelf (trim)", {"layout": "packed", "algorithm": "shelf", "trim": True}),
]


def add_arguments(parser) -> None:
    parser.add_argument("--sprites", type=int, default=1000, help="sprites in the sheet (1000)")
    parser.add_argument("--size", type=int, default=64, help="sprite side in px (64)")
    parser.add_argument("--trimmed", type=float, default=0.5, help="share of sprites with a transparent margin (0.5)")
    parser.add_argument("--padding", type=int, default=2, help="px between rects (2)")
    parser.add_argument("--extrude", type=int, default=1, help="edge px repeated around each rect (1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the median counts (3)")
    parser.add_argument("--compress-level", type=int, default=6, help="PNG zlib level, as Pillow's default (6)")
    parser.add_argument("--seed", type=int, default=13)


def make_frames(count: int, size: int, trimmed: float, seed: int):
    """Pixel-art sprites (the finishing tests' generator) in size x size canvases: a `trimmed`
    share drawn smaller and standing bottom-centre (as finishing's cell places them), the rest
    filling the canvas."""
    from batches.sheets import Frame
    from tests.sprite_truth import make_sprite

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        w = h = size
        if rng.random() < trimmed:
            w, h = (int(v) for v in rng.integers(max(8, size // 2), size, 2))
        art = make_sprite(seed * 100_000 + i, w, h, int(rng.integers(3, 12)), outline=bool(rng.random() < 0.7),
                          pocket=bool(rng.random() < 0.3)).sprite
        canvas = np.zeros((size, size, 4), np.uint8)
        canvas[size - h:, (size - w) // 2:(size - w) // 2 + w] = art
        frames.append(Frame(f"sprite_{i:04d}_{seed}.png", Image.fromarray(canvas, "RGBA"), 100))
    return frames


def run_variant(frames, options: dict, args, folder: str) -> dict:
    from batches.sheets import aseprite_json, pack_sheet

    steps = {}
    started = time.perf_counter()
    sheet = pack_sheet(frames, padding=args.padding, extrude=args.extrude, **options)
    steps["pack_sheet"] = time.perf_counter() - started
    t = time.perf_counter()
    atlas = aseprite_json(sheet, image_name="sheet.png")
    with open(os.path.join(folder, "sheet.json"), "w") as out:
        json.dump(atlas, out)
    steps["atlas JSON (build + write)"] = time.perf_counter() - t
    t = time.perf_counter()
    sheet.image.save(os.path.join(folder, "sheet.png"), format="PNG", compress_level=args.compress_level)
    steps["PNG write"] = time.perf_counter() - t
    steps["total"] = time.perf_counter() - started
    used = sum(p.w * p.h for p in sheet.placements)
    return {"steps": steps, "size": sheet.image.size, "fill": used / (sheet.image.width * sheet.image.height),
            "png_mb": os.path.getsize(os.path.join(folder, "sheet.png")) / 2 ** 20}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def measure_memory(frames, options: dict, args, folder: str) -> tuple[float, float | None]:
    """(tracemalloc peak MB, peak RSS growth MB or None) of one run, in a forked child so that
    what earlier runs freed (and the allocator kept) does not hide this run's growth."""
    if not hasattr(os, "fork"):
        return _measure_here(frames, options, args, folder)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, and leave without running the parent's cleanup
        code = 1
        try:
            os.close(read)
            with os.fdopen(write, "w") as out:
                json.dump(_measure_here(frames, options, args, folder), out)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as inp:
        text = inp.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not text:
        raise RuntimeError(f"the memory run of {options} failed in its child process (status {status})")
    traced, growth = json.loads(text)
    return traced, growth


def _measure_here(frames, options: dict, args, folder: str) -> tuple[float, float | None]:
    before = _status_kib("VmRSS")
    tracemalloc.start()
    try:
        run_variant(frames, options, args, folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    hwm = _status_kib("VmHWM")  # a forked child's peak mark starts at its RSS at the fork
    growth = (hwm - before) / 1024 if hwm is not None and before is not None else None
    return peak / 2 ** 20, growth


def main(args) -> list[tuple[str, bool | None]]:
    header(f"Figure 11: packing {args.sprites} {args.size}x{args.size} sprites into one sheet + atlas", {
        "sprites": args.sprites, "size": args.size, "trimmed share": args.trimmed, "padding": args.padding,
        "extrude": args.extrude, "repeat": args.repeat, "PNG level": args.compress_level, "seed": args.seed})
    started = time.perf_counter()
    frames = make_frames(args.sprites, args.size, args.trimmed, args.seed)
    print(f"    made {len(frames)} sprites in {time.perf_counter() - started:.1f}s (untimed)\n", flush=True)
    table = Table(f"Sheets: seconds per variant (median of {args.repeat}), memory of one run in a child", [
        "variant", "sheet px", "fill", "pack s", "atlas s", "PNG s", "total s", "PNG MB", "tracemalloc MB",
        "RSS growth MB", "verdict"])
    outcome = []
    with tempfile.TemporaryDirectory(prefix="dgx-bench-sheets-") as folder:
        memory = {label: measure_memory(frames, options, args, folder) for label, options in VARIANTS}
        for label, options in VARIANTS:
            runs = [run_variant(frames, options, args, folder) for _ in range(max(1, args.repeat))]
            med = {step: statistics.median(r["steps"][step] for r in runs) for step in runs[0]["steps"]}
            traced, growth = memory[label]
            mb = growth if growth is not None else traced
            ok = med["total"] < TARGET_S and mb < TARGET_MB
            w, h = runs[0]["size"]
            table.add(label, f"{w}x{h}", f"{runs[0]['fill']:.0%}", med["pack_sheet"],
                      med["atlas JSON (build + write)"], med["PNG write"], med["total"], runs[0]["png_mb"],
                      traced, growth if growth is not None else "-", verdict(ok))
            outcome.append((f"sheets {label}: {med['total']:.2f} s < {TARGET_S:.0f} s, memory {mb:.0f} MB < "
                            f"{TARGET_MB:.0f} MB ({args.sprites} sprites of {args.size}x{args.size})", ok))
    table.note(f"target: total < {TARGET_S:.0f} s per variant and memory < {TARGET_MB:.0f} MB (peak RSS growth of "
               f"the run's own process; the tracemalloc peak where /proc is missing)")
    table.note("fill: sprite pixels packed (trimmed rects when trimming) / sheet pixels; padding and extrusion "
               "count as waste")
    table.note("the input sprites (RGBA, in memory before any variant) are not counted in the memory columns")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table.note(f"process peak RSS over the whole run (sprites and timing runs included): {peak:.0f} MB")
    table.print()
    return outcome
