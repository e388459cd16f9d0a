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
    from batches.models import QueueControl, Unit
    from batches.services.worker import drain

    recorded = drain(time_budget=DRAIN_BUDGET)
    if Unit.work_left(node=settings.GPU_NODE) and not QueueControl.is_paused():  # resume nudges again
        wake_workers()
    return recorded


def cluster_for(node: str) -> str:
    """The django-q2 queue of one GPU node (settings.Q_CLUSTER["cluster_name"] on that node)."""
    return f"gpu-{node}"


def wake_workers() -> None:
    """Nudge every live GPU node, unless a nudge already waits in its queue (nudges are idempotent)."""
    from datetime import timedelta

    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    from batches.models import WorkerNode

    recent = timezone.now() - timedelta(minutes=10)
    nodes = set(WorkerNode.objects.filter(heartbeat_at__gte=recent).values_list("name", flat=True))
    nodes.add(settings.GPU_NODE)
    for node in sorted(nodes):
        cluster = cluster_for(node)
        try:
            if get_broker(cluster).queue_size() >= 1:
                continue
        except Exception:  # a broker that cannot count: queue the nudge anyway
            pass
        async_task(RUN_GPU_WORKER, q_options={"task_name": f"gpu-worker-nudge-{node}", "cluster": cluster,
                                              "timeout": settings.Q_CLUSTER["timeout"]})


def ensure_schedule() -> None:
    """A tick every minute on this node, so pending work is never stranded when a nudge is lost."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=f"gpu-worker-tick-{settings.GPU_NODE}",
        defaults={"func": RUN_GPU_WORKER, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1,
                  "cluster": cluster_for(settings.GPU_NODE)},
    )
