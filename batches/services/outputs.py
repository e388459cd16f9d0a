"""The seed's output layout on disk, written atomically.

<OUTPUT_ROOT>/batches/batch_YYYYMMDD_HHMMSS_<id>/
    images/sprite_0001_<seed>.png      thumbs/sprite_0001_<seed>.png
    metadata/sprite_0001.json          batch_info.json
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

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


def resolve(relative_path: str) -> Path:
    """Turn a stored relative path into an absolute one that cannot escape OUTPUT_ROOT."""
    root = output_root().resolve()
    path = (root / relative_path).resolve()
    if root != path and root not in path.parents:
        raise ValueError(f"{relative_path!r} is outside the output root")
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: never a half-written file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
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
            "sequence", "seed", "prompt", "file_path", "generation_time", "node"
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
        "images": [
            {"sequence": i["sequence"], "seed": i["seed"], "prompt": i["prompt"],
             "file": i["file_path"], "generation_time_s": i["generation_time"], "node": i["node"]}
            for i in images
        ],
        "updated_at": timezone.now(),
    }
    path = folder / "batch_info.json"
    atomic_write_json(path, payload)
    return path


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
        "base_seed": job.base_seed,
    }
