"""Sheets, animations and tilesets from a job's sprites (issue 13), written into its sheets/ folder.

The pixels and file formats are `batches.sheets` (a pure library); here: which images, in what
order (an animation's frames as the artist arranged them), where the files go, and the record
of what was exported (SheetExport rows, batch_info.json).
"""
from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings
from django.db import transaction
from PIL import Image as PILImage

from batches.models import Image, Job, SheetExport
from batches.numbers import MAX_ID, NumberError, parse_id_list, parse_int
from batches.services import outputs
from batches.sheets import (Frame, SheetError, Tag, aseprite_json, export_apng, export_gif, export_webp, pack_sheet,
                            tiled_tileset)

FORMATS = ("aseprite-array", "aseprite-hash", "tiled")
LOOPS = ("loop", "pingpong", "once")
DEFAULT_FPS = 10


@dataclass
class SheetRequest:
    """What to pack and how; the same for the CLI, the job page and the gallery."""

    approved: bool = False
    image_ids: list[int] | None = None
    layout: str = "grid"
    columns: int | None = None
    cell: tuple[int, int] | None = None
    padding: int = 0
    extrude: int = 0
    fmt: str = "aseprite-array"
    gif: bool = False
    apng: bool = False
    webp: bool = False
    animation: bool = False  # the frames in the artist's order, without dropped ones, tagged
    name: str = ""

    def problems(self) -> dict[str, str]:
        found = {}
        if self.layout not in ("grid", "packed"):
            found["layout"] = f"{self.layout!r}: use grid or packed"
        if self.fmt not in FORMATS:
            found["format"] = f"{self.fmt!r}: use one of {', '.join(FORMATS)}"
        if self.columns is not None and not 1 <= self.columns <= 1000:
            found["columns"] = f"{self.columns}: give 1 to 1000 columns"
        if not 0 <= self.padding <= 64:
            found["padding"] = f"{self.padding}: give 0 to 64 pixels"
        if not 0 <= self.extrude <= 16:
            found["extrude"] = f"{self.extrude}: give 0 to 16 pixels"
        return found


@dataclass
class SheetFiles:
    export: SheetExport | None
    files: list[Path] = field(default_factory=list)
    frames: int = 0
    size: tuple[int, int] = (0, 0)


def animation_settings(job: Job) -> dict:
    data = dict(job.animation or {})
    return {"fps": data.get("fps") or DEFAULT_FPS, "loop": data.get("loop") or "loop",
            "onion": bool(data.get("onion", False))}


def set_animation(job: Job, *, fps: int | None = None, loop: str | None = None, onion: bool | None = None) -> dict:
    """Change how the job's frames play; returns the settings. Raises SheetError naming the field."""
    current = animation_settings(job)
    if fps is not None:
        if not 1 <= fps <= 60:
            raise SheetError(f"fps: {fps}: give 1 to 60 frames per second")
        current["fps"] = fps
    if loop is not None:
        if loop not in LOOPS:
            raise SheetError(f"loop: {loop!r}: use {', '.join(LOOPS)}")
        current["loop"] = loop
    if onion is not None:
        current["onion"] = bool(onion)
    Job.objects.filter(pk=job.pk).update(animation=current)
    job.animation = current
    return current


def frames_in_order(job: Job, *, include_dropped: bool = False):
    """The job's images as animation frames: the artist's order (frame_order), else by sequence."""
    images = Image.objects.filter(job_id=job.pk)
    if not include_dropped:
        images = images.filter(frame_dropped=False)
    return sorted(images, key=lambda i: (i.frame_order if i.frame_order is not None else i.sequence, i.sequence))


def set_frame_order(job: Job, *, order: list[int], dropped: list[int]) -> list[int]:
    """Keep the artist's frame order and dropped frames in the rows (files are never renamed).

    `order` lists the job's image ids in play order (the kept ones); `dropped` the ones left out.
    Every id must belong to the job. Returns the kept order.
    """
    known = set(Image.objects.filter(job_id=job.pk).values_list("pk", flat=True))
    strangers = [i for i in [*order, *dropped] if i not in known]
    if strangers:
        raise SheetError(f"frames: job {job.pk} has no image {', '.join(map(str, strangers))}")
    if set(order) & set(dropped):
        raise SheetError("frames: an image cannot be both kept and dropped")
    with transaction.atomic():
        for place, pk in enumerate(order, start=1):
            Image.objects.filter(pk=pk).update(frame_order=place, frame_dropped=False)
        Image.objects.filter(pk__in=dropped).update(frame_dropped=True)
    return order


def _frame_image(image: Image) -> PILImage.Image:
    """The sprite when there is one, else the original (a job without finishing)."""
    relative = image.sprite_path if image.sprite_state == Image.Sprite.DONE and image.sprite_path else image.file_path
    with outputs.open_output(relative) as fh:
        picture = PILImage.open(io.BytesIO(fh.read()))
        picture.load()
    return picture.convert("RGBA")


