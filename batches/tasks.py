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
    from batches.services import stopping
    from batches.services.worker import drain

    recorded = drain(time_budget=DRAIN_BUDGET)
    if stopping.requested():  # the cluster is stopping: the next start reconciles what is left
        return recorded
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

    from batches.models import WorkerNode

    recent = timezone.now() - timedelta(minutes=10)
    nodes = set(WorkerNode.objects.filter(heartbeat_at__gte=recent).values_list("name", flat=True))
    nodes.add(settings.GPU_NODE)
    for node in sorted(nodes):
        wake_node(node)


def wake_node(node: str) -> None:
    """Nudge one node's worker, unless a nudge already waits in its queue."""
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    cluster = cluster_for(node)
    try:
        if get_broker(cluster).queue_size() >= 1:
            return
    except Exception:  # a broker that cannot count: queue the nudge anyway
        pass
    async_task(RUN_GPU_WORKER, q_options={"task_name": f"gpu-worker-nudge-{node}", "cluster": cluster,
                                          "timeout": settings.Q_CLUSTER["timeout"]})


def ensure_schedule() -> None:
    """A tick every minute on this node, so pending work is never stranded when a nudge is lost;
    and an hourly prune of old events (every node prunes; pruning twice is harmless)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=f"gpu-worker-tick-{settings.GPU_NODE}",
        defaults={"func": RUN_GPU_WORKER, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1,
                  "cluster": cluster_for(settings.GPU_NODE)},
    )
    # A schedule without a cluster would never run: each node's cluster has its own name.
    Schedule.objects.update_or_create(
        name=f"prune-history-{settings.GPU_NODE}",
        defaults={"func": PRUNE_HISTORY, "schedule_type": Schedule.HOURLY, "repeats": -1,
                  "cluster": cluster_for(settings.GPU_NODE)},
    )


PRUNE_HISTORY = "batches.tasks.prune_history"


def prune_history() -> int:
    """Delete events past DGX_EVENT_RETENTION_HOURS (and the double-click keys as old); returns events deleted."""
    from datetime import timedelta

    from django.utils import timezone

    from batches.services.control import forget_action_requests
    from batches.services.events import prune_events

    forget_action_requests(before=timezone.now() - max(settings.EVENT_RETENTION, timedelta(hours=1)))
    return prune_events()
