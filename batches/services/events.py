"""One way for progress to flow: the worker calls `publish`, pages receive it over Channels.

Every event is stored first (a page that reconnects catches up from the last id it saw, and a
reload shows the truth). With REDIS_URL the event also goes straight to channels-redis; on the
embedded default a relay in each daphne process forwards new rows (batches/relay.py).
"""
from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from batches.models import Event

log = logging.getLogger("batches.events")

QUEUE_GROUP = "queue"


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


def groups_for(event: Event) -> list[str]:
    groups = [QUEUE_GROUP]
    if event.job_id:
        groups.append(job_group(event.job_id))
    return groups


_pending = threading.local()


def publish(kind: str, *, job_id: int | None = None, **data) -> Event:
    """Record an event and push it to the queue group and the job's group."""
    event = Event.objects.create(kind=kind, job_id=job_id, data=data)
    if settings.REDIS_URL:
        held = getattr(_pending, "events", None)
        if held is not None:
            held.append(event)
        else:
            send_to_groups([event])
    return event


@contextmanager
def in_one_frame():
    """Events published inside the block reach each page as one frame (Redis; the embedded relay
    batches by itself). The worker wraps each unit boundary in it: a burst of 5-10 events then
    costs daphne one message per page instead of one per event per page."""
    if getattr(_pending, "events", None) is not None:  # nested: the outer block sends
        yield
        return
    _pending.events = []
    try:
        yield
    finally:
        events, _pending.events = _pending.events, None
        if events:
            send_to_groups(events)


def frame(messages: list[dict]) -> dict:
    """A channel-layer message carrying the WebSocket frame ready to send: one event as an object,
    several as an array. Encoded once here, not once per connected page."""
    payload = messages[0] if len(messages) == 1 else messages
    return {"type": "progress.frame", "text": json.dumps(payload, separators=(",", ":"), default=str)}


def send_to_groups(events: list[Event]) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    by_group: dict[str, list[dict]] = {}
    for event in events:
        for group in groups_for(event):
            by_group.setdefault(group, []).append(event.as_message())
    for group, messages in by_group.items():
        try:
            async_to_sync(layer.group_send)(group, frame(messages))
        except Exception:  # the events are stored; a page catches up on reconnect
            log.exception("could not send %d event(s) to %s", len(messages), group)


def prune_events(*, retention: timedelta | None = None, keep_last: int | None = None,
                 now: datetime | None = None) -> int:
    """Delete events older than `retention`, except the newest `keep_last`; return how many went.

    Pages replay from the last event id they saw and reload their partials when they reconnect,
    so old events serve nobody. The newest `keep_last` stay whatever their age: a quiet queue
    keeps its recent history, and the highest id survives for `latest_event_id`.
    """
    retention = settings.EVENT_RETENTION if retention is None else retention
    keep_last = settings.EVENT_KEEP_LAST if keep_last is None else keep_last
    cutoff = (now or timezone.now()) - retention
    if keep_last > 0:
        kept = list(Event.objects.order_by("-id").values_list("id", flat=True)[keep_last - 1:keep_last])
        if not kept:  # fewer events than keep_last: all stay
            return 0
        old = Event.objects.filter(id__lt=kept[0], created_at__lt=cutoff)
    else:
        old = Event.objects.filter(created_at__lt=cutoff)
    # Event has no children and no delete signals: one DELETE statement, not a fetch per row.
    deleted, _ = old.delete()
    if deleted:
        log.info("pruned %d events older than %s", deleted, cutoff.isoformat(timespec="seconds"))
    return deleted