def _select(job: Job, request: SheetRequest) -> list[Image]:
    if request.animation:
        images = frames_in_order(job)
        if request.image_ids:
            images = [i for i in images if i.pk in set(request.image_ids)]
    else:
        query = Image.objects.filter(job_id=job.pk).order_by("sequence")
        if request.image_ids:
            query = query.filter(pk__in=request.image_ids)
        images = list(query)
    if request.approved:
        images = [i for i in images if i.review == Image.Review.APPROVED]
    return images


def export_job(job: Job, request: SheetRequest, *, out: Path | None = None, by: str = "") -> SheetFiles:
    """Pack the job's sprites into a sheet with its atlas (and GIF / APNG / WebP for an animation).

    Files go to the job's sheets/ folder (recorded as a SheetExport and in batch_info.json), or
    to `out` (a folder, or a .png path whose stem names the files) for the command line.
    Raises SheetError with a message that says what to change; nothing is written then.
    """
    if request.problems():
        field_name, message = next(iter(request.problems().items()))
        raise SheetError(f"{field_name}: {message}")
    images = _select(job, request)
    if not images:
        what = "approved images" if request.approved else "images"
        raise SheetError(f"job {job.pk} has no {what} to pack: select at least one image"
                         + (" (approve some first, or leave out --approved)" if request.approved else ""))
    fps = animation_settings(job)["fps"]
    duration = round(1000 / fps)
    frames = [Frame(name=Path(i.file_path).name, image=_frame_image(i), duration=duration) for i in images]
    limit = (settings.SHEET_MAX_SIZE, settings.SHEET_MAX_SIZE)
    grid = request.layout == "grid"
    sheet = pack_sheet(frames, layout=request.layout, columns=request.columns if grid else None,
                       cell=request.cell if grid else None, padding=request.padding, extrude=request.extrude,
                       max_size=limit)
    kind = SheetExport.Kind.TILESET if request.fmt == "tiled" else (
        SheetExport.Kind.ANIMATION if request.animation else SheetExport.Kind.SHEET)
    stem = request.name or _stem(kind, request)
    folder, stem = _target(job, out, stem)
    written = _write_files(job, sheet, frames, request, folder, stem)
    export = None
    if out is None:
        export, _ = SheetExport.objects.update_or_create(
            job=job, name=stem, defaults=dict(
                kind=kind, files=[outputs.relative(p) for p in written], frames=len(frames),
                width=sheet.image.width, height=sheet.image.height, by=by[:150],
                options={"layout": request.layout, "columns": request.columns, "cell": request.cell,
                         "padding": request.padding, "extrude": request.extrude, "format": request.fmt,
                         "approved": request.approved, "images": request.image_ids, "fps": fps,
                         "loop": animation_settings(job)["loop"]}))
        outputs.write_batch_info(job)
    return SheetFiles(export=export, files=written, frames=len(frames), size=sheet.image.size)


def _stem(kind: str, request: SheetRequest) -> str:
    suffix = "_approved" if request.approved else ("_selection" if request.image_ids else "")
    return f"{kind}{suffix}_{request.layout}"


def _target(job: Job, out: Path | None, stem: str) -> tuple[Path, str]:
    if out is None:
        return outputs.job_dir(job) / "sheets", stem
    out = Path(out)
    if out.suffix.lower() == ".png":
        return out.parent, out.stem
    return out, stem


def _write_files(job: Job, sheet, frames: list[Frame], request: SheetRequest, folder: Path, stem: str) -> list[Path]:
    """Encode everything first, then write each file atomically: an error leaves nothing behind."""
    png = io.BytesIO()
    sheet.image.save(png, format="PNG")  # optimize=True: 4x the time for a file ~the same size
    blobs: dict[str, bytes] = {f"{stem}.png": png.getvalue()}
    loop = animation_settings(job)["loop"]
    if request.fmt == "tiled":
        if sheet.cell is None:
            raise SheetError("format: a Tiled tileset needs tiles of one size: use --layout grid (and --cell WxH)")
        tsx, tiled = tiled_tileset(sheet, name=job.name or stem, image_name=f"{stem}.png", tile_w=sheet.cell[0],
                                   tile_h=sheet.cell[1])
        blobs[f"{stem}.tsx"] = tsx.encode()
        blobs[f"{stem}.tsj"] = _json(tiled)
    else:
        tags = []
        if request.animation:
            direction = "pingpong" if loop == "pingpong" else "forward"
            tags = [Tag(name=job.name or "animation", start=0, end=len(frames) - 1, direction=direction)]
        layout = "hash" if request.fmt == "aseprite-hash" else "array"
        blobs[f"{stem}.json"] = _json(aseprite_json(sheet, image_name=f"{stem}.png", layout=layout, tags=tags))
    cell = sheet.cell or _largest(frames)  # frames of one animation share a cell: no jumping
    if request.gif:
        blobs[f"{stem}.gif"] = export_gif(frames, loop=loop, cell=cell)
    if request.apng:
        blobs[f"{stem}.apng.png"] = export_apng(frames, loop=loop, cell=cell)
    if request.webp:
        blobs[f"{stem}.webp"] = export_webp(frames, loop=loop, cell=cell)
    written = []
    for name, data in blobs.items():
        path = folder / name
        if request_inside_outputs(folder):
            outputs.atomic_write(path, data)
        else:
            _plain_write(path, data)
        written.append(path)
    return written


