"""The seed's output layout on disk, written atomically.

<OUTPUT_ROOT>/batches/batch_YYYYMMDD_HHMMSS_<id>/
    images/sprite_0001_<seed>.png      thumbs/sprite_0001_<seed>.png
    metadata/sprite_0001.json          batch_info.json
"""
from __future__ import annotations

import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

from django.conf import settings
from django.utils import timezone
from PIL import Image as PILImage

THUMB_MAX = 256


class OutputWriteError(OSError):
    """The output folder cannot be written; names the path and the OS error."""


def output_root() -> Path:
    return Path(settings.OUTPUT_ROOT)


def job_dir_name(job) -> str:
    return f"batch_{job.created_at:%Y%m%d_%H%M%S}_{job.pk}"


def job_dir(job) -> Path:
    return output_root() / "batches" / (job.output_dir or job_dir_name(job))


def image_name(sequence: int, seed: int) -> str:
    return f"sprite_{sequence:04d}_{seed}.png"


def metadata_name(sequence: int) -> str:
    return f"sprite_{sequence:04d}.json"


def relative(path: Path) -> str:
    return str(path.relative_to(output_root()))


class OutsideOutputRoot(ValueError):
    """A path that leads outside OUTPUT_ROOT (a `..` or a symlink pointing elsewhere)."""


def contained(path: Path) -> Path:
    """`path` with every symlink resolved, refused unless it stays inside OUTPUT_ROOT.

    The one containment check for both sides: what the app serves or packs, and what the worker
    writes. A symlinked job folder, image or batch_info.json that points elsewhere is refused.
    """
    root = output_root().resolve()
    real = Path(path).resolve()
    if real != root and root not in real.parents:
        raise OutsideOutputRoot(f"{path} leads outside the output folder {root} (to {real})")
    return real


def resolve(relative_path: str) -> Path:
    """Turn a stored relative path into an absolute one that cannot escape OUTPUT_ROOT."""
    return contained(output_root() / relative_path)


