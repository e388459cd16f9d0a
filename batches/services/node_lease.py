"""One live qcluster per GPU node: a lease on the node's row.

Two workers under one node name would both claim units for the same ComfyUI and reconcile each
other's units as their own. A qcluster takes the lease when it starts and renews it with the
node's heartbeat; a second one for the same node is refused with the holder's pid and host. A
holder that stopped cleanly released the lease; one that was killed is taken over at once when
it ran on this host and its pid is gone, else once its heartbeat is older than
DGX_NODE_STALE_SECONDS.
"""
from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from batches.models import Unit, WorkerNode


class NodeBusy(Exception):
    """Another live worker holds this node; the message names it and says what to do."""


@dataclass(frozen=True)
class Lease:
    node: str
    worker_id: str


def this_host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_alive(node: WorkerNode) -> bool:
    """Does the row name a worker that still runs? Decided by its pid on this host, else its heartbeat."""
    if not node.worker_id:
        return False
    if node.worker_host == this_host():
        return _pid_alive(node.worker_pid)
    cutoff = timezone.now() - timedelta(seconds=settings.NODE_STALE_SECONDS)
    return bool(node.heartbeat_at and node.heartbeat_at >= cutoff)


def acquire(*, node: str, comfyui_url: str) -> Lease:
    """Take the node for this process, or raise NodeBusy naming the live holder."""
    WorkerNode.objects.get_or_create(name=node, defaults={"comfyui_url": comfyui_url})
    row = WorkerNode.objects.get(name=node)
    if holder_alive(row):
        age = (timezone.now() - row.heartbeat_at).total_seconds() if row.heartbeat_at else None
        seen = f", last heartbeat {age:.0f}s ago" if age is not None else ""
        raise NodeBusy(
            f"GPU node {node!r} already has a live worker: pid {row.worker_pid} on host {row.worker_host}"
            f"{seen}. Stop that one first, or start this one with another GPU_NODE."
        )
    lease = Lease(node=node, worker_id=uuid.uuid4().hex[:16])
    now = timezone.now()
    # Compare-and-set on the holder we saw: two workers starting at once cannot both win.
    won = WorkerNode.objects.filter(pk=row.pk, worker_id=row.worker_id).update(
        worker_id=lease.worker_id, worker_pid=os.getpid(), worker_host=this_host(), worker_started_at=now,
        heartbeat_at=now, comfyui_url=comfyui_url,
    )
    if not won:
        raise NodeBusy(f"GPU node {node!r} was taken by another worker starting at the same moment.")
    return lease


def renew(lease: Lease) -> bool:
    """Beat the node's heartbeat; False when the lease was taken over (this worker must stop)."""
    return WorkerNode.objects.filter(name=lease.node, worker_id=lease.worker_id).update(
        heartbeat_at=timezone.now()) == 1


def release(lease: Lease) -> None:
    """Give the node up, and hand back the units still in flight on it.

    Their heartbeat is dated back past the stale limit, so another node reconciles them at once
    (collecting what this node's ComfyUI finishes); a restarted worker of this node does the same.
    """
    WorkerNode.objects.filter(name=lease.node, worker_id=lease.worker_id).update(
        worker_id="", worker_pid=None, worker_host="", current_unit=None)
    long_ago = timezone.now() - timedelta(seconds=settings.NODE_STALE_SECONDS + 1)
    Unit.objects.filter(node=lease.node, status__in=Unit.IN_FLIGHT).filter(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__gt=long_ago)).update(heartbeat_at=long_ago)
