"""django-q2 tasks: thin. Each is a cheap, idempotent nudge; the rows hold the truth."""
from __future__ import annotations

import logging

from django.conf import settings

log = logging.getLogger("batches.tasks")

RUN_GPU_WORKER = "batches.tasks.run_gpu_worker"
# A drain returns after this long so django-q's timeout never kills it mid-unit; the next nudge
# (queued by the drain itself, by a submission or by the scheduled tick) carries on.
DRAIN_BUDGET = 300.0


def run_gpu_worker() -> int:
    """Claim and run units on this node's ComfyUI until the queue is empty or the budget is spent."""
    from batches.models import Unit
    from batches.services.worker import drain

    recorded = drain(time_budget=DRAIN_BUDGET)
    still_work = Unit.objects.filter(status=Unit.Status.PENDING).exists() or Unit.objects.filter(
        node=settings.GPU_NODE, status__in=Unit.IN_FLIGHT).exists()
    if still_work:
        wake_workers()
    return recorded


def wake_workers() -> None:
    """Queue a nudge for the GPU worker unless one is already waiting (nudges are idempotent)."""
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    try:
        if get_broker().queue_size() >= 1:
            return
    except Exception:  # a broker that cannot count: queue the nudge anyway
        pass
    async_task(RUN_GPU_WORKER, q_options={"task_name": "gpu-worker-nudge", "timeout": settings.Q_CLUSTER["timeout"]})


def ensure_schedule() -> None:
    """A tick every minute, so pending work is never stranded when a nudge is lost."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="gpu-worker-tick",
        defaults={"func": RUN_GPU_WORKER, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
    )
