"""The gateway's wire format: reading a request and writing a reply, with no sockets and no database.

A request is ONE frame holding one UTF-8 JSON object with a "command":

    {"command": "submit", "job": {...the HTTP API's fields...}, "token": "dgx_..."}
    {"command": "status", "job_id": 12}        {"command": "cancel", "job_id": 12}
    {"command": "list", "status": "running", "limit": 50}        {"command": "ping"}

A reply is one frame holding one JSON object: {"ok": true, ...} or
{"ok": false, "error": "<one line saying what to fix>", "errors": {"field": ["..."]}}.

Everything a client can get wrong is caught here and becomes a ProtocolError whose message names
the key and the fix, so the server only has to turn it into a reply: a REQ client whose request
gets no reply is stuck for good, so nothing here may raise anything else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.core.serializers.json import DjangoJSONEncoder

from batches.numbers import MAX_ID

MAX_REQUEST_BYTES = 1024 * 1024  # a submit of 1 000 prompts is ~100 KB; anything past this is refused
MAX_TOKEN_CHARS = 200  # ApiToken.find refuses longer tokens too
LIST_DEFAULT, LIST_MAX = 50, 200
STATUSES = ("queued", "running", "completed", "partial", "failed", "cancelled")  # Job.Status values
COMMANDS = {
    # command -> (required keys, optional keys), besides "command" and "token"
    "submit": ({"job"}, set()),
    "status": ({"job_id"}, set()),
    "cancel": ({"job_id"}, set()),
    "list": (set(), {"status", "limit"}),
    "ping": (set(), set()),
}
SCHEMA_HINT = ('send one JSON object such as {"command": "status", "job_id": 12}; '
               f"commands: {', '.join(COMMANDS)}")


class ProtocolError(Exception):
    """A request the gateway cannot act on: `message` says what to fix, `errors` names the keys."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = " ".join(str(message).split())  # one line, whatever went in
        self.errors = errors


@dataclass
class Request:
    command: str
    token: str | None = None
    args: dict = field(default_factory=dict)


def _shown(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 42 else text[:40] + "..."


def decode(frames: list[bytes]) -> Request:
    """The request in a message's frames (the routing envelope already removed)."""
    if len(frames) != 1:
        raise ProtocolError(f"a message of {len(frames)} parts; send the request as one frame "
                            "(one JSON object)")
    raw = frames[0]
    if len(raw) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"a message of {len(raw):,} bytes; the limit is {MAX_REQUEST_BYTES:,} "
                            "(send fewer prompts per job)")
    if not raw:
        raise ProtocolError(f"an empty message; {SCHEMA_HINT}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"the message is not UTF-8 (byte {exc.start}); send JSON text in UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("the JSON is nested too deeply; send a flat request object") from None
    except ValueError as exc:
        raise ProtocolError(f"the message is not JSON ({exc}); {SCHEMA_HINT}") from None
    return parse(data)


def _no_constant(name: str):
    """Python's json reads NaN and Infinity, which JSON does not have and no field takes."""
    raise ValueError(f"{name} is not a JSON number")


def parse(data) -> Request:
    """A decoded JSON value as a Request; every missing, unknown or mistyped key is named."""
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object, got {_kind(data)}; {SCHEMA_HINT}")
    command = data.get("command")
    if not isinstance(command, str) or command not in COMMANDS:
        problem = "missing" if command is None else f"unknown command {_shown(command)}"
        raise ProtocolError(f"command: {problem}; use one of {', '.join(COMMANDS)}",
                            {"command": [f"{problem}; use one of {', '.join(COMMANDS)}"]})
    required, optional = COMMANDS[command]
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in required | optional | {"command", "token"}:
            allowed = ", ".join(sorted(required | optional | {"token"})) or "token"
            errors.setdefault(str(key)[:100], []).append(f"unknown key for {command}: it takes {allowed}")
    for key in sorted(required - set(data)):
        errors.setdefault(key, []).append(f"missing: {command} needs {key}")
    token = data.get("token")
    if token is not None and (not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS):
        errors.setdefault("token", []).append("expected an API token (a string from the admin's API tokens)")
        token = None
    args: dict = {}
    checks = {"job": _job, "job_id": _job_id, "status": _status, "limit": _limit}
    for key in (required | optional) & set(data):
        try:
            args[key] = checks[key](data[key])
        except ValueError as exc:
            errors.setdefault(key, []).append(str(exc))
    if errors:
        key, messages = next(iter(errors.items()))
        more = f" (and {len(errors) - 1} more in errors)" if len(errors) > 1 else ""
        raise ProtocolError(f"{key}: {messages[0]}{more}", errors)
    if command == "list":
        args.setdefault("limit", LIST_DEFAULT)
    return Request(command=command, token=token, args=args)


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {_shown(value)}"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    return "a list" if isinstance(value, list) else "an object"


def _job(value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f'expected an object of job fields ({{"prompt": "...", "count": 4}}), got {_kind(value)}')
    return value


def _job_id(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a job id (a whole number), got {_kind(value)}")
    if not 1 <= value <= MAX_ID:
        raise ValueError(f"{value} is not a job id: ids run from 1 to {MAX_ID}")
    return value


def _status(value) -> str:
    if value not in STATUSES:
        raise ValueError(f"expected one of {', '.join(STATUSES)}, got {_kind(value)}")
    return value


def _limit(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LIST_MAX:
        raise ValueError(f"expected a whole number from 1 to {LIST_MAX}, got {_kind(value)}")
    return value


# --- replies ---------------------------------------------------------------------------------


def ok(**fields) -> dict:
    return {"ok": True, **fields}


def error(message: str, errors: dict[str, list[str]] | None = None) -> dict:
    reply = {"ok": False, "error": " ".join(str(message).split())}
    if errors:
        reply["errors"] = errors
    return reply


def encode(reply: dict) -> bytes:
    """A reply as one frame; datetimes and decimals as the CLI's --json writes them."""
    return json.dumps(reply, cls=DjangoJSONEncoder, separators=(",", ":")).encode("utf-8")


def short_document(job) -> dict:
    """A job as one row of a list reply: enough to pick one and ask for its status."""
    return {
        "id": job.pk, "name": job.name, "status": job.status, "owner": job.owner.get_username(),
        "priority": job.priority_name, "profile": job.profile, "comparison": job.comparison_id,
        "images_planned": job.images_planned, "images_done": job.images_done,
        "images_failed": job.images_failed, "progress": round(job.progress, 4),
        "created_at": job.created_at, "finished_at": job.finished_at,
    }
