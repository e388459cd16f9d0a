"""A comparison laid out as a grid, and its exports: one labelled PNG, and a zip of the cells' images.

The grid's dimensions are the comparison's axes and "slot" (a prompt/seed: the unit index every
cell shares). Two of them are the rows and the columns; any others are laid side by side inside a
grid cell, each with its caption, so every image of the comparison has one place.
"""
from __future__ import annotations

import io
import logging
from collections import defaultdict
from typing import IO

from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from batches.models import Comparison, Image, Job
from batches.services import outputs
from batches.services.comparisons import NO_LORA, label, slots
from batches.services.outputs import job_parameters

log = logging.getLogger("batches.comparison_grid")

SLOT = "slot"  # the prompt/seed dimension
SLOT_LABEL = "prompt/seed"
# Common parameters shown in the legend (the axes are listed apart).
LEGEND = (("checkpoint", "Checkpoint"), ("lora", "LoRA"), ("lora_strength_model", "LoRA strength"),
          ("steps", "Steps"), ("cfg", "CFG"), ("sampler", "Sampler"), ("scheduler", "Scheduler"),
          ("width", "Width"), ("height", "Height"), ("batch_size", "Batch size"), ("base_seed", "Base seed"),
          ("negative_prompt", "Negative prompt"))
AXIS_PARAM = {"checkpoint": "checkpoint", "lora": "lora", "lora_strength": "lora_strength_model", "cfg": "cfg",
              "steps": "steps", "sampler": "sampler"}

# The PNG's layout, in pixels.
PAD = 8
GAP = 4
LINE = 16
LABEL_W = 200
MIN_COL_W = 120
MIN_TILE = 128  # small images are scaled up by a whole factor to at least this, nearest neighbour
MAX_PNG_PIXELS = 60_000_000


class GridError(ValueError):
    """A grid that cannot be drawn as asked (unknown dimension); says why."""


# --- the grid --------------------------------------------------------------------------------

def dimensions(comparison: Comparison) -> list[tuple[str, str]]:
    """(key, label) of every dimension the rows and columns may be chosen from."""
    return [(SLOT, SLOT_LABEL)] + [(a["axis"], a["axis"]) for a in comparison.axes]


def choose(comparison: Comparison, rows: str | None = None, cols: str | None = None) -> tuple[str, str]:
    """The rows and columns asked for, or the defaults: prompt/seed down, the first axis across."""
    keys = [k for k, _ in dimensions(comparison)]
    for name, value in (("rows", rows), ("cols", cols)):
        if value and value not in keys:
            raise GridError(f"{name}: no dimension {value!r}; use one of {', '.join(keys)}")
    rows = rows or SLOT
    if not cols or cols == rows:
        cols = next((k for k in keys if k != rows), rows)
    return rows, cols


def value_label(axis: str, value) -> str:
    if axis == "lora" and value == NO_LORA:
        return "no LoRA"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _dimension_values(comparison: Comparison, key: str, slot_rows: list[dict]) -> list[tuple[object, str]]:
    if key == SLOT:
        return [(s["slot"], f"{s['prompt']} · seed {s['seed']}") for s in slot_rows]
    axis = next(a for a in comparison.axes if a["axis"] == key)
    return [(v, f"{key}={value_label(key, v)}") for v in axis["values"]]


def _value_of(key: str, job: Job, slot: int):
    return slot if key == SLOT else (job.cell or {}).get(key)


def grid(comparison: Comparison, *, rows: str | None = None, cols: str | None = None) -> dict:
    """Rows x columns of cells; each cell holds one item per (job, slot) that falls in it."""
    rows, cols = choose(comparison, rows, cols)
    jobs = list(comparison.cells.order_by("id"))
    slot_rows = slots(comparison)
    images: dict[tuple[int, int], list[Image]] = defaultdict(list)
    for image in (Image.objects.filter(job__comparison=comparison).select_related("unit")
                  .order_by("unit__index", "batch_index")):
        images[(image.job_id, image.unit.index)].append(image)
    extra = [k for k, _ in dimensions(comparison) if k not in (rows, cols)]
    slot_labels = {s["slot"]: f"{s['prompt']} · seed {s['seed']}" for s in slot_rows}
    row_values = _dimension_values(comparison, rows, slot_rows)
    col_values = _dimension_values(comparison, cols, slot_rows)
    table = []
    for rv, rlabel in row_values:
        line = []
        for cv, _ in col_values:
            items = []
            for job in jobs:
                for s in slot_rows:
                    if _value_of(rows, job, s["slot"]) != rv or _value_of(cols, job, s["slot"]) != cv:
                        continue
                    caption = ", ".join(slot_labels[s["slot"]] if k == SLOT else
                                        f"{k}={value_label(k, (job.cell or {}).get(k))}" for k in extra)
                    items.append({"job": job, "slot": s["slot"], "images": images.get((job.pk, s["slot"]), []),
                                  "caption": caption, "label": label(job.cell or {})})
            line.append(items)
        table.append({"value": rv, "label": rlabel, "cells": line})
    seen: set[int] = set()
    for row in table:  # a cell's own actions (cancel) are drawn once, on its first item
        for items in row["cells"]:
            for item in items:
                item["first_of_job"] = item["job"].pk not in seen
                seen.add(item["job"].pk)
    names = dict(dimensions(comparison))
    return {"rows": rows, "cols": cols, "rows_label": names[rows], "cols_label": names[cols], "columns": [lbl for _, lbl in col_values], "table": table,
            "jobs": jobs, "extra": extra, "dimensions": dimensions(comparison),
            "per_slot": max((s.get("batch_size", 1) for s in _units(jobs)), default=1)}


