"""Event rows -> webhook deliveries: the webhook worker tails `Event` (what the GPU worker and the
cancel paths already write) instead of the GPU worker calling anyone: a slow or dead receiver can
never hold up the GPU.

Turning an event into deliveries is idempotent: one row per (event id, URL), guarded by the unique
constraint (insert, ignore the conflict). So re-reading events is always safe, and the cursor's
job is only to avoid needless work:

- On start-up the cursor is put just before the events of the last CATCH_UP (24 h, the default
  event retention): every event written while no worker ran (a restart, a crash, a deploy) is
  read again; those already turned into deliveries are skipped by the constraint, so nothing is
  lost and nothing is sent twice.
- While running, it moves past each event read. On PostgreSQL ids are handed out before commit,
  so a slow transaction can commit an id lower than one already read; the tail therefore also
  re-checks the last RECHECK seconds of events for ids it has not seen.

A standing endpoint gets the events written after it was created (a new endpoint is not flooded
with yesterday's jobs on the next restart); a job's own webhook_url gets its job's events.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from batches.models import Event, Job, WebhookDelivery, WebhookEndpoint

log = logging.getLogger("batches.webhooks")

KINDS = ("job_finished", "job_progress")
FINISHED_EVENTS = {"completed": "job.completed", "partial": "job.partial", "failed": "job.failed",
                   "cancelled": "job.cancelled"}
PROGRESS_EVENT = "job.progress"
CATCH_UP = timedelta(hours=24)
RECHECK = timedelta(seconds=30)
BATCH = 200


def event_name(event: Event) -> str | None:
    """The webhook event an Event row stands for (job.completed ...), or None for none."""
    if event.kind == "job_finished":
        return FINISHED_EVENTS.get(str((event.data or {}).get("status", "")))
    if event.kind == "job_progress":
        return PROGRESS_EVENT
    return None


def job_payload(job: Job) -> dict:
    """The job as the API shows it, as plain JSON values (times as ISO 8601 text)."""
    from batches.services.job_requests import job_document, public_base_url

    return json.loads(json.dumps(job_document(job, base_url=public_base_url()), cls=DjangoJSONEncoder))


def targets(event: Event, job: Job) -> list[tuple[str, WebhookEndpoint | None]]:
    """(url, endpoint) pairs for an event: the job's own webhook_url (end events only) and the
    owner's active endpoints that existed when it happened (progress: only those that asked)."""
    found: dict[str, WebhookEndpoint | None] = {}
    endpoints = WebhookEndpoint.objects.filter(owner_id=job.owner_id, active=True, created_at__lte=event.created_at)
    if event.kind == "job_progress":
        endpoints = endpoints.filter(progress=True)
    for endpoint in endpoints.order_by("id"):
        found.setdefault(endpoint.url, endpoint)
    if event.kind == "job_finished" and job.webhook_url:
        found.setdefault(job.webhook_url, None)
    return list(found.items())


def deliveries_for(event: Event) -> list[WebhookDelivery]:
    """The (unsaved) deliveries an event calls for."""
    name = event_name(event)
    if name is None or event.job_id is None:
        return []
    job = Job.objects.select_related("owner").filter(pk=event.job_id).first()
    if job is None:
        return []
    pairs = targets(event, job)
    if not pairs:
        return []
    payload = {"event": name, "created_at": event.created_at.isoformat(), "job": job_payload(job)}
    if name == PROGRESS_EVENT:
        data = event.data or {}
        payload.update(images_done=data.get("images_done", job.images_done),
                       images_failed=data.get("images_failed", job.images_failed),
                       images_planned=data.get("images_planned", job.images_planned))
    return [WebhookDelivery(job=job, endpoint=endpoint, url=url, event=name, event_id=event.pk, payload=payload,
                            next_attempt_at=timezone.now())
            for url, endpoint in pairs]


def ingest(events) -> int:
    """Create the deliveries for `events`; returns how many rows were asked for (rows already
    there from an earlier read are skipped by the unique constraint)."""
    rows = [row for event in events for row in deliveries_for(event)]
    if rows:
        with transaction.atomic():  # all of an event's rows or none (a batch may span statements)
            WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def start_cursor(*, catch_up: timedelta = CATCH_UP, now=None) -> int:
    """The id after which start-up reads events: the last event older than `catch_up`."""
    cutoff = (now or timezone.now()) - catch_up
    return Event.objects.filter(created_at__lt=cutoff).aggregate(n=Max("id"))["n"] or 0


class EventTail:
    """Reads new job_finished/job_progress events and turns them into deliveries."""

    def __init__(self, *, cursor: int | None = None, catch_up: timedelta = CATCH_UP):
        self.cursor = start_cursor(catch_up=catch_up) if cursor is None else cursor
        self.seen: dict[int, float] = {}  # ids read recently (for the RECHECK pass), -> when
        self.last_recheck = 0.0

    def poll(self) -> int:
        """One read: new events past the cursor (a batch), and every few seconds the recent ones
        not seen yet. Returns how many events were read (0: caught up)."""
        events = list(Event.objects.filter(kind__in=KINDS, id__gt=self.cursor).order_by("id")[:BATCH])
        now = time.monotonic()
        if now - self.last_recheck > 2.0:
            self.last_recheck = now
            recent = Event.objects.filter(kind__in=KINDS, id__lte=self.cursor,
                                          created_at__gte=timezone.now() - RECHECK).values_list("id", flat=True)
            missed = [i for i in recent if i not in self.seen]
            if missed:
                events += list(Event.objects.filter(pk__in=missed).order_by("id"))
            horizon = now - RECHECK.total_seconds() * 2
            self.seen = {i: t for i, t in self.seen.items() if t > horizon}
        if not events:
            return 0
        # An event already turned into deliveries (all of its rows are written in one statement)
        # is skipped before its job document is built: a restart re-reads a day of events cheaply.
        done = set(WebhookDelivery.objects.filter(event_id__in=[e.pk for e in events])
                   .values_list("event_id", flat=True))
        ingest([e for e in events if e.pk not in done])
        for event in events:
            self.seen[event.pk] = now
            self.cursor = max(self.cursor, event.pk)
        return len(events)
