"""The sprite worker's work: finish one claimed image into `sprites/<its file name>`.

Runs in `manage.py sprite_worker`, a process of its own, so the GPU worker never waits for it.
The original PNG is only read; the sprite is written beside it atomically (a re-finish replaces
the previous sprite in one rename), and the image's metadata JSON gains the run's settings and
what was detected, keeping earlier runs in `finish_history`.
"""
from __future__ import annotations

import io
import json
import logging
import time
from typing import Callable

from django.db import close_old_connections
from django.utils import timezone

from batches.models import Image, Job
from batches.services import outputs
from batches.services.events import publish
from batches.sprites import plan as plans
from batches.sheets import seam_score
from batches.sprites import SpriteError, batch_palette, finish_image

log = logging.getLogger("batches.finishing")

TILESET_PROFILE = "tileset"


def sprite_name(image: Image) -> str:
    return f"sprites/{outputs.image_name(image.sequence, image.seed)}"


def release_waiting() -> int:
    """Images waiting for their whole batch (a job-wide palette) go ahead once the job has ended."""
    return Image.objects.filter(sprite_state=Image.Sprite.WAITING, job__status__in=Job.FINISHED).update(
        sprite_state=Image.Sprite.PENDING)


def finish_one(image: Image) -> bool:
    """Finish a claimed image; returns True when its sprite was recorded (False: failed or re-finished)."""
    plan = image.sprite_finish or image.job.finish or {}
    started = time.perf_counter()
    try:
        settings = plans.settings(plan)
        palette = _locked_palette(image.job, plan, settings)
        with outputs.open_output(image.file_path) as fh:
            original = fh.read()
        result = finish_image(original, settings, locked_palette=palette)
        buf = io.BytesIO()
        result.image.save(buf, format="PNG", optimize=True)
        folder = outputs.job_dir(image.job)
        path = folder / sprite_name(image)
        outputs.atomic_write(path, buf.getvalue())
    except (SpriteError, plans.FinishError, OSError, ValueError) as exc:
        message = f"{image}: {exc}"
        if image.sprite_failed(message):
            publish("sprite_failed", job_id=image.job_id, image=image.pk, sequence=image.sequence, error=message)
        log.warning("finishing failed: %s", message)
        return False
    info = {**result.info(), "settings": plan, "run": image.sprite_run, "sprite": outputs.relative(path),
            "seconds": round(time.perf_counter() - started, 4), "finished_at": timezone.now().isoformat()}
    if image.job.profile == TILESET_PROFILE:  # how well it repeats, for the gallery's seam sort
        info["seam_score"] = round(seam_score(result.image), 4)
    if not image.sprite_done(path=outputs.relative(path), info=info):
        return False  # re-finished while it ran: claimed again with the new settings
    if "seam_score" in info:
        Image.objects.filter(pk=image.pk).update(seam_score=info["seam_score"])
    _record_in_metadata(image, info)
    publish("sprite_ready", job_id=image.job_id, image=image.pk, sequence=image.sequence,
            width=result.image.width, height=result.image.height, colors=len(result.palette), run=image.sprite_run)
    return True


def _locked_palette(job: Job, plan: dict, settings) -> list[tuple[int, int, int]] | None:
    """The colours every sprite of the job shares, when the plan asks for that (else None)."""
    if plan.get("palette_colors"):
        return [_rgb(c) for c in plan["palette_colors"]]
    if not plans.needs_whole_batch(plan):
        return None
    job.refresh_from_db(fields=["finish_palette"])
    if not job.finish_palette:
        originals = []
        for relative in job.images.order_by("sequence").values_list("file_path", flat=True):
            try:
                with outputs.open_output(relative) as fh:
                    originals.append(fh.read())
            except (OSError, ValueError):
                continue
        colors = batch_palette(originals, settings, plans.batch_colors(plan))
        # Computed once: another sprite worker that got there first wins, and both use its colours.
        Job.objects.filter(pk=job.pk, finish_palette__isnull=True).update(
            finish_palette=["#%02x%02x%02x" % tuple(c) for c in colors])
        job.refresh_from_db(fields=["finish_palette"])
    return [_rgb(c) for c in job.finish_palette]


def _rgb(color: str) -> tuple[int, int, int]:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _record_in_metadata(image: Image, info: dict) -> None:
    """The run's settings and results go into the image's metadata (row and JSON file)."""
    settings = dict(info.get("settings") or {})
    if settings.get("palette"):  # "palette" is the colours used, below; the name it came from stays
        settings["palette_name"] = settings["palette"]
    finish = {**settings, **{k: v for k, v in info.items() if k != "settings"}}
    metadata = dict(image.metadata or {})
    history = list(metadata.get("finish_history") or [])
    if metadata.get("finish"):
        history.append(metadata["finish"])
    metadata.update(finish=finish, finish_history=history)
    Image.objects.filter(pk=image.pk).update(metadata=metadata)
    if not image.metadata_path:
        return
    try:
        with outputs.open_output(image.metadata_path) as fh:
            on_disk = json.load(fh)
        previous = on_disk.get("finish")
        on_disk["finish_history"] = list(on_disk.get("finish_history") or []) + ([previous] if previous else [])
        on_disk["finish"] = finish
        outputs.atomic_write_json(outputs.output_root() / image.metadata_path, on_disk)
    except (OSError, ValueError) as exc:
        log.warning("%s: could not add the finish to its metadata file: %s", image, exc)


def run(*, stop: Callable[[], bool], once: bool = False, idle_sleep: float = 0.5,
        say: Callable[[str], None] | None = None) -> int:
    """Finish images until `stop()` (or, with `once`, until none is left); returns sprites made."""
    made = 0
    touched: set[int] = set()
    last_info = time.monotonic()
    while not stop():
        close_old_connections()
        release_waiting()
        image = Image.claim_sprite()
        if image is not None:
            if finish_one(image):
                made += 1
                if say:
                    info = Image.objects.filter(pk=image.pk).values_list("sprite_info", flat=True).first() or {}
                    say(f"job {image.job_id}: {image} -> {'x'.join(map(str, info.get('size', [])))} sprite, "
                        f"{len(info.get('palette', []))} colours, {info.get('seconds', 0) * 1000:.0f} ms")
            touched.add(image.job_id)
        if touched and (image is None or time.monotonic() - last_info > 2.0):
            _write_batch_infos(touched)
            touched.clear()
            last_info = time.monotonic()
        if image is None:
            if once:
                break
            time.sleep(idle_sleep)
    if touched:
        _write_batch_infos(touched)
    return made


def _write_batch_infos(job_ids: set[int]) -> None:
    for job in Job.objects.filter(pk__in=job_ids).select_related("owner"):
        try:
            outputs.write_batch_info(job)
        except OSError as exc:
            log.warning("could not write batch_info.json for %s: %s", job, exc)
