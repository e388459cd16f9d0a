"""WebSocket consumers: the queue (everything) and one job. They only forward events.

A page sends one frame, {"since": <last event id seen>}, when its socket opens. Anything a socket
cannot use is refused with a close code and one log line, never a traceback:
    4400 a frame that is not that request    4404 no such socket or job
    4429 replay requests faster than a page makes them (each may answer CATCH_UP_LIMIT events)
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer

from batches import relay
from batches.models import Event, Job
from batches.numbers import MAX_ID, NumberError, parse_id
from batches.services.events import QUEUE_GROUP, frame, job_group

log = logging.getLogger("batches.consumers")

CATCH_UP_LIMIT = 500
MAX_FRAME_CHARS = 1024  # a replay request is ~20 characters; json.loads never sees a big or deep frame
REPLAY_BURST = 5  # replay requests at once; a page makes one per connection
REPLAY_REFILL_SECONDS = 5.0  # then one more per this many seconds
CLOSE_BAD_FRAME, CLOSE_NOT_FOUND, CLOSE_TOO_MANY = 4400, 4404, 4429


class TokenBucket:
    """`capacity` takes at once, refilled one per `refill_seconds`."""

    def __init__(self, *, capacity: int, refill_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.capacity, self.refill_seconds, self.clock = capacity, refill_seconds, clock
        self.tokens, self.at = float(capacity), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) / self.refill_seconds)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


async def _refuse(consumer: NoRouteConsumer | _ProgressConsumer, code: int, reason: str) -> None:
    """Close with `code` and say why in one log line (later frames of a closing socket are dropped)."""
    if consumer.closing:
        return
    consumer.closing = True
    # %r: the path is the client's, and a control character in it must not reach the log raw.
    log.warning("websocket %r closed with %s: %s", consumer.scope.get("path", "?"), code, reason)
    await consumer.close(code=code)


class NoRouteConsumer(AsyncWebsocketConsumer):
    """Every path no socket serves: accepted only to close it with 4404 (the router would raise)."""

    closing = False

    async def connect(self) -> None:
        await self.accept()
        await _refuse(self, CLOSE_NOT_FOUND, "no socket at this path")

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return None


class _ProgressConsumer(AsyncJsonWebsocketConsumer):
    group: str = ""
    closing = False  # set once a refusal is sent: later frames are dropped, not logged again

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Closing before accept() rejects the handshake with HTTP 403.
        if user is None or user.is_anonymous:
            await self.close()
            return
        if not await self.allowed(user):
            await self.accept()
            await _refuse(self, CLOSE_NOT_FOUND, "no such job")
            return
        self.replays = TokenBucket(capacity=REPLAY_BURST, refill_seconds=REPLAY_REFILL_SECONDS)
        relay.ensure_running()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def allowed(self, user) -> bool:
        return True

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if self.closing:
            return
        if text_data is None:
            return await _refuse(self, CLOSE_BAD_FRAME, "a binary frame; send JSON text")
        if not text_data:
            return await _refuse(self, CLOSE_BAD_FRAME, "an empty frame")
        if len(text_data) > MAX_FRAME_CHARS:
            return await _refuse(self, CLOSE_BAD_FRAME,
                                 f"a frame of {len(text_data)} characters; the limit is {MAX_FRAME_CHARS}")
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            return await _refuse(self, CLOSE_BAD_FRAME, "a frame that is not JSON")
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content, **kwargs) -> None:
        """{"since": <last event id seen>}: replay what was missed while disconnected."""
        since = content.get("since") if isinstance(content, dict) else None
        if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= MAX_ID:
            return await _refuse(self, CLOSE_BAD_FRAME, 'expected {"since": <event id>}')
        if not self.replays.take():
            return await _refuse(self, CLOSE_TOO_MANY,
                                 f"more than {REPLAY_BURST} replay requests in {REPLAY_REFILL_SECONDS:g} s")
        missed = await self._missed(since)
        if missed:
            await self.send(text_data=frame(missed)["text"])

    @database_sync_to_async
    def _missed(self, since: int) -> list[dict]:
        events = Event.objects.filter(id__gt=since).order_by("id")
        events = self.filter_events(events)
        return [e.as_message() for e in events[:CATCH_UP_LIMIT]]

    def filter_events(self, events):
        return events

    async def progress_frame(self, message) -> None:
        """One event (a JSON object) or several (a JSON array), already encoded."""
        await self.send(text_data=message["text"])


class QueueConsumer(_ProgressConsumer):
    group = QUEUE_GROUP


class JobConsumer(_ProgressConsumer):
    async def connect(self) -> None:
        try:
            self.job_id = parse_id(self.scope["url_route"]["kwargs"]["job_id"], what="a job id")
        except NumberError:  # past the largest id, or 0: no such job
            self.job_id = None
        self.group = job_group(self.job_id) if self.job_id else ""
        await super().connect()

    @database_sync_to_async
    def allowed(self, user) -> bool:
        return self.job_id is not None and Job.objects.filter(pk=self.job_id).exists()

    def filter_events(self, events):
        return events.filter(job_id=self.job_id)
