"""GPU nodes: each qcluster worker and the ComfyUI it feeds."""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from batches.models.jobs import Unit


class WorkerNode(models.Model):
    """One GPU node: its qcluster worker and the ComfyUI it feeds."""

    name = models.CharField(max_length=64, unique=True)
    comfyui_url = models.CharField(max_length=255)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    comfyui_ok = models.BooleanField(default=True)
    unreachable_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    vram_total = models.BigIntegerField(null=True, blank=True)
    vram_free = models.BigIntegerField(null=True, blank=True)
    current_unit = models.ForeignKey(Unit, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    images_made = models.PositiveIntegerField(default=0)
    # Why the node claims nothing new right now (the disk guard: "12.0 GB free at OUTPUT_ROOT, below
    # 5.0 GB"); blank while it claims. Running units always finish.
    hold_reason = models.CharField(max_length=500, blank=True)
    disk_free = models.BigIntegerField(null=True, blank=True, help_text="Bytes free at OUTPUT_ROOT, last look.")
    # The one qcluster that serves this node (a lease: see services/node_lease.py). Blank when none.
    worker_id = models.CharField(max_length=64, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_started_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def register(cls, *, name: str, comfyui_url: str) -> "WorkerNode":
        node, _ = cls.objects.update_or_create(
            name=name, defaults={"comfyui_url": comfyui_url, "heartbeat_at": timezone.now()}
        )
        return node

    def beat(self, **fields) -> None:
        fields["heartbeat_at"] = timezone.now()
        WorkerNode.objects.filter(pk=self.pk).update(**fields)
        for key, value in fields.items():
            if not hasattr(value, "resolve_expression"):
                setattr(self, key, value)

    def mark_unreachable(self, error: str) -> bool:
        """Record the outage; returns True the first time (so one event is published, not one per retry)."""
        now = timezone.now()
        first = WorkerNode.objects.filter(pk=self.pk, comfyui_ok=True).update(
            comfyui_ok=False, unreachable_since=now, last_error=error[:2000], heartbeat_at=now
        )
        if not first:
            self.beat(last_error=error[:2000])
        else:
            self.comfyui_ok, self.unreachable_since = False, now
        return first == 1

    def mark_reachable(self) -> bool:
        back = WorkerNode.objects.filter(pk=self.pk, comfyui_ok=False).update(
            comfyui_ok=True, unreachable_since=None, last_error="", heartbeat_at=timezone.now()
        )
        self.comfyui_ok, self.unreachable_since = True, None
        return back == 1