def _units(jobs: list[Job]) -> list[dict]:
    from batches.services.submission import plan_units

    return plan_units(jobs[0]) if jobs else []


def legend(comparison: Comparison) -> dict:
    """The parameters every cell shares, and each axis with its values."""
    first = comparison.cells.order_by("id").first()
    varying = {AXIS_PARAM.get(a["axis"]) for a in comparison.axes}
    params = job_parameters(first) if first else {}
    common = [(title, params.get(key)) for key, title in LEGEND
              if key not in varying and params.get(key) not in (None, "")]
    if first is not None:
        common.insert(0, ("Prompts", " | ".join(first.prompts) if "suffix" not in comparison.axis_names else
                          " | ".join(first.prompts) + " (+ suffix)"))
        common.insert(1, ("Images per prompt", first.count))
    axes = [{"axis": a["axis"], "values": [value_label(a["axis"], v) for v in a["values"]]} for a in comparison.axes]
    return {"common": common, "axes": axes}


# --- the PNG ---------------------------------------------------------------------------------

def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1: the bitmap font, still legible at 1:1
        return ImageFont.load_default()


def tile_size(comparison: Comparison) -> tuple[int, int]:
    """One image's box in the PNG: the job's size, scaled up by a whole factor when small."""
    first = comparison.cells.order_by("id").first()
    w, h = (first.width, first.height) if first else (64, 64)
    scale = max(1, MIN_TILE // max(w, h, 1))
    return w * scale, h * scale


def png_layout(comparison: Comparison, table: dict) -> dict:
    """Sizes of the PNG's parts (the tests check the drawing against them)."""
    tw, th = tile_size(comparison)
    per_cell = max((len(items) for row in table["table"] for items in row["cells"]), default=1) or 1
    per_item = max(1, table["per_slot"])
    item_w = per_item * tw + (per_item - 1) * GAP
    cell_w = per_cell * item_w + (per_cell - 1) * PAD
    col_w = max(cell_w, MIN_COL_W)
    cell_h = th + LINE
    head_h = PAD + LINE + PAD + LINE + PAD
    width = PAD + LABEL_W + len(table["columns"]) * (col_w + PAD)
    height = head_h + len(table["table"]) * (cell_h + PAD)
    return {"tile": (tw, th), "item_w": item_w, "col_w": col_w, "cell_h": cell_h, "head_h": head_h,
            "size": (width, height)}


def _fit_text(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _wrap(draw, text: str, font, width: int, lines: int) -> list[str]:
    words, out, line = text.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    if len(out) > lines:
        out = out[:lines - 1] + [_fit_text(draw, " ".join(out[lines - 1:]), font, width)]
    return [_fit_text(draw, line, font, width) for line in out]


def _picture(image: Image, *, sprite: bool) -> PILImage.Image | None:
    path = image.sprite_path if sprite and image.sprite_state == Image.Sprite.DONE and image.sprite_path \
        else image.file_path
    try:
        with PILImage.open(outputs.output_root() / path) as pic:
            return pic.convert("RGBA")
    except (OSError, ValueError):
        log.info("comparison grid: image %s unreadable at %s", image.pk, path)
        return None


def grid_png(comparison: Comparison, *, rows: str | None = None, cols: str | None = None,
             sprites: bool = False) -> bytes:
    """The grid as one PNG: axis labels above and beside the images, each image at a whole scale."""
    table = grid(comparison, rows=rows, cols=cols)
    layout = png_layout(comparison, table)
    width, height = layout["size"]
    if width * height > MAX_PNG_PIXELS:
        raise GridError(f"the grid would be {width}x{height} pixels; choose fewer rows or columns")
    canvas = PILImage.new("RGBA", (width, height), (250, 250, 250, 255))
    draw = ImageDraw.Draw(canvas)
    font, small = _font(13), _font(11)
    ink, muted, line_ink = (20, 20, 20, 255), (110, 110, 110, 255), (210, 210, 210, 255)
    tw, th = layout["tile"]
    title = f"Comparison {comparison.pk}" + (f": {comparison.name}" if comparison.name else "")
    axes_text = "; ".join(f"{a['axis']}: {', '.join(value_label(a['axis'], v) for v in a['values'])}"
                          for a in comparison.axes)
    draw.text((PAD, PAD), _fit_text(draw, f"{title} · {axes_text}", font, width - 2 * PAD), fill=ink, font=font)
    header_y = PAD + LINE + PAD
    dim_names = dict(table["dimensions"])
    draw.text((PAD, header_y), _fit_text(draw, f"rows: {dim_names[table['rows']]}", small, LABEL_W),
              fill=muted, font=small)
    for c, column in enumerate(table["columns"]):
        x = PAD + LABEL_W + c * (layout["col_w"] + PAD)
        draw.text((x, header_y), _fit_text(draw, column, font, layout["col_w"]), fill=ink, font=font)
    for r, row in enumerate(table["table"]):
        y = layout["head_h"] + r * (layout["cell_h"] + PAD)
        draw.line([(PAD, y - PAD // 2), (width - PAD, y - PAD // 2)], fill=line_ink)
        for i, text in enumerate(_wrap(draw, row["label"], font, LABEL_W - PAD, max(1, layout["cell_h"] // LINE))):
            draw.text((PAD, y + i * LINE), text, fill=ink, font=font)
        for c, items in enumerate(row["cells"]):
            x0 = PAD + LABEL_W + c * (layout["col_w"] + PAD)
            for i, item in enumerate(items):
                x = x0 + i * (layout["item_w"] + PAD)
                if not item["images"]:
                    draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=(232, 232, 232, 255), outline=line_ink)
                    draw.text((x + 4, y + 4), item["job"].status, fill=muted, font=small)
                for k, image in enumerate(item["images"]):
                    picture = _picture(image, sprite=sprites)
                    left = x + k * (tw + GAP)
                    if picture is None:
                        draw.rectangle([left, y, left + tw - 1, y + th - 1], outline=line_ink)
                        draw.text((left + 4, y + 4), "missing", fill=muted, font=small)
                        continue
                    scale = max(1, min(tw // max(picture.width, 1), th // max(picture.height, 1)))
                    if picture.width * scale > tw or picture.height * scale > th:  # larger than the tile
                        picture.thumbnail((tw, th), PILImage.NEAREST)
                        scale = 1
                    if scale > 1:
                        picture = picture.resize((picture.width * scale, picture.height * scale), PILImage.NEAREST)
                    canvas.alpha_composite(picture, (left + (tw - picture.width) // 2, y + (th - picture.height) // 2))
                if item["caption"]:
                    draw.text((x, y + th + 1), _fit_text(draw, item["caption"], small, layout["item_w"]),
                              fill=muted, font=small)
    buffer = io.BytesIO()
    canvas.convert("RGB").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# --- the zip ---------------------------------------------------------------------------------

def cells_zip(comparison: Comparison) -> tuple[IO[bytes], str]:
    """Every cell's images and metadata, one folder per cell (its job's folder), as (file, name)."""
    from batches.services.review import TILE_DEFER, zip_images

    images = (Image.objects.filter(job__comparison=comparison).select_related("job").defer(*TILE_DEFER)
              .order_by("job_id", "sequence"))
    return zip_images(images.iterator(chunk_size=500), with_batch_info=True), f"comparison_{comparison.pk}.zip"


# --- blind judging, as a page shows it ----------------------------------------------------------

def judge_round(comparison: Comparison, user, slot: int) -> dict:
    """One slot's cells in the user's blind order, each with its images of that slot; no labels."""
    from batches.services.comparisons import blind_order

    row = next((s for s in slots(comparison) if s["slot"] == slot), None)
    if row is None:
        raise GridError(f"comparison {comparison.pk} has no row {slot}")
    cells = blind_order(comparison, user, slot)
    images: dict[int, list[Image]] = defaultdict(list)
    for image in (Image.objects.filter(job__comparison=comparison, unit__index=slot)
                  .order_by("batch_index")):
        images[image.job_id].append(image)
    options = [{"number": n, "job": job, "images": images.get(job.pk, []), "label": label(job.cell or {})}
               for n, job in enumerate(cells, start=1)]
    return {"slot": slot, "prompt": row["prompt"], "seed": row["seed"], "options": options,
            "ready": all(o["images"] for o in options)}


def my_picks(comparison: Comparison, user) -> list[dict]:
    """The user's votes, each with its slot's blind order and the picked option's number."""
    from batches.models import Vote

    rows = {s["slot"]: s for s in slots(comparison)}
    picks = []
    for ballot in Vote.objects.filter(comparison=comparison, user=user).select_related("winner").order_by("slot"):
        round_ = judge_round(comparison, user, ballot.slot) if ballot.slot in rows else None
        if round_ is None:
            continue
        picked = next((o for o in round_["options"] if o["job"].pk == ballot.winner_id), None)
        picks.append({"slot": ballot.slot, "prompt": rows[ballot.slot]["prompt"], "seed": rows[ballot.slot]["seed"],
                      "options": round_["options"], "picked": picked})
    return picks
