"""What each command does: the same services as the HTTP API, with the same ownership rules.

`handle(frames, config)` turns one message into one reply object and never raises: a bad
request, an unknown job, a refused submission and a bug in a service all become
{"ok": false, "error": ...}, because a REQ client that gets no reply is stuck for good.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import close_old_connections

from batches.services import job_requests
from batches.services.submission import SubmissionError
from batches.zmq_gateway import protocol
from batches.zmq_gateway.protocol import ProtocolError

log = logging.getLogger("batches.zmq_gateway")


@dataclass(frozen=True)
class Config:
    user_name: str | None = None  # --user: who a request without a token acts as (None: like the CLI)
    require_token: bool = False  # --require-token: a request without a valid token is refused


def handle(frames: list[bytes], config: Config) -> dict:
    """The reply to one request message (frames without the routing envelope)."""
    command = "?"
    try:
        request = protocol.decode(frames)
        command = request.command
        if command == "ping":  # health checks must not need the database
            return protocol.ok(pong="dgx-pixels zmq_gateway")
        close_old_connections()  # a connection the database dropped while we were idle is replaced
        try:
            user = acting_user(request, config)
            return COMMANDS[command](request, user)
        finally:
            close_old_connections()
    except ProtocolError as exc:
        return protocol.error(exc.message, exc.errors)
    except Exception as exc:  # a bug or an outage: reply anyway, and keep serving
        log.exception("zmq_gateway: %s failed", command)
        return protocol.error(f"the gateway could not complete {command!r} ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); try again, and see the gateway's log if it persists")


def acting_user(request: protocol.Request, config: Config):
    """The request's token's user; else the gateway's --user (or the CLI's default user)."""
    from batches.models import ApiToken

    if request.token is not None:
        row = ApiToken.find(request.token)
        if row is None:
            raise ProtocolError("token: unknown or revoked API token; issue one in the admin (API tokens)",
                                {"token": ["unknown or revoked"]})
        row.touch()
        return row.user
    if config.require_token:
        raise ProtocolError('token: this gateway requires an API token in every request ("token": "...")',
                            {"token": ["missing"]})
    from batches.cli import UsageError, resolve_user

    try:
        return resolve_user(config.user_name)
    except UsageError as exc:  # the --user account was deleted since start-up
        raise ProtocolError(f"the gateway's {exc}; send a token instead") from None


def _job(user, job_id: int):
    job = job_requests.visible_jobs(user).filter(pk=job_id).first()
    if job is None:  # another user's job reads exactly like a missing one
        raise ProtocolError(f"no job {job_id}: send list to see your jobs", {"job_id": [f"no job {job_id}"]})
    return job


def submit(request: protocol.Request, user) -> dict:
    from batches.models import Comparison

    try:
        queued = job_requests.submit(owner=user, data=request.args["job"])
    except SubmissionError as exc:
        errors = exc.errors or {"job": ["refused"]}  # keyed by the job object's keys (count, cfg_scale, ...)
        key, messages = next(iter(errors.items()))
        more = f" (and {len(errors) - 1} more in errors)" if len(errors) > 1 else ""
        raise ProtocolError(f"nothing queued: {key}: {(messages or ['refused'])[0]}{more}", errors) from None
    if isinstance(queued, Comparison):  # one job per cell
        return protocol.ok(comparison_id=queued.pk,
                           job_ids=list(queued.cells.order_by("pk").values_list("pk", flat=True)))
    return protocol.ok(job_id=queued.pk)


def status(request: protocol.Request, user) -> dict:
    job = _job(user, request.args["job_id"])
    return protocol.ok(job=job_requests.job_document(job, base_url=job_requests.public_base_url()))


def cancel(request: protocol.Request, user) -> dict:
    from batches.services.control import job_cancel

    job = _job(user, request.args["job_id"])
    return protocol.ok(job_id=job.pk, cancelled=job_cancel(job, by=user.get_username()))


def list_jobs(request: protocol.Request, user) -> dict:
    jobs = job_requests.visible_jobs(user).order_by("-pk")
    if "status" in request.args:
        jobs = jobs.filter(status=request.args["status"])
    return protocol.ok(jobs=[protocol.short_document(j) for j in jobs[:request.args["limit"]]])


COMMANDS = {"submit": submit, "status": status, "cancel": cancel, "list": list_jobs}
