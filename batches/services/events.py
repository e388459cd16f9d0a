"""One way for progress to flow: the worker calls `publish`, pages receive it over Channels.

Every event is stored first (a page that reconnects catches up from the last id it saw, and a
reload shows the truth). With REDIS_URL the event also goes straight to channels-redis; on the
embedded default a relay in each daphne process forwards new rows (batches/relay.py).
"""
from __future__ import annotations

import logging

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


def publish(kind: str, *, job_id: int | None = None, **data) -> Event:
    """Record an event and push it to the queue group and the job's group."""
    event = Event.objects.create(kind=kind, job_id=job_id, data=data)
    if settings.REDIS_URL:
        send_to_groups(event)
    return event


def send_to_groups(event: Event) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    message = {"type": "progress.event", "event": event.as_message()}
    for group in groups_for(event):
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # the event is stored; a page catches up on reconnect
            log.exception("could not send event %s to %s", event.pk, group)
