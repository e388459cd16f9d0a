"""The one module that talks to ComfyUI: HTTP routes, the /ws event stream, and waiting for a prompt.

Relies only on what ComfyUI v0.3.64 does on the wire (see shared/comfyui-api.md). Every HTTP call has
a timeout; only GETs are retried, a bounded number of times; every failure is a ComfyUIError that says
whether retrying can help. Not thread-safe: give each worker thread its own client and stream.
"""
from __future__ import annotations

import json
import logging
import struct
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from .errors import (
    ComfyUIBadResponse,
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIInterrupted,
    ComfyUIPromptLost,
    ComfyUIRejected,
    ComfyUITimeout,
    ComfyUIUnreachable,
)

logger = logging.getLogger("batches.comfyui")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Binary /ws frames: a big-endian uint32 event type first (protocol.BinaryEventTypes).
_BINARY_PREVIEW_IMAGE = 1
_BINARY_TEXT = 3
_BINARY_PREVIEW_IMAGE_WITH_METADATA = 4
_PREVIEW_FORMATS = {1: "image/jpeg", 2: "image/png"}

# Events read off the socket for a prompt nobody is waiting on yet are kept for a later wait_for.
_MAX_BUFFERED_PROMPTS = 16
_MAX_EVENTS_PER_PROMPT = 2000
_MAX_COMPLETED_IDS = 256


@dataclass(frozen=True)
class ImageRef:
    filename: str
    subfolder: str
    type: str  # "output" (SaveImage) or "temp" (PreviewImage)


@dataclass
class Submitted:
    prompt_id: str
    number: float
    node_errors: dict


@dataclass
class QueueState:
    running: list[str]
    pending: list[str]  # run order: ComfyUI returns heap order, sorted here by (number, prompt_id)
    numbers: dict[str, float] = field(default_factory=dict)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending

    @property
    def remaining(self) -> int:
        return len(self.running) + len(self.pending)


@dataclass
class HistoryEntry:
    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    images: list[ImageRef]
    outputs: dict
    messages: list
    error: dict | None  # data of the execution_error / execution_interrupted message
    number: float | None = None

    def raise_for_status(self) -> None:
        if self.status == "interrupted":
            raise ComfyUIInterrupted(self.prompt_id, self.error)
        if self.status != "success":
            raise ComfyUIExecutionError(self.prompt_id, self.error)

    @classmethod
    def from_json(cls, prompt_id: str, entry: dict) -> "HistoryEntry":
        if not isinstance(entry, dict):
            raise ComfyUIBadResponse(f"history entry for {prompt_id} is not an object")
        outputs = entry.get("outputs") or {}
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        # Interrupt and failure both store status_str "error"; the last terminal message tells them apart.
        last_kind, last_data = None, None
        for message in messages:
            if isinstance(message, (list, tuple)) and len(message) == 2 and message[0] in (
                    "execution_error", "execution_interrupted"):
                last_kind, last_data = message[0], message[1]
        status_str = status.get("status_str")
        if status_str == "success" or (status_str is None and last_kind is None and status.get("completed", True)):
            kind = "success"
        elif last_kind == "execution_interrupted":
            kind = "interrupted"
        else:
            kind = "error"
        images = [
            ImageRef(str(image.get("filename", "")), str(image.get("subfolder") or ""), str(image.get("type")))
            for node_output in outputs.values() if isinstance(node_output, dict)
            for image in node_output.get("images") or [] if isinstance(image, dict) and image.get("type") == "output"
        ]
        prompt = entry.get("prompt")
        number = prompt[0] if isinstance(prompt, list) and prompt and isinstance(prompt[0], (int, float)) else None
        return cls(prompt_id, kind, images, outputs, messages, last_data if kind != "success" else None,
                   float(number) if number is not None else None)


@dataclass
class Event:
    type: str
    data: dict

    @property
    def prompt_id(self) -> str | None:
        value = self.data.get("prompt_id")
        return value if isinstance(value, str) else None

    @property
    def is_done_marker(self) -> bool:
        """`executing` with node null: the prompt is finished and its history is stored."""
        return self.type == "executing" and self.data.get("node") is None and self.prompt_id is not None


