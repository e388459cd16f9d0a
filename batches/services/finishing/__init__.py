"""Finishing: every image of a job becomes a game-ready sprite beside it (issue 12).

- plan.py: the settings, read the same way from every door;
- runner.py: the sprite worker's work (`manage.py sprite_worker`), off the GPU worker's path;
- here: what the rest of the app asks: an image's first state, re-finishing, a job's progress.
The pixels themselves are `batches.sprites`, a pure library.
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q

from batches.models import Image, Job
from batches.services.events import publish
from batches.sprites.plan import FinishError, build, describe, needs_whole_batch

__all__ = ["FinishError", "build", "describe", "initial_state", "job_refinish", "images_refinish",
           "sprite_counts", "is_finishing"]


def initial_state(job: Job) -> str:
    """The sprite state of an image just recorded for `job`."""
    if not job.finish:
        return Image.Sprite.NONE
    if needs_whole_batch(job.finish) and job.status not in Job.FINISHED:
        return Image.Sprite.WAITING
    return Image.Sprite.PENDING


def job_refinish(job: Job, *, finish: dict | None, by: str = "") -> int:
    """Rebuild every sprite of a job with new settings (None: keep the job's); no GPU involved.

    The job keeps the settings for images still to come; a palette computed from the batch is
    computed again. Returns how many images were queued for finishing.
    """
    plan = build(finish or {}, base=job.finish) if finish is not None else job.finish
    if not plan:
        raise FinishError("finish", f"job {job.pk} has no finishing settings: give some (e.g. --colors 16)")
    Job.objects.filter(pk=job.pk).update(finish=plan, finish_palette=None)
    job.finish, job.finish_palette = plan, None
    count = _queue(Image.objects.filter(job_id=job.pk), plan, job)
    publish("sprites_queued", job_id=job.pk, images=count, by=by, settings=describe(plan))
    return count


def images_refinish(*, user, ids: list[int], finish: dict | None) -> int:
    """Rebuild the sprites of selected images (each with its job's settings, changed by `finish`).

    All or nothing: an image of a job the user may not change refuses the whole selection.
    """
    images = Image.objects.filter(pk__in=ids).select_related("job")
    jobs = {image.job_id: image.job for image in images}
    if not user.is_staff and any(job.owner_id != user.pk for job in jobs.values()):
        raise PermissionDenied("only the job's owner or staff may re-finish its sprites")
    count = 0
    for job in jobs.values():
        base = job.finish or {}
        plan = build(finish or {}, base=base) if finish else base
        if not plan:
            raise FinishError("finish", f"job {job.pk} has no finishing settings: give some (e.g. --colors 16)")
        queued = _queue(images.filter(job_id=job.pk), plan, job)
        publish("sprites_queued", job_id=job.pk, images=queued, settings=describe(plan))
        count += queued
    return count


def _queue(images, plan: dict, job: Job) -> int:
    state = Image.Sprite.WAITING if needs_whole_batch(plan) and job.status not in Job.FINISHED \
        else Image.Sprite.PENDING
    # sprite_run + 1: a finisher still working on the old settings cannot record its result.
    return images.update(sprite_state=state, sprite_finish=plan, sprite_error="", sprite_run=F("sprite_run") + 1)


def sprite_counts(job_ids) -> dict[int, dict[str, int]]:
    """Per job: sprites done, open (waiting, pending, running) and failed; one query for a page."""
    rows = (Image.objects.filter(job_id__in=list(job_ids)).values("job_id").annotate(
        done=Count("id", filter=Q(sprite_state=Image.Sprite.DONE)),
        open=Count("id", filter=Q(sprite_state__in=Image.SPRITE_OPEN)),
        failed=Count("id", filter=Q(sprite_state=Image.Sprite.FAILED))))
    return {row["job_id"]: {"done": row["done"], "open": row["open"], "failed": row["failed"]} for row in rows}


def is_finishing(job: Job) -> bool:
    """Shown as "finishing" until every image of the job has its sprite (or failed)."""
    return bool(job.finish) and job.images.filter(sprite_state__in=Image.SPRITE_OPEN).exists()
