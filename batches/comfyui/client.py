"""The one module that talks to ComfyUI: HTTP routes, the /ws event stream, and waiting for a prompt.

Relies only on what ComfyUI v0.3.64 does on the wire (see shared/comfyui-api.md). Every HTTP call has
a timeout; only GETs are retried, a bounded number of times; every failure is a ComfyUIError that says
whether retrying can help. Not thread-safe: give each worker thread its own client and stream.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Callable
from urllib.parse import quote

import requests
import urllib3

from .errors import (
    ComfyUIBadResponse,
    ComfyUIError,
    ComfyUIPromptLost,
    ComfyUIRejected,
    ComfyUITimeout,
    ComfyUIUnreachable,
)
from .events import EventStream
from .types import Event, HistoryEntry, ImageRef, QueueState, Submitted

logger = logging.getLogger("batches.comfyui")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
