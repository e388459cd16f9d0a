"""Operator verbs on the queue: cancel, stop after the current unit, pause, retry, requeue, priority."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from batches.models import ActionRequest, Job, Priority, QueueControl, Unit
from batches.services.events import publish
from batches.services.quotas import check_queue_quota


def job_cancel(job: Job, *, by: str = "") -> bool:
    """Cancel a job: queued units never run; the worker interrupts or deletes units in flight.

    Images already made are kept and shown as part of the cancelled job. Returns False when
    the job had already finished.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE).update(
            status=Job.Status.CANCELLED, updated_at=now, error=f"cancelled by {by}" if by else "cancelled"
        )
        if not changed:
            return False
        Unit.objects.filter(job_id=job.pk, status=Unit.Status.PENDING).update(
            status=Unit.Status.CANCELLED, finished_at=now
        )
    job.refresh_from_db()
    publish("job_cancelling", job_id=job.pk, by=by)
    _finish_if_idle(job)
    return True


def job_stop_after_current(job: Job, *, by: str = "") -> int:
    """Let the unit that is running finish; cancel everything of the job that has not started."""
    now = timezone.now()
    stopped = Unit.objects.filter(job_id=job.pk, status=Unit.Status.PENDING).update(
        status=Unit.Status.CANCELLED, finished_at=now
    )
    # A unit sent ahead to ComfyUI but not started yet is "not started" too: the worker sees the
    # CANCELLED status and deletes it from ComfyUI's queue.
    stopped += Unit.objects.filter(job_id=job.pk, status=Unit.Status.SUBMITTED).update(
        status=Unit.Status.CANCELLED, finished_at=now
    )
    publish("job_stopping", job_id=job.pk, by=by, units_stopped=stopped)
    _finish_if_idle(job)
    return stopped


def cancel_all_queued(*, by: str = "") -> int:
    """Cancel every job that has not started yet."""
    return sum(job_cancel(job, by=by) for job in Job.objects.filter(status=Job.Status.QUEUED))


def cancel_all(*, by: str = "") -> int:
    """Cancel every queued and running job."""
    return sum(job_cancel(job, by=by) for job in Job.objects.filter(status__in=Job.ACTIVE))


def stop_all_after_current(*, by: str = "") -> int:
    """Let the running unit finish; nothing else that is queued starts. Returns the jobs touched."""
    jobs = list(Job.objects.filter(status__in=Job.ACTIVE))
    for job in jobs:
        job_stop_after_current(job, by=by)
    return len(jobs)


def queue_pause(*, by: str = "") -> None:
    QueueControl.set_paused(True, by=by)
    publish("queue_paused", by=by)


def queue_resume(*, by: str = "") -> None:
    QueueControl.set_paused(False)
    publish("queue_resumed", by=by)
    from batches.tasks import wake_workers

    transaction.on_commit(wake_workers)


class ControlError(ValueError):
    """A verb that cannot apply; the message says why and what to do."""


def job_set_priority(job: Job, priority: str | int, *, by: str = "") -> None:
    """Move a job (and its units not started yet) to another priority level."""
    try:
        value = Priority.from_name(priority) if isinstance(priority, str) else Priority(priority)
    except ValueError:
        raise ControlError(f"unknown level {priority!r}: choose urgent, high, normal or low") from None
    if not job.is_active:
        raise ControlError(f"job {job.pk} already finished ({job.status}): nothing left to reorder")
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(priority=value, updated_at=timezone.now())
        Unit.objects.filter(job_id=job.pk, status=Unit.Status.PENDING).update(priority=value)
    job.priority = value
    publish("job_priority", job_id=job.pk, priority=value.label, by=by)


def job_retry_failed(job: Job, *, by: str = "", request_key: str = "") -> int:
    """Put a job's failed units back in the queue (after a fix: a new LoRA, a writable disk).

    The owner's queue limit applies (QuotaError). A repeat of one request (the same
    `request_key`: a double click) retries nothing more and returns the first answer.
    """
    result = _once(ActionRequest.Action.RETRY, job, request_key, by,
                   lambda: {"units": _retry_failed(job, by=by)})
    return result["units"]


def _retry_failed(job: Job, *, by: str) -> int:
    now = timezone.now()
    with transaction.atomic():
        failed = Unit.objects.filter(job_id=job.pk, status=Unit.Status.FAILED)
        check_queue_quota(user=job.owner, adding=failed.aggregate(n=Sum("batch_size"))["n"] or 0)
        retried = failed.update(
            status=Unit.Status.PENDING, attempts=0, error="", error_details=None, finished_at=None, node=""
        )
        if retried:
            Job.objects.filter(pk=job.pk).update(
                status=Job.Status.RUNNING if job.started_at else Job.Status.QUEUED,
                finished_at=None, error="", updated_at=now,
            )
    if retried:
        job.refresh_from_db()
        job.refresh_counts()
        publish("job_retry", job_id=job.pk, units=retried, by=by)
        from batches.tasks import wake_workers

        transaction.on_commit(wake_workers)
    return retried


def job_requeue(job: Job, *, owner=None, by: str = "", request_key: str = "") -> Job:
    """A new job with the same parameters (and the same seeds, when the original had a base seed).

    A repeat of one request (the same `request_key`: a double click) returns the job the first made.
    """
    result = _once(ActionRequest.Action.REQUEUE, job, request_key, by,
                   lambda: {"job": _requeue(job, owner=owner).pk})
    return Job.objects.get(pk=result["job"])


def _requeue(job: Job, *, owner) -> Job:
    from batches.services.submission import job_submit

    new = job_submit(
        owner=owner or job.owner, prompts=list(job.prompts), count=job.count, profile=job.profile,
        batch_size=job.batch_size, steps=job.steps, cfg=job.cfg, sampler=job.sampler,
        scheduler=job.scheduler, width=job.width, height=job.height, seed=job.base_seed,
        negative_prompt=job.negative_prompt, checkpoint=job.checkpoint or None, lora=job.lora or None,
        lora_strength=job.lora_strength_model if job.lora else None,
        lora_strength_clip=job.lora_strength_clip if job.lora else None, denoise=job.denoise,
        workflow=job.workflow, priority=job.priority, name=job.name, client=None,
    )
    Job.objects.filter(pk=new.pk).update(requeued_from=job)
    new.requeued_from = job
    return new


def _once(action: str, job: Job, key: str, by: str, run: Callable[[], dict]) -> dict:
    """Run `run` once per request key; a repeat gets the first run's answer.

    The claim and the work commit together: if the work fails, the key is free again. A repeat
    that arrives while the first still runs waits on the claim's row (the unique constraint) and
    then reads its answer.
    """
    key = (key or "").strip()[:64]
    if not key:
        return run()
    with transaction.atomic():
        try:
            with transaction.atomic():
                claim = ActionRequest.objects.create(action=action, job=job, key=key, by=by[:150])
        except IntegrityError:
            return ActionRequest.objects.get(action=action, job=job, key=key).result
        result = run()
        ActionRequest.objects.filter(pk=claim.pk).update(result=result)
    return result


def forget_action_requests(*, before: datetime) -> int:
    """Drop the keys of requests older than `before` (a double click is a matter of seconds)."""
    deleted, _ = ActionRequest.objects.filter(created_at__lt=before).delete()
    return deleted


def _finish_if_idle(job: Job) -> None:
    if not job.units.filter(status__in=Unit.IN_FLIGHT).exists():
        final = job.finish_if_complete()
        if final:
            publish("job_finished", job_id=job.pk, status=final, images_done=job.images_done,
                    images_failed=job.images_failed, images_planned=job.images_planned)
