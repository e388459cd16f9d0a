"""Embedded default: carry stored events into this daphne process's in-memory channel layer.

The in-memory layer cannot carry a message between processes, so the GPU worker writes events
to the database and one relay task per daphne process forwards new rows to the groups. daphne
has no ASGI lifespan, so the relay starts lazily from the first consumer that connects.
With REDIS_URL set, `publish` sends to channels-redis directly and no relay runs.
"""
from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from batches.models import Event
from batches.services.events import frame, groups_for

log = logging.getLogger("batches.relay")

POLL_SECONDS = 0.025
_task: asyncio.Task | None = None


def ensure_running() -> None:
    global _task
    if settings.REDIS_URL:
        return
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(_relay())


@database_sync_to_async
def _latest_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


@database_sync_to_async
def _events_after(last_id: int) -> list[Event]:
    return list(Event.objects.filter(id__gt=last_id).order_by("id")[:500])


async def _relay() -> None:
    layer = get_channel_layer()
    last_id = await _latest_id()
    while True:
        try:
            events = await _events_after(last_id)
            # One message per group per tick, encoded once: a burst of events at a unit boundary
            # becomes one WebSocket frame per page instead of one per event per page.
            by_group: dict[str, list[dict]] = {}
            for event in events:
                for group in groups_for(event):
                    by_group.setdefault(group, []).append(event.as_message())
            for group, messages in by_group.items():
                await layer.group_send(group, frame(messages))
            if events:
                last_id = events[-1].pk
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("relay failed; retrying")
            await asyncio.sleep(1)
        await asyncio.sleep(POLL_SECONDS)