def combo_choices(spec: Any) -> list[str] | None:
    """The choices of one /object_info input spec, in either encoding ComfyUI uses:
    legacy [[choices...], {opts}] or V3 ["COMBO", {"options": [choices...], ...}]. None if not a combo."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return [str(choice) for choice in spec[0]]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict) and isinstance(spec[1].get("options"), list):
        return [str(choice) for choice in spec[1]["options"]]
    return None


def _backoff(attempt: int) -> float:
    return min(0.25 * 2 ** attempt, 2.0)


def _request_not_sent(exc: Exception) -> bool:
    """True when the connection never opened, so the server cannot have seen the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class ComfyUIClient:
    def __init__(self, base_url: str, *, client_id: str | None = None, timeout: float = 10.0, retries: int = 2):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout
        self.retries = max(0, retries)
        self._session = requests.Session()
        # ComfyUI is on this machine or the LAN: never send it through an HTTP(S)_PROXY from the
        # environment (the /ws side passes proxy=None for the same reason).
        self._session.trust_env = False
        self._streams: list[EventStream] = []

    def __repr__(self) -> str:
        return f"ComfyUIClient({self.base_url!r}, client_id={self.client_id!r})"

    def close(self) -> None:
        self._session.close()

    # -- HTTP plumbing ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None,
                 retry: bool = False, timeout: float | None = None) -> requests.Response:
        """One HTTP call; GETs (retry=True) are retried on transport errors and 5xx, with backoff."""
        url = self.base_url + path
        attempts = 1 + (self.retries if retry else 0)
        error: ComfyUIError | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(_backoff(attempt - 1))
            try:
                response = self._session.request(method, url, params=params, json=json_body,
                                                 timeout=timeout or self.timeout)
            except _TRANSPORT_ERRORS as exc:
                error = ComfyUIUnreachable(f"{method} {url}: {exc}")
            except requests.RequestException as exc:  # a bad URL and the like: our mistake, not ComfyUI's
                raise ComfyUIError(f"{method} {url}: {exc}", retryable=False) from exc
            else:
                if response.status_code < 500:
                    return response
                error = ComfyUIUnreachable(f"{method} {url}: HTTP {response.status_code}: {response.text[:200]}",
                                           status_code=response.status_code)
            if attempt + 1 < attempts:
                logger.warning("ComfyUI call failed, retrying (%d/%d): %s", attempt + 1, attempts - 1, error)
        assert error is not None
        raise error

    def _get_json(self, path: str, *, params: dict | None = None, timeout: float | None = None) -> Any:
        response = self._request("GET", path, params=params, retry=True, timeout=timeout)
        self._expect_ok(response, path)
        return self._json(response, path)

    def _post(self, path: str, body: dict) -> requests.Response:
        response = self._request("POST", path, json_body=body)
        self._expect_ok(response, path)
        return response

    @staticmethod
    def _expect_ok(response: requests.Response, path: str) -> None:
        if response.status_code != 200:
            raise ComfyUIBadResponse(f"{response.request.method} {path}: HTTP {response.status_code}: "
                                     f"{response.text[:200]}", status_code=response.status_code)

    @staticmethod
    def _json(response: requests.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ComfyUIBadResponse(f"{path}: body is not JSON: {response.text[:200]!r}",
                                     status_code=response.status_code) from exc

    # -- server state ----------------------------------------------------------------------------

    def health(self) -> bool:
        """True when ComfyUI answers /system_stats. Never raises."""
        try:
            response = self._request("GET", "/system_stats", timeout=min(self.timeout, 5.0))
            return response.status_code == 200 and isinstance(response.json(), dict)
        except Exception as exc:  # the contract is "never raises": any failure means unhealthy
            logger.debug("ComfyUI health check failed: %s", exc)
            return False

    def system_stats(self) -> dict:
        data = self._get_json("/system_stats")
        if not isinstance(data, dict):
            raise ComfyUIBadResponse("/system_stats is not an object")
        return data

    def vram(self) -> tuple[int, int]:
        """(total, free) bytes of the first device. On --cpu ComfyUI reports system RAM here."""
        devices = self.system_stats().get("devices") or []
        if not devices or not isinstance(devices[0], dict):
            raise ComfyUIBadResponse("/system_stats lists no devices")
        try:
            return int(devices[0]["vram_total"]), int(devices[0]["vram_free"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ComfyUIBadResponse(f"/system_stats device has no vram figures: {devices[0]!r}") from exc

    def _combo(self, class_type: str, input_name: str) -> list[str] | None:
        """The choices of a combo input from /object_info/<class>, or None when it is not there."""
        data = self._get_json(f"/object_info/{quote(class_type, safe='')}")
        info = data.get(class_type) if isinstance(data, dict) else None
        if not isinstance(info, dict):
            return None
        inputs = info.get("input") or {}
        spec = (inputs.get("required") or {}).get(input_name) or (inputs.get("optional") or {}).get(input_name)
        return combo_choices(spec)

    def _model_files(self, class_type: str, input_name: str, folder: str) -> list[str]:
        choices = self._combo(class_type, input_name)
        if choices is not None:
            return choices
        data = self._get_json(f"/models/{folder}")
        if not isinstance(data, list):
            raise ComfyUIBadResponse(f"/models/{folder} is not a list")
        return [str(name) for name in data]

    def _required_combo(self, class_type: str, input_name: str) -> list[str]:
        choices = self._combo(class_type, input_name)
        if choices is None:
            raise ComfyUIBadResponse(f"/object_info/{class_type} has no combo input {input_name}")
        return choices

    def checkpoints(self) -> list[str]:
        return self._model_files("CheckpointLoaderSimple", "ckpt_name", "checkpoints")

    def loras(self) -> list[str]:
        return self._model_files("LoraLoader", "lora_name", "loras")

    def samplers(self) -> list[str]:
        return self._required_combo("KSampler", "sampler_name")

    def schedulers(self) -> list[str]:
        return self._required_combo("KSampler", "scheduler")

    # -- prompts ---------------------------------------------------------------------------------

    def submit(self, graph: dict, *, prompt_id: str, front: bool = False, number: float | None = None,
               extra_data: dict | None = None) -> Submitted:
        """Queue `graph` under our prompt_id and client_id.

        Raises ComfyUIRejected on HTTP 400 and on a 200 whose node_errors is not empty (ComfyUI then
        queued only the valid outputs; we take that partial prompt back out). A transport error is
        retried only after /queue and /history show the prompt was not accepted. If prompt_id ran
        before, its old history entry stays until the new run overwrites it: delete_history() first
        or wait_for() may return the old entry.
        """
        if not prompt_id:
            raise ValueError("prompt_id is required")
        body: dict[str, Any] = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        if number is not None:
            body["number"] = number  # ComfyUI ignores front when number is given
        elif front:
            body["front"] = True
        if extra_data:
            body["extra_data"] = extra_data
        for stream in self._streams:
            stream._forget(prompt_id)  # a re-submitted id must not complete from an old run's events

        url = self.base_url + "/prompt"
        attempts = 1 + self.retries
        for attempt in range(attempts):
            try:
                response = self._session.post(url, json=body, timeout=self.timeout)
                break
            except _TRANSPORT_ERRORS as exc:
                if attempt + 1 >= attempts:
                    raise ComfyUIUnreachable(
                        f"POST {url} for prompt {prompt_id}: {exc}. It may have been accepted: check "
                        f"locate() before submitting it again") from exc
                logger.warning("POST /prompt for %s failed (%s); checking whether it was accepted", prompt_id, exc)
                time.sleep(_backoff(attempt))
                if not _request_not_sent(exc):
                    try:
                        accepted = self._accepted(prompt_id)
                    except ComfyUIUnreachable as check_exc:
                        raise ComfyUIUnreachable(
                            f"POST {url} for prompt {prompt_id}: {exc}; could not check whether it was "
                            f"accepted ({check_exc}): check locate() before submitting it again") from check_exc
                    if accepted is not None:
                        logger.warning("prompt %s was accepted despite the error; node_errors unknown", prompt_id)
                        return accepted
            except requests.RequestException as exc:
                raise ComfyUIError(f"POST {url}: {exc}", retryable=False) from exc

        if response.status_code >= 500:
            raise ComfyUIUnreachable(f"POST /prompt: HTTP {response.status_code}: {response.text[:200]}",
                                     status_code=response.status_code)
        if response.status_code == 400:
            try:
                data = response.json()
            except ValueError:
                data = {"error": {"type": "http_400", "message": response.text[:500]}}
            data = data if isinstance(data, dict) else {}
            raise ComfyUIRejected(data.get("error"), data.get("node_errors"))
        self._expect_ok(response, "/prompt")
        data = self._json(response, "/prompt")
        if not isinstance(data, dict) or "prompt_id" not in data:
            raise ComfyUIBadResponse(f"POST /prompt answered {str(data)[:200]}")
        submitted = Submitted(str(data["prompt_id"]), float(data.get("number", 0)), data.get("node_errors") or {})
        if submitted.prompt_id != prompt_id:
            # ComfyUI older than client-chosen prompt ids: the worker's bookkeeping cannot follow it.
            self._withdraw(submitted.prompt_id)
            raise ComfyUIError(f"ComfyUI ignored prompt_id {prompt_id} and queued {submitted.prompt_id}; "
                               f"it is too old for this client", retryable=False)
        if submitted.node_errors:
            self._withdraw(prompt_id)
            raise ComfyUIRejected(
                {"type": "prompt_outputs_failed_validation",
                 "message": "Some outputs failed validation (ComfyUI queued the rest; withdrawn)",
                 "details": "", "extra_info": {}},
                submitted.node_errors, prompt_id=prompt_id)
        logger.info("submitted prompt %s (number %s)", prompt_id, submitted.number)
        return submitted

    def _withdraw(self, prompt_id: str) -> None:
        """Best effort: drop a prompt we do not want from the queue, or stop it if it already started."""
        try:
            self.delete_pending([prompt_id])
            self.interrupt(prompt_id)
        except ComfyUIError as exc:
            logger.warning("could not withdraw prompt %s: %s", prompt_id, exc)

    def _accepted(self, prompt_id: str) -> Submitted | None:
        queue = self.queue()
        if prompt_id in queue:
            return Submitted(prompt_id, queue.numbers.get(prompt_id, 0.0), {})
        entry = self.history(prompt_id)
        if entry is not None:
            return Submitted(prompt_id, entry.number or 0.0, {})
        return None

    def queue(self) -> QueueState:
        data = self._get_json("/queue")
        if not isinstance(data, dict):
            raise ComfyUIBadResponse("/queue is not an object")
        numbers: dict[str, float] = {}

        def ids(items: Any) -> list[tuple[float, str]]:
            out = []
            for item in items or []:
                if isinstance(item, list) and len(item) >= 2:
                    number = float(item[0]) if isinstance(item[0], (int, float)) else 0.0
                    numbers[str(item[1])] = number
                    out.append((number, str(item[1])))
            return out

        running = [pid for _, pid in ids(data.get("queue_running"))]
        # queue_pending is the raw heap; ComfyUI's heap orders by (number, prompt_id, ...)
        pending = [pid for _, pid in sorted(ids(data.get("queue_pending")))]
        return QueueState(running, pending, numbers)

    def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt, or None while it is unknown, queued or running."""
        data = self._get_json(f"/history/{quote(prompt_id, safe='')}")
        if not data:
            return None
        if not isinstance(data, dict):
            raise ComfyUIBadResponse(f"/history/{prompt_id} is not an object")
        entry = data.get(prompt_id)
        if entry is None:
            return None
        return HistoryEntry.from_json(prompt_id, entry)

    def locate(self, prompt_id: str) -> str | None:
        """Where a prompt is: "running", "pending", "done" (in history) or None (lost or never queued)."""
        return self._locate(prompt_id)[0]

    def _locate(self, prompt_id: str) -> tuple[str | None, HistoryEntry | None]:
        # History, then the queue, then history again: ComfyUI moves a prompt from running to history
        # under one lock, so one that finishes between the first two reads is not taken for lost.
        entry = self.history(prompt_id)
        if entry is not None:
            return "done", entry
        queue = self.queue()
        if prompt_id in queue.running:
            return "running", None
        if prompt_id in queue.pending:
            return "pending", None
        entry = self.history(prompt_id)
        return ("done", entry) if entry is not None else (None, None)

    def delete_history(self, prompt_ids: list[str]) -> None:
        if prompt_ids:
            self._post("/history", {"delete": list(prompt_ids)})

    def delete_pending(self, prompt_ids: list[str]) -> None:
        """Remove pending prompts; a deleted prompt never runs. The running one is not touched."""
        if prompt_ids:
            self._post("/queue", {"delete": list(prompt_ids)})

    def interrupt(self, prompt_id: str) -> None:
        """Stop this prompt if it is the one running; otherwise ComfyUI does nothing."""
        if not prompt_id:
            # An empty body is ComfyUI's *global* interrupt: never send it by accident.
            raise ValueError("prompt_id is required")
        self._post("/interrupt", {"prompt_id": prompt_id})

    def download(self, ref: ImageRef) -> bytes:
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
        response = self._request("GET", "/view", params=params, retry=True)
        self._expect_ok(response, "/view")
        content = response.content
        if ref.filename.lower().endswith(".png") and not content.startswith(PNG_SIGNATURE):
            raise ComfyUIBadResponse(f"/view {ref.subfolder}/{ref.filename} is not a PNG "
                                     f"({len(content)} bytes beginning {content[:8]!r})")
        return content

    # -- events and waiting ----------------------------------------------------------------------

    def events(self) -> "EventStream":
        """Open the /ws stream for this client_id. Open it before submitting: ComfyUI drops events
        for a socket that is not connected. Keep one stream per client_id: a second socket with the
        same id takes the events away from the first."""
        stream = EventStream(self.base_url, self.client_id, connect_timeout=min(self.timeout, 5.0))
        stream.connect()
        self._streams = [s for s in self._streams if not s.closed] + [stream]
        return stream

    def wait_for(self, prompt_id: str, *, timeout: float, stream: "EventStream | None" = None,
                 on_event: Callable[[Event], None] | None = None, poll_interval: float = 1.0,
                 unreachable_grace: float = 10.0) -> HistoryEntry:
        """Wait until the prompt is finished and return its history entry, whatever its status
        (call raise_for_status()).

        Follows the stream and hands every event of this prompt (and "reconnected") to on_event.
        Completion is `executing` with node null, sent after the history is stored. When no event of
        this prompt came for poll_interval, when the stream dropped, or without a stream, it polls
        /history and /queue instead. Raises ComfyUIPromptLost when the prompt is in neither,
        ComfyUITimeout past `timeout`, ComfyUIUnreachable when ComfyUI stays unreachable for
        unreachable_grace seconds.
        """
        if stream is not None and stream.client_id != self.client_id:
            raise ValueError(f"stream is for client_id {stream.client_id}, not {self.client_id}: "
                             f"ComfyUI sends this client's events only to its own socket")
        deadline = time.monotonic() + timeout
        next_poll = time.monotonic() + (poll_interval if stream is not None else 0.0)
        stream_down_until = 0.0
        unreachable_since: float | None = None
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    try:
                        entry = self.history(prompt_id)
                    except ComfyUIError:
                        entry = None
                    if entry is not None:
                        return entry
                    raise ComfyUITimeout(prompt_id, timeout)
                if now >= next_poll:
                    try:
                        where, entry = self._locate(prompt_id)
                        unreachable_since = None
                    except ComfyUIUnreachable:
                        unreachable_since = unreachable_since if unreachable_since is not None else now
                        if now - unreachable_since >= unreachable_grace:
                            raise
                        where, entry = "unknown", None
                    if entry is not None:
                        return entry
                    if where is None:
                        raise ComfyUIPromptLost(prompt_id)
                    next_poll = time.monotonic() + poll_interval
                    continue
                wait = max(0.0, min(next_poll, deadline) - time.monotonic())
                if stream is None or time.monotonic() < stream_down_until:
                    time.sleep(wait)
                    continue
                try:
                    event = stream._next_for(prompt_id, wait)
                except ComfyUIUnreachable as exc:
                    logger.info("event stream unavailable while waiting on %s: %s", prompt_id, exc)
                    stream_down_until = time.monotonic() + poll_interval
                    next_poll = time.monotonic()
                    continue
                if event is None:
                    continue  # silence for poll_interval: the next round polls
                if on_event is not None:
                    on_event(event)
                if event.type == "reconnected" or event.is_done_marker:
                    next_poll = time.monotonic()  # events may have been missed / history is stored
                else:
                    next_poll = time.monotonic() + poll_interval
        finally:
            if stream is not None:
                stream._forget(prompt_id)


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
        buffer.append(event)

    def _forget(self, prompt_id: str) -> None:
        self._buffers.pop(prompt_id, None)
        self._completed.pop(prompt_id, None)
