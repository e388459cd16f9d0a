"""Taking over the units of a GPU node that died (scale-out).

A node's units in flight carry a heartbeat. When it stops for NODE_STALE_SECONDS, another node
claims each unit with a compare-and-set (so only one node takes it) and reconciles it against the
dead node's ComfyUI, which may well still be running: a finished prompt is collected from there,
a queued one is deleted there and requeued, a running one is left to finish and collected on a
later pass, and one that ComfyUI no longer knows (or that cannot be reached) is requeued.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from batches.comfyui import ComfyUIClient, ComfyUIError
from batches.models import Job, Unit
from batches.services import recording
from batches.services.events import publish

log = logging.getLogger("batches.reclaim")


def _stale(*, exclude_node: str):
    cutoff = timezone.now() - timedelta(seconds=settings.NODE_STALE_SECONDS)
    return Unit.objects.filter(status__in=Unit.IN_FLIGHT, heartbeat_at__lt=cutoff).exclude(node=exclude_node)


def stale_units(*, exclude_node: str) -> list[Unit]:
    return list(_stale(exclude_node=exclude_node).select_related("job").order_by("id")[:50])


def stale_units_exist(*, exclude_node: str) -> bool:
    """Cheap enough for every lease renewal: an idle node then wakes to reclaim them."""
    return _stale(exclude_node=exclude_node).exists()


def reclaim_unit(unit: Unit, *, node: str) -> str:
    """Reconcile one stale unit; returns what happened: collected, requeued, running, lost-race."""
    dead_node, cutoff = unit.node, timezone.now() - timedelta(seconds=settings.NODE_STALE_SECONDS)
    # Touch the heartbeat in the same compare-and-set: a second node racing for it loses.
    won = Unit.objects.filter(pk=unit.pk, node=dead_node, status__in=Unit.IN_FLIGHT,
                              heartbeat_at__lt=cutoff).update(heartbeat_at=timezone.now())
    if not won:
        return "lost-race"
    client = ComfyUIClient(unit.comfyui_url, client_id=f"dgxpixels-reclaim-{node}", timeout=3.0, retries=0) \
        if unit.comfyui_url else None
    where = None
    if client is not None:
        try:
            where = client.locate(unit.prompt_id)
        except ComfyUIError as exc:
            log.info("%s: %s's ComfyUI does not answer (%s)", unit, dead_node, exc)
    if where == "done":
        entry = client.history(unit.prompt_id)
        if entry is not None and entry.status == "success":
            recording.record_unit(unit, entry, client=client, node=dead_node)
            publish("unit_reclaimed", job_id=unit.job_id, unit=unit.pk, from_node=dead_node, by=node,
                    outcome="collected")
            _close(unit)
            return "collected"
    if where == "running":
        return "running"  # its heartbeat now looks fresh; a later pass collects it
    if where == "pending":
        try:
            client.delete_pending([unit.prompt_id])
        except ComfyUIError:
            pass
    Unit.objects.filter(pk=unit.pk, status__in=Unit.IN_FLIGHT).update(
        status=Unit.Status.PENDING, node="", started_at=None, steps_done=0,
        error=f"reclaimed from {dead_node}, which stopped responding",
    )
    publish("unit_reclaimed", job_id=unit.job_id, unit=unit.pk, from_node=dead_node, by=node, outcome="requeued")
    return "requeued"


def _close(unit: Unit) -> None:
    _close_job(Job.objects.get(pk=unit.job_id))


def _close_job(job: Job) -> None:
    from batches.services.outputs import write_batch_info

    job.refresh_counts()
    final = job.finish_if_complete()
    try:
        write_batch_info(job)
    except OSError as exc:
        log.warning("could not write batch_info.json for %s: %s", job, exc)
    if final:
        publish("job_finished", job_id=job.pk, status=final, images_done=job.images_done,
                images_failed=job.images_failed, images_planned=job.images_planned)


def _left_open():
    """Active jobs whose units have all ended: a worker died after recording its last unit and
    before closing the job (the two are separate writes), and no unit is left to bring it back."""
    return (Job.objects.filter(status__in=Job.ACTIVE, finished_at__isnull=True, units__isnull=False)
            .exclude(units__status__in=Unit.OPEN).distinct())


def jobs_left_open_exist() -> bool:
    """Cheap enough for every lease renewal, like stale_units_exist."""
    return _left_open().exists()


def close_jobs_left_open() -> int:
    """Close (and announce) every job a dead worker left open; returns how many were closed."""
    closed = 0
    for job in _left_open().select_related("owner")[:50]:
        log.warning("%s: every unit had ended but the job was still open; closing it", job)
        _close_job(job)
        closed += 1
    return closed
