"""The GPU worker's disk guard (a part of GpuWorker, batches/services/worker.py).

Below DGX_DISK_MIN_FREE_GB free at OUTPUT_ROOT the worker claims nothing new; the unit on the GPU
finishes and is recorded, the node's row says why, and the worker looks again every DISK_RECHECK
seconds while work waits, so it carries on by itself once space is freed (services/disk_guard).
"""
from __future__ import annotations

import logging
import time

from batches.models import QueueControl, Unit, WorkerNode
from batches.services import disk_guard, stopping
from batches.services.events import publish

log = logging.getLogger("batches.worker")

DISK_RECHECK = 2.0  # seconds between looks at the free space while the disk guard holds
BEAT_SLICE = 0.25  # the worker's WAIT_SLICE: how often it beats while it waits


class DiskGuard:
    """Mixed into GpuWorker: uses its node, node_name, _heartbeat() and _current_job_id()."""

    _holding = False  # the disk guard holds: claim nothing new
    _last_disk_write = 0.0

    def _disk_holds(self) -> bool:
        """Look at the free space at OUTPUT_ROOT (one statvfs); hold while it is below DGX_DISK_MIN_FREE_GB.

        The node's row says why (`hold_reason`) and how much is free (`disk_free`); the start and
        the end of a hold are published so the pages redraw.
        """
        state = disk_guard.check()
        reason = state.reason
        was_held = bool(self.node.hold_reason)  # as the row says: a hold left by an earlier drain counts
        now = time.monotonic()
        if reason != self.node.hold_reason or now - self._last_disk_write > 10.0:
            self._last_disk_write = now
            WorkerNode.objects.filter(pk=self.node.pk).update(hold_reason=reason, disk_free=state.free)
            self.node.hold_reason, self.node.disk_free = reason, state.free
        self._holding = state.low
        if state.low != was_held:
            job_id = self._current_job_id() or (
                Unit.objects.filter(status=Unit.Status.PENDING).order_by("-priority", "id")
                .values_list("job_id", flat=True).first())
            if state.low:
                log.warning("%s: holding: %s", self.node_name, reason)
                publish("disk_hold", job_id=job_id, node=self.node_name, reason=reason, free=state.free)
            else:
                log.info("%s: disk space is back (%.1f GB free at OUTPUT_ROOT); claiming again",
                         self.node_name, (state.free or 0) / disk_guard.GB)
                publish("disk_ok", job_id=job_id, node=self.node_name, free=state.free)
        return state.low

    def _wait_for_disk(self, deadline: float) -> bool:
        """Held by the disk guard with work waiting: beat, wait DISK_RECHECK and look again (True).

        False when there is nothing to wait for (a stop, a pause, the budget spent, no pending
        work): the drain ends, and the next nudge or the scheduled tick looks again.
        """
        if not self._holding or stopping.requested() or time.monotonic() > deadline or QueueControl.is_paused():
            return False
        if not Unit.objects.filter(status=Unit.Status.PENDING).exists():
            return False
        until = time.monotonic() + DISK_RECHECK
        while time.monotonic() < until and not stopping.requested():
            self._heartbeat()
            time.sleep(BEAT_SLICE)
        return True
