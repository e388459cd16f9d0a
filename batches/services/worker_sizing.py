"""The GPU worker's unit sizing (a part of GpuWorker, batches/services/worker.py): batch size
"auto" decides each unit's size at its boundary from ComfyUI's free VRAM (services/auto_batch),
cuts a unit down into pieces, and claims the pieces next so the job keeps its place in the queue.
"""
from __future__ import annotations

import logging
from collections import deque

from django.db.models import F
from django.utils import timezone

from batches.models import Job, Unit
from batches.services import auto_batch, recording
from batches.services.events import publish

log = logging.getLogger("batches.worker")

# Per node, the pieces of units cut down by batch size "auto" still to run: claimed next (ahead of
# same-priority units queued since), so a job keeps its place in the queue. Kept for the process,
# so a later drain still prefers them.
_preferred: dict[str, deque[int]] = {}


def preferred_pieces(node: str) -> deque[int]:
    return _preferred.setdefault(node, deque())


class UnitSizing:
    """Mixed into GpuWorker: uses its client, node_name, comfyui_url, preferred and _vram_seen."""

    def _size_unit(self, unit: Unit) -> Unit:
        """The unit boundary's batch size: a unit of an auto job is cut down to what the free VRAM
        allows (services/auto_batch), decided now, at claim time, also for a unit claimed ahead
        while another runs. Every unit records the size it runs at and the VRAM seen."""
        if not unit.job.batch_auto:
            total, free = self._vram_seen or (None, None)
            fields = {"batch_size_chosen": unit.batch_size, "vram_free": free, "vram_total": total}
            Unit.objects.filter(pk=unit.pk).update(**fields)
            for key, value in fields.items():
                setattr(unit, key, value)
            return unit
        choice = auto_batch.decide(unit, self.client)
        fields = {"batch_size_chosen": choice.size, "vram_free": choice.vram_free, "vram_total": choice.vram_total}
        if choice.vram_free is not None:
            self._vram_seen = (choice.vram_total, choice.vram_free)
        if choice.size >= unit.batch_size:
            Unit.objects.filter(pk=unit.pk).update(**fields)
            for key, value in fields.items():
                setattr(unit, key, value)
            return unit
        # Cut down: the first piece is written already claimed by this node and runs now; the
        # others are claimed next (_claim_preferred), so the job keeps its place in the queue.
        now = timezone.now()
        claimed = {"status": Unit.Status.SUBMITTED, "node": self.node_name, "comfyui_url": self.comfyui_url,
                   "claimed_at": now, "heartbeat_at": now, "attempts": 1, **fields}
        pieces = recording.split_unit(unit, choice.size, claim_first=claimed,
                                      note=f"{choice.reason}; split into {{pieces}} unit(s) of {choice.size}")
        log.info("%s: %s; split into %d unit(s)", unit, choice.reason, len(pieces))
        publish("unit_resized", job_id=unit.job_id, unit=unit.pk, index=unit.index, from_batch_size=unit.batch_size,
                to_batch_size=choice.size, pieces=len(pieces), vram_free=choice.vram_free)
        self.preferred.extendleft(reversed([piece.pk for piece in pieces[1:]]))
        return pieces[0]

    def _claim_preferred(self) -> Unit | None:
        """Claim the next piece of a unit cut down by batch size "auto", unless a more urgent unit waits."""
        while self.preferred:
            pk = self.preferred[0]
            row = Unit.objects.filter(pk=pk, status=Unit.Status.PENDING).exclude(
                job__status=Job.Status.CANCELLED).values("priority").first()
            if row is None:  # taken by another node, cancelled, ...
                self.preferred.popleft()
                continue
            if Unit.objects.filter(status=Unit.Status.PENDING, priority__gt=row["priority"]).exclude(
                    job__status=Job.Status.CANCELLED).exists():
                return None
            self.preferred.popleft()
            now = timezone.now()
            won = Unit.objects.filter(pk=pk, status=Unit.Status.PENDING).update(
                status=Unit.Status.SUBMITTED, node=self.node_name, comfyui_url=self.comfyui_url, claimed_at=now,
                heartbeat_at=now, attempts=F("attempts") + 1, error="")
            if won:
                return Unit.objects.select_related("job").get(pk=pk)
        return None
