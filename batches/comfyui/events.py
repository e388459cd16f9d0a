"""ComfyUI's /ws event stream: one long-lived socket per client_id, reconnecting, with a per-prompt buffer.

The worker keeps ComfyUI one prompt ahead, so events of the next prompt can arrive while it waits
on the current one; they are kept here for the later wait.
"""
from __future__ import annotations

import json
import logging
import struct
import time
from collections import OrderedDict, deque
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from .errors import ComfyUIError, ComfyUIUnreachable
from .types import Event

logger = logging.getLogger("batches.comfyui")

# Binary /ws frames: a big-endian uint32 event type first (protocol.BinaryEventTypes).
_BINARY_PREVIEW_IMAGE = 1
_BINARY_TEXT = 3
_BINARY_PREVIEW_IMAGE_WITH_METADATA = 4
_PREVIEW_FORMATS = {1: "image/jpeg", 2: "image/png"}

# Events read off the socket for a prompt nobody is waiting on yet are kept for a later wait_for.
_MAX_BUFFERED_PROMPTS = 16
_MAX_EVENTS_PER_PROMPT = 2000
_MAX_COMPLETED_IDS = 256


def _ws_url(base_url: str, client_id: str) -> str:
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", f"clientId={quote(client_id, safe='')}", ""))


