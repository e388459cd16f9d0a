"""Progress events, operator requests kept for idempotency, and the queue's pause switch."""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from batches.models.jobs import Job


class Event(models.Model):
    """A progress event, stored so a page that reconnects can catch up from the last id it saw."""

    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["job", "id"], name="event_job_order")]

    def as_message(self) -> dict:
        return {"id": self.pk, "kind": self.kind, "job": self.job_id, "data": self.data,
                "at": self.created_at.isoformat()}


class ActionRequest(models.Model):
    """One press of an operator button (requeue, retry), kept so that pressing it twice acts once.

    The page and the admin send a fresh random key with every form they draw; a second POST with
    the same key (a double click, a resent form) gets the first one's answer. The unique
    constraint makes this hold with several web processes too. Pruned with the events.
    """

    class Action(models.TextChoices):
        REQUEUE = "requeue"
        RETRY = "retry"

    key = models.CharField(max_length=64)
    action = models.CharField(max_length=16, choices=Action.choices)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    by = models.CharField(max_length=150, blank=True)
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["action", "job", "key"], name="action_request_once")]


class QueueControl(models.Model):
    """The one row that holds queue-wide switches (pause)."""

    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)

    @classmethod
    def get(cls) -> "QueueControl":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    @classmethod
    def is_paused(cls) -> bool:
        return cls.objects.filter(pk=1, paused=True).exists()

    @classmethod
    def set_paused(cls, paused: bool, *, by: str = "") -> None:
        cls.get()
        cls.objects.filter(pk=1).update(
            paused=paused, paused_at=timezone.now() if paused else None, paused_by=by if paused else ""
        )