def open_output(path: Path | str) -> IO[bytes]:
    """Open a file under OUTPUT_ROOT for reading; raise FileNotFoundError unless it is a regular file
    inside OUTPUT_ROOT (OutsideOutputRoot when it leads outside). A relative path is taken as stored
    in a row, relative to OUTPUT_ROOT.

    The file is opened by its resolved path without following a final symlink, and checked again
    after opening, so a link swapped in between the check and the open is refused too.
    """
    path = Path(path)
    real = contained(path if path.is_absolute() else output_root() / path)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # NONBLOCK: a FIFO must not hang us
    except OSError as exc:
        raise FileNotFoundError(f"{path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def file_mode() -> int:
    """The mode of every output file: DGX_OUTPUT_FILE_MODE, else what the process umask allows."""
    if settings.OUTPUT_FILE_MODE is not None:
        return settings.OUTPUT_FILE_MODE
    return 0o666 & ~_UMASK


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import, before any thread could race on os.umask


def _writable_folder(folder: Path) -> None:
    """Create `folder` (and parents) and check it, once created, still lies inside OUTPUT_ROOT."""
    try:
        contained(folder)
        folder.mkdir(parents=True, exist_ok=True)
        contained(folder)  # a symlink created in between would show here
    except OutsideOutputRoot as exc:
        raise OutputWriteError(f"refusing to write into {folder}: {exc}; remove the link, then retry") from exc
    except OSError as exc:
        raise OutputWriteError(f"cannot write {folder}: {exc.strerror or exc}") from exc


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: never a half-written file.

    The folder must lie inside OUTPUT_ROOT once symlinks are resolved; the file gets file_mode()
    (mkstemp's own 0600 would hide it from the studio's group).
    """
    _writable_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), file_mode())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc


def atomic_write_json(path: Path, payload: dict) -> None:
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode() + b"\n")


def make_thumbnail(png: bytes) -> tuple[bytes, int, int]:
    """A nearest-neighbour thumbnail (pixel art stays crisp): an integer downscale to <= 256 px."""
    with PILImage.open(io.BytesIO(png)) as img:
        img.load()
        width, height = img.size
        factor = 1
        while max(width, height) / factor > THUMB_MAX:
            factor += 1
        thumb = img if factor == 1 else img.resize(
            (max(1, width // factor), max(1, height // factor)), PILImage.NEAREST
        )
        buf = io.BytesIO()
        thumb.save(buf, format="PNG", optimize=False, compress_level=1)
        return buf.getvalue(), width, height


def write_batch_info(job) -> Path:
    """Aggregate the job from the rows; rewritten as the job progresses."""
    from batches.models import Image

    folder = job_dir(job)
    images = list(
        Image.objects.filter(job_id=job.pk).order_by("sequence").values(
            "sequence", "seed", "prompt", "file_path", "generation_time", "node", "sprite_state", "sprite_path",
            "sprite_info", "metadata",
        )
    )
    elapsed = None
    if job.started_at:
        elapsed = ((job.finished_at or timezone.now()) - job.started_at).total_seconds()
    gen_times = [i["generation_time"] for i in images if i["generation_time"]]
    payload = {
        "batch_id": job.output_dir or job_dir_name(job),
        "job_id": job.pk,
        "name": job.name,
        "status": job.status,
        "owner": job.owner.get_username() if job.owner_id else None,
        "priority": job.priority_name,
        "profile": job.profile,
        "workflow": job.workflow,
        "parameters": job_parameters(job),
        "prompts": job.prompts,
        "count_per_prompt": job.count,
        "images_planned": job.images_planned,
        "images_done": len(images),
        "images_failed": job.images_failed,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "elapsed_seconds": elapsed,
        "throughput_images_per_min": (len(images) * 60.0 / elapsed) if elapsed else None,
        "average_generation_time_s": (sum(gen_times) / len(gen_times)) if gen_times else None,
        "finish": job.finish,
        "finish_palette": job.finish_palette,
        "sheets": _sheets(job),
        "images": [
            {"sequence": i["sequence"], "seed": i["seed"], "prompt": i["prompt"],
             "file": i["file_path"], "generation_time_s": i["generation_time"], "node": i["node"],
             "batch_size_chosen": (i["metadata"] or {}).get("batch_size_chosen"),
             "vram_free_gb": (i["metadata"] or {}).get("vram_free_gb"),
             **_sprite_entry(i)}
            for i in images
        ],
        "updated_at": timezone.now(),
    }
    path = folder / "batch_info.json"
    atomic_write_json(path, payload)
    return path


def _sheets(job) -> list[dict]:
    """The sheets exported into the job's sheets/ folder (services/sheets)."""
    from batches.models import SheetExport

    return [{"name": name, "kind": kind, "files": files, "frames": frames, "size": [w, h], "options": options}
            for name, kind, files, frames, w, h, options in SheetExport.objects.filter(job_id=job.pk).order_by("name")
            .values_list("name", "kind", "files", "frames", "width", "height", "options")]


def _sprite_entry(image: dict) -> dict:
    """An image's sprite in batch_info.json: its file once made, else its state."""
    if image["sprite_state"] == "done" and image["sprite_path"]:
        info = image["sprite_info"] or {}
        return {"sprite": image["sprite_path"], "sprite_size": info.get("size"),
                "sprite_colors": len(info.get("palette") or [])}
    return {"sprite_state": image["sprite_state"]} if image["sprite_state"] else {}


def job_parameters(job) -> dict:
    return {
        "negative_prompt": job.negative_prompt,
        "checkpoint": job.checkpoint,
        "lora": job.lora or None,
        "lora_strength_model": job.lora_strength_model if job.lora else None,
        "lora_strength_clip": job.lora_strength_clip if job.lora else None,
        "steps": job.steps,
        "cfg": job.cfg,
        "sampler": job.sampler,
        "scheduler": job.scheduler,
        "denoise": job.denoise,
        "width": job.width,
        "height": job.height,
        "batch_size": job.batch_size,
        "batch_auto": job.batch_auto,  # batch size "auto": batch_size is the largest; each unit picks its own
        "base_seed": job.base_seed,
    }