class EventStream:
    """ComfyUI's /ws for one client_id, as a blocking iterator with reconnects.

    next() returns parsed events; after a dropped socket it reconnects and returns
    Event("reconnected", {}) because events may have been missed meanwhile.
    """

    def __init__(self, base_url: str, client_id: str, *, connect_timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.url = _ws_url(self.base_url, client_id)
        self._ws: ClientConnection | None = None
        self._ever_connected = False
        self._closed = False
        self._running: str | None = None  # our prompt seen starting and not yet finished
        self._buffers: OrderedDict[str, deque[Event]] = OrderedDict()
        self._completed: OrderedDict[str, None] = OrderedDict()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def connect(self) -> None:
        """Open the socket now (next() also opens it). Raises ComfyUIUnreachable."""
        if self._closed:
            raise ComfyUIError("EventStream is closed", retryable=False)
        if self._ws is None:
            self._open()

    def close(self) -> None:
        self._closed = True
        self._discard()

    def _open(self) -> None:
        try:
            # legacy=True: websockets 17 returns the connection directly (no context manager) without
            # a DeprecationWarning; proxy=None: never route a local /ws through HTTP(S)_PROXY.
            self._ws = connect(self.url, open_timeout=self.connect_timeout, max_size=None, proxy=None,
                               max_queue=256, close_timeout=1.0, legacy=True)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ComfyUIError(f"{self.url}: websocket refused with HTTP {status}",
                               retryable=status >= 500) from exc
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ComfyUIUnreachable(f"{self.url}: {exc}") from exc
        self._ever_connected = True
        self._running = None
        logger.debug("event stream connected: %s", self.url)

    def _discard(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception as exc:  # already broken; it only has to be gone
                logger.debug("closing a dead websocket: %s", exc)

    def next(self, timeout: float) -> Event | None:
        """The next event, or None when none came within `timeout` seconds.

        A dropped socket is reopened and Event("reconnected", {}) returned; if it cannot be reopened,
        ComfyUIUnreachable is raised and a later call tries again."""
        if self._closed:
            raise ComfyUIError("EventStream is closed", retryable=False)
        deadline = time.monotonic() + max(0.0, timeout)
        if self._ws is None:
            reconnect = self._ever_connected
            self._open()
            if reconnect:
                return Event("reconnected", {})
        while True:
            assert self._ws is not None
            try:
                raw = self._ws.recv(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return None
            except ConnectionClosed as exc:
                logger.info("event stream dropped (%s); reconnecting", exc)
                # Close the old socket *before* opening the new one with the same clientId: ComfyUI
                # unregisters the id when the old socket's handler ends, which would deafen a newer one.
                self._discard()
                self._open()
                return Event("reconnected", {})
            event = self._parse(raw)
            if event is not None:
                self._track(event)
                return event
            if time.monotonic() >= deadline:
                return None

    def _parse(self, raw: str | bytes) -> Event | None:
        if isinstance(raw, bytes):
            return self._parse_binary(raw)
        try:
            message = json.loads(raw)
        except ValueError:
            logger.warning("ignoring a /ws text frame that is not JSON: %r", raw[:200])
            return None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            logger.warning("ignoring a /ws message without a type: %r", raw[:200])
            return None
        data = message.get("data")
        return Event(message["type"], data if isinstance(data, dict) else {"value": data})

    def _parse_binary(self, raw: bytes) -> Event | None:
        if len(raw) < 4:
            return None
        kind = struct.unpack(">I", raw[:4])[0]
        data: dict[str, Any] = {"event": kind, "bytes": len(raw)}
        if kind == _BINARY_PREVIEW_IMAGE and len(raw) >= 8:
            data["image_type"] = _PREVIEW_FORMATS.get(struct.unpack(">I", raw[4:8])[0])
            data["image"] = raw[8:]
            if self._running:  # legacy previews carry no prompt id; only our running prompt sends them
                data["prompt_id"] = self._running
            return Event("preview", data)
        if kind == _BINARY_PREVIEW_IMAGE_WITH_METADATA and len(raw) >= 8:
            size = struct.unpack(">I", raw[4:8])[0]
            try:
                meta = json.loads(raw[8:8 + size])
            except ValueError:
                meta = {}
            if isinstance(meta, dict):
                data.update({k: meta[k] for k in ("prompt_id", "node_id", "image_type") if k in meta})
            data["image"] = raw[8 + size:]
            return Event("preview", data)
        if kind == _BINARY_TEXT and len(raw) >= 8:
            size = struct.unpack(">I", raw[4:8])[0]
            data["node"] = raw[8:8 + size].decode("utf-8", "replace")
            data["text"] = raw[8 + size:].decode("utf-8", "replace")
            if self._running:
                data["prompt_id"] = self._running
            return Event("progress_text", data)
        return Event("binary", data)

    def _track(self, event: Event) -> None:
        if event.type == "execution_start" and event.prompt_id:
            self._running = event.prompt_id
        elif event.is_done_marker:
            if self._running == event.prompt_id:
                self._running = None
            self._completed[event.prompt_id] = None
            self._completed.move_to_end(event.prompt_id)
            while len(self._completed) > _MAX_COMPLETED_IDS:
                self._completed.popitem(last=False)

    # -- per-prompt buffering, used by ComfyUIClient.wait_for --------------------------------------

    def _next_for(self, prompt_id: str, timeout: float) -> Event | None:
        """The next event of this prompt (or "reconnected"); events of other prompts read meanwhile
        are kept for their own wait. Events without a prompt id (status) are dropped."""
        buffered = self._buffers.get(prompt_id)
        if buffered:
            event = buffered.popleft()
            if not buffered:
                del self._buffers[prompt_id]
            if event.is_done_marker:
                self._completed.pop(prompt_id, None)
            return event
        if prompt_id in self._completed:
            # Its events were evicted from the buffer, but we saw it finish.
            del self._completed[prompt_id]
            return Event("executing", {"node": None, "prompt_id": prompt_id})
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if event is None or event.type == "reconnected":
                return event
            owner = event.prompt_id
            if owner == prompt_id:
                if event.is_done_marker:
                    self._completed.pop(prompt_id, None)
                return event
            if owner is not None:
                self._stash(owner, event)
            if time.monotonic() >= deadline:
                return None

    def _stash(self, prompt_id: str, event: Event) -> None:
        buffer = self._buffers.get(prompt_id)
        if buffer is None:
            buffer = self._buffers[prompt_id] = deque(maxlen=_MAX_EVENTS_PER_PROMPT)
            while len(self._buffers) > _MAX_BUFFERED_PROMPTS:
                self._buffers.popitem(last=False)
        if event.type == "preview":
            # Only the newest preview is worth keeping for a later wait; each holds a whole JPEG.
            for i in range(len(buffer) - 1, -1, -1):
                if buffer[i].type == "preview":
                    del buffer[i]
                    break
        buffer.append(event)

    def _forget(self, prompt_id: str) -> None:
        self._buffers.pop(prompt_id, None)
        self._completed.pop(prompt_id, None)
