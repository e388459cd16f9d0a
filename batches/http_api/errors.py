"""One error shape for every answer of the API: `{"errors": {"<field or __all__>": ["..."]}, "status": N}`.

Ninja's own handlers answer `{"detail": ...}` (422 for bad parameters, a plain-text 405, Django's
HTML 500); scripts would need a parser per status. Every handler here, and the URL guard for what
happens outside Ninja's operations (unknown routes, wrong methods, oversized bodies), answers the
same JSON, naming the request key at fault and what to do.
"""
from __future__ import annotations

import json
import logging
from functools import wraps

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from batches.services.control import ControlError
from batches.services.quotas import QuotaError
from batches.services.submission import SubmissionError

logger = logging.getLogger(__name__)
ALL = "__all__"
TOKEN_HINT = ("send the header 'Authorization: Bearer <token>'; get a token with ./dgx api_token USER, "
              "on /account/tokens/ or in the admin")


def error_body(status: int, errors: dict[str, list[str]]) -> dict:
    return {"errors": errors, "status": status}


def error_response(status: int, errors: dict[str, list[str]] | str, **headers: str) -> JsonResponse:
    """The one error answer; a plain message is filed under `__all__`."""
    if isinstance(errors, str):
        errors = {ALL: [errors]}
    response = JsonResponse(error_body(status, errors), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def body_limit() -> int:
    """Bytes a request body may have: Django's DATA_UPLOAD_MAX_MEMORY_SIZE, the limit Django itself
    enforces when the body is read, so there is one limit and one answer (413) for it."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440


def too_large() -> JsonResponse:
    limit = body_limit()
    return error_response(413, {"body": [f"the body is over {limit:,} bytes; send a smaller request "
                                         "(a job request is a few kilobytes)"]})


def _validation(request, exc: ValidationError):
    """Ninja's parameter errors (`loc` like ["query", "page_size"]) under the parameter's name."""
    errors: dict[str, list[str]] = {}
    for problem in exc.errors:
        loc = [str(part) for part in problem.get("loc", ()) if part not in ("query", "path", "body", "header")]
        field = loc[0] if loc else "body"
        errors.setdefault(field[:100], []).append(str(problem.get("msg", "invalid value")))
    return error_response(400, errors)


def _authentication(request, exc: AuthenticationError):
    return error_response(401, {"authorization": [f"no valid API token: {TOKEN_HINT}"]},
                          WWW_Authenticate='Bearer realm="dgx-pixels"')


def _throttled(request, exc: Throttled):
    wait = max(1, int(exc.wait or 60))
    return error_response(429, {ALL: [f"over {settings.API_RATE_LIMIT} requests a minute for this token; "
                                      f"retry after {wait} s"]}, Retry_After=str(wait))


def _http_error(request, exc: HttpError):
    message = exc.message if isinstance(getattr(exc, "message", None), str) else str(exc)
    return error_response(exc.status_code, message)


def _not_found(request, exc: Http404):
    message = str(exc) if exc.args else "not found"
    if message.startswith("No ") and "matches the given query" in message:
        message = "not found"
    return error_response(404, f"{message}: no such object, or not yours")


def _exception(request, exc: Exception):
    if isinstance(exc, RequestDataTooBig):
        return too_large()
    if isinstance(exc, SubmissionError):
        return error_response(400, exc.errors)
    if isinstance(exc, (QuotaError, ControlError)):  # the job's or the queue's state, not the request rate
        return error_response(409, str(exc))
    if isinstance(exc, PermissionDenied):
        return error_response(403, str(exc) or "not allowed")
    logger.exception("API %s %s failed", request.method, request.path)
    return error_response(500, "internal error: the server log has the details; retry, or report it")


def install(api) -> None:
    """Replace Ninja's default handlers with the ones above."""
    api.add_exception_handler(ValidationError, _validation)
    api.add_exception_handler(AuthenticationError, _authentication)
    api.add_exception_handler(Throttled, _throttled)
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(Http404, _not_found)
    api.add_exception_handler(Exception, _exception)


# --- outside Ninja's operations: the URL guard and the catch-all ------------------------------

def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def guard(view):
    """Wrap one of Ninja's URL views: refuse an oversized body before anything reads it (413), and
    turn Ninja's plain-text 405 into the error shape, keeping its Allow header."""
    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs):
        if _content_length(request) > body_limit():
            return too_large()
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith("application/json"):
            allowed = response.get("Allow", "")
            return error_response(405, f"{request.method} is not allowed here; use {allowed}", Allow=allowed)
        return response

    return guarded


@csrf_exempt  # token auth: no cookie-borne request reaches anything here, and a POST must get JSON 404
def unknown_route(request: HttpRequest, rest: str = ""):
    """404 for any path under /api/v1/ that names no endpoint; says so when only the slash is missing."""
    from django.urls import Resolver404, resolve

    hint = ""
    if not request.path.endswith("/"):
        try:
            resolve(request.path + "/")
            hint = f" (did you mean {request.path}/, with the trailing slash?)"
        except Resolver404:
            pass
    return error_response(404, f"no API endpoint at {request.path}{hint}; the endpoints are listed at /api/v1/docs")


def parse_json_body(request: HttpRequest):
    """The request's JSON value, or SubmissionError naming `body`."""
    raw = request.body
    if not raw.strip():
        raise SubmissionError({"body": ["the body is empty: send a JSON object of job fields"]})
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SubmissionError({"body": [f"not valid JSON ({exc}); send a JSON object of job fields "
                                        "with Content-Type: application/json"]}) from None