def _largest(frames: list[Frame]) -> tuple[int, int]:
    return max(f.image.width for f in frames), max(f.image.height for f in frames)


def request_inside_outputs(folder: Path) -> bool:
    try:
        outputs.contained(folder)
        return True
    except outputs.OutsideOutputRoot:
        return False


def _plain_write(path: Path, data: bytes) -> None:
    """A file the user asked for outside OUTPUT_ROOT (the CLI's -o): temp file and rename too."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


def _json(payload: dict) -> bytes:
    return json.dumps(payload, indent=2).encode() + b"\n"


def job_exports(job: Job) -> list[SheetExport]:
    return list(SheetExport.objects.filter(job=job).order_by("-created_at"))


# --- The pages' doors (issue 13): the job page's Sheets and Animation cards, the gallery's selection ---

MAX_FRAMES = 256  # frames the job page arranges and plays; a bigger job is packed as a sheet instead
_CELL_TEXT = re.compile(r"([0-9]{1,5})[xX×]([0-9]{1,5})")
_TRUE = ("1", "true", "on", "yes")


def _flag(data: Mapping, name: str) -> bool:
    return str(data.get(name, "")).strip().lower() in _TRUE


def _whole(data: Mapping, name: str, *, default: int | None, minimum: int, maximum: int) -> int | None:
    text = str(data.get(name) or "").strip()
    if not text:
        return default
    try:
        number = parse_int(text, field=name)
    except NumberError:
        raise SheetError(f"{name}: {text[:20]!r} is not a whole number: give {minimum} to {maximum}") from None
    if not minimum <= number <= maximum:
        raise SheetError(f"{name}: {number}: give {minimum} to {maximum}")
    return number


def sheet_request_from(data: Mapping, *, image_ids: list[int] | None = None, name: str = "") -> SheetRequest:
    """A SheetRequest from a form's fields (layout, columns, cell "WxH", padding, extrude, format, gif,
    apng, webp, approved, animation); blank fields take the defaults. Raises SheetError naming the field."""
    cell = None
    cell_text = str(data.get("cell") or "").strip()
    if cell_text:
        match = _CELL_TEXT.fullmatch(cell_text)
        if not match or not all(1 <= int(v) <= 4096 for v in match.groups()):
            raise SheetError(f"cell: {cell_text[:20]!r}: give the cell as WxH in pixels, e.g. 64x64")
        cell = (int(match.group(1)), int(match.group(2)))
    return SheetRequest(
        approved=_flag(data, "approved"), image_ids=image_ids,
        layout=str(data.get("layout") or "grid").strip(),
        columns=_whole(data, "columns", default=None, minimum=1, maximum=1000), cell=cell,
        padding=_whole(data, "padding", default=0, minimum=0, maximum=64),
        extrude=_whole(data, "extrude", default=0, minimum=0, maximum=16),
        fmt=str(data.get("format") or FORMATS[0]).strip(),
        gif=_flag(data, "gif"), apng=_flag(data, "apng"), webp=_flag(data, "webp"),
        animation=_flag(data, "animation"), name=name)


def export_from_form(job: Job, data: Mapping, *, by: str = "") -> SheetFiles:
    """The job page's export: the form's request, into the job's sheets/ folder. Raises SheetError."""
    return _export(job, sheet_request_from(data), by=by)


def _export(job: Job, request: SheetRequest, *, out: Path | None = None, by: str = "") -> SheetFiles:
    """export_job, with a sprite or image file gone from disk said as a SheetError (nothing is written)."""
    try:
        return export_job(job, request, out=out, by=by)
    except outputs.OutsideOutputRoot:
        raise SheetError("frames: an image of the selection leads outside the output folder: it was refused") from None
    except OSError as exc:
        raise SheetError(f"frames: an image file is missing from the output folder ({exc}): "
                         f"re-finish the job or leave that image out") from None


