"""WebSocket consumers: the queue (everything) and one job. They only forward events."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from batches import relay
from batches.models import Event, Job
from batches.services.events import QUEUE_GROUP, frame, job_group

CATCH_UP_LIMIT = 500


class _ProgressConsumer(AsyncJsonWebsocketConsumer):
    group: str = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Closing before accept() rejects the handshake with HTTP 403.
        if user is None or user.is_anonymous or not await self.allowed(user):
            await self.close()
            return
        relay.ensure_running()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def allowed(self, user) -> bool:
        return True

    async def receive_json(self, content, **kwargs) -> None:
        """{"since": <last event id seen>}: replay what was missed while disconnected."""
        since = content.get("since") if isinstance(content, dict) else None
        if isinstance(since, int) and since >= 0:
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
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        self.group = job_group(self.job_id)
        await super().connect()

    @database_sync_to_async
    def allowed(self, user) -> bool:
        return Job.objects.filter(pk=self.job_id).exists()

    def filter_events(self, events):
        return events.filter(job_id=self.job_id)
