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

from django.conf import settings

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