def animation_from_form(job: Job, data: Mapping) -> dict:
    """fps, loop and onion from the player's form; an absent field keeps its setting. Raises SheetError."""
    fps = _whole(data, "fps", default=None, minimum=1, maximum=60)
    loop = str(data.get("loop") or "").strip() or None
    onion = _flag(data, "onion") if str(data.get("onion") or "").strip() else None
    return set_animation(job, fps=fps, loop=loop, onion=onion)


def frames_from_form(job: Job, data: Mapping) -> list[int]:
    """The frame strip's save: `order` (kept ids in play order) and `dropped`, each repeated or
    comma-separated. Raises SheetError."""
    try:
        order = parse_id_list(_values(data, "order"), what="an image id")
        dropped = parse_id_list(_values(data, "dropped"), what="an image id")
    except NumberError as exc:
        raise SheetError(f"frames: {exc}") from None
    if not order and not dropped:
        raise SheetError("frames: send the order of the frames (order=ID,ID,...)")
    return set_frame_order(job, order=order, dropped=dropped)


def _values(data: Mapping, name: str) -> list:
    return data.getlist(name) if hasattr(data, "getlist") else [data.get(name, "")]


def frame_strip(job: Job) -> list[Image]:
    """The job page's frame strip: the kept frames in play order, then the dropped ones (greyed)."""
    frames = frames_in_order(job, include_dropped=True)
    return [f for f in frames if not f.frame_dropped] + [f for f in frames if f.frame_dropped]


@dataclass
class AnimationCard:
    settings: dict
    frames: list[Image]
    primary: bool        # a job of the animation profile: the card is open; other jobs open it on demand
    too_many: int = 0    # the job's image count when it is past MAX_FRAMES (no strip is drawn then)


def animation_card(job: Job) -> AnimationCard | None:
    """What the job page's Animation card draws; None for a job with fewer than two images."""
    count = Image.objects.filter(job_id=job.pk).count()
    primary = job.profile == "animation"
    if count < 2 and not (primary and count):
        return None
    if count > MAX_FRAMES:
        return AnimationCard(settings=animation_settings(job), frames=[], primary=primary, too_many=count)
    return AnimationCard(settings=animation_settings(job), frames=frame_strip(job), primary=primary)


def sheets_card(job: Job) -> list[SheetExport]:
    """The job's exports, newest first, each with `file_names` (the names its download URLs take)."""
    exports = job_exports(job)
    for export in exports:
        export.file_names = [PurePosixPath(f).name for f in export.files]
    return exports


def export_file(job: Job, export_id: int, name: str) -> str | None:
    """The stored path of the file `name` of the job's export `export_id`; None unless that export
    lists it (a file in sheets/ that no export names is never served by name)."""
    if export_id > MAX_ID:
        return None
    export = SheetExport.objects.filter(pk=export_id, job_id=job.pk).only("files").first()
    if export is None:
        return None
    return next((f for f in export.files if PurePosixPath(f).name == name), None)


def selection_sheet(*, user, ids: list[int]) -> tuple[IO[bytes], str, SheetFiles]:
    """The gallery's "Download sheet": the selected images of one job packed into a sheet, as a zip.

    The sheet is named selection_<n>. For the job's owner (or staff) it is written into the job's
    sheets/ folder and listed on the job page like any export; anyone else who may look at the
    job gets the same zip built in a temporary folder, and the job is left as it was.
    Raises SheetError ("select images of one job") for a selection across jobs or unknown ids.
    """
    rows = dict(Image.objects.filter(pk__in=ids).values_list("pk", "job_id"))
    missing = [i for i in ids if i not in rows]
    if missing:
        raise SheetError(f"select images of one job: there is no image {', '.join(map(str, missing[:10]))}")
    jobs = set(rows.values())
    if len(jobs) != 1:
        raise SheetError(f"select images of one job: the selection holds images of {len(jobs)} jobs")
    job = Job.objects.get(pk=jobs.pop())
    request = SheetRequest(image_ids=ids, name=f"selection_{len(ids)}")
    folder = outputs.job_dir_name(job) if not job.output_dir else job.output_dir
    if user.is_staff or job.owner_id == user.pk:
        made = _export(job, request, by=user.get_username())
        return _zip(made.files, folder), f"{folder}_{request.name}.zip", made
    with tempfile.TemporaryDirectory(prefix="dgxpixels-sheet-") as tmp:
        made = _export(job, request, out=Path(tmp))
        return _zip(made.files, folder), f"{folder}_{request.name}.zip", made


def _zip(files: list[Path], folder: str) -> IO[bytes]:
    """The written files in <job folder>/sheets/ inside a zip (anonymous temp file, rewound)."""
    archive = tempfile.TemporaryFile(prefix="dgxpixels-sheet-zip-")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            inside = request_inside_outputs(path.parent)
            with (outputs.open_output(path) if inside else open(path, "rb")) as fh:
                zf.writestr(f"{folder}/sheets/{path.name}", fh.read())
    archive.seek(0)
    return archive
