"""Sending one delivery: claim it, check the target again, POST the signed body, record the outcome.

At-least-once: a row is claimed (pending -> sending, compare-and-set) before it is sent, and a row
left `sending` by a worker that died is taken back after `reclaim_after` seconds and sent again
under the same delivery id. Receivers dedupe on X-DGX-Delivery.
"""
from __future__ import annotations

import ipaddress
import json
import logging

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from django.conf import settings
from django.utils import timezone

from batches.models import WebhookDelivery, WebhookEndpoint
from batches.services.webhooks.signing import HEADER, sign
from batches.services.webhooks.targets import internal, is_allowed_host, url_problem

log = logging.getLogger("batches.webhooks")

USER_AGENT = "dgx-pixels-webhooks/1"
RECLAIM_MARGIN = 5.0  # seconds past the request timeout before a `sending` row counts as abandoned
ERROR_BODY = 500  # characters of a receiver's error answer kept in last_error


def reclaim_after() -> float:
    """How long a row may stay `sending` before another worker takes it back. A request may take
    longer than WEBHOOK_TIMEOUT (it bounds connect and each read, not the total), hence twice it."""
    return float(settings.WEBHOOK_TIMEOUT) * 2 + RECLAIM_MARGIN


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes sent: the stored payload with this delivery's id after the event name."""
    payload = dict(delivery.payload or {})
    document = {"event": payload.pop("event", delivery.event), "delivery": delivery.pk}
    document.update(payload)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def headers_for(delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-DGX-Event": delivery.event,
        "X-DGX-Delivery": str(delivery.pk),
        HEADER: sign(body),
    }


class _PeerChecked:
    """A connection that checks the address it actually connected to, before sending a byte:
    url_problem() resolves the name first, but a name can be re-pointed between that look-up
    and the connection's own (DNS rebinding); this closes the gap."""

    def _new_conn(self):
        sock = super()._new_conn()
        try:
            address = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
        except (OSError, ValueError):
            return sock
        if internal(address) and not is_allowed_host(self.host):
            sock.close()
            raise NewConnectionError(self, f"refused: {self.host} connected to the internal address {address}, "
                                           f"not allowed by DGX_WEBHOOK_ALLOW")
        return sock


class _HTTPConnection(_PeerChecked, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_PeerChecked, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def post(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    """One POST: no redirects followed (a 3xx is a failed attempt: a redirect could lead to an
    address the allow-list refuses), no proxy from the environment, and the connected address
    checked against the allow-list (the address checked is the address reached)."""
    with requests.Session() as session:
        session.trust_env = False
        session.mount("http://", _CheckedAdapter())
        session.mount("https://", _CheckedAdapter())
        response = session.post(url, data=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT,
                                allow_redirects=False, stream=True)
        try:
            response._dgx_text = response.raw.read(ERROR_BODY, decode_content=True).decode("utf-8", "replace")
        except Exception:  # the status is what counts; the body is only a hint for the log
            response._dgx_text = ""
        response.close()
        return response


def send(delivery: WebhookDelivery) -> str:
    """Send a claimed delivery and record the outcome; returns "delivered", "retry" or "failed"."""
    if delivery.attempts > int(settings.WEBHOOK_MAX_ATTEMPTS):  # taken back after its last attempt
        delivery.failed_attempt(error=delivery.last_error or "out of attempts: the worker sending the last one "
                                                             "stopped before it was answered", final=True)
        return "failed"
    problem = url_problem(delivery.url)  # again, on the addresses the name resolves to now
    if problem:
        delivery.failed_attempt(error=f"refused: {delivery.url} {problem}", final=True)
        return "failed"
    body = body_of(delivery)
    try:
        response = post(delivery.url, body, headers_for(delivery, body))
    except requests.RequestException as exc:
        delivery.failed_attempt(error=f"{type(exc).__name__}: {exc}"[:4000])
        return _outcome(delivery)
    code = response.status_code
    if 200 <= code < 300:
        delivery.delivered(code)
        return "delivered"
    if 300 <= code < 400:
        error = f"HTTP {code}: redirect to {response.headers.get('Location', '?')} not followed; give the final URL"
    else:
        error = f"HTTP {code}: {getattr(response, '_dgx_text', '')}".strip()
    delivery.failed_attempt(error=error, status_code=code)
    return _outcome(delivery)


def _outcome(delivery: WebhookDelivery) -> str:
    return "failed" if delivery.status == WebhookDelivery.Status.FAILED else "retry"


def deliver_due(*, say=None, stop=lambda: False, reclaim: float | None = None, limit: int | None = None) -> int:
    """Send deliveries that are due, one after another, until none is left (or `stop()`).
    Logs one line per attempt. Returns how many attempts were made."""
    reclaim = reclaim_after() if reclaim is None else reclaim
    made = 0
    while not stop() and (limit is None or made < limit):
        delivery = WebhookDelivery.claim_due(stale_after=reclaim)
        if delivery is None:
            break
        made += 1
        outcome = send(delivery)
        line = (f"webhook {delivery.pk} {delivery.event} job={delivery.job_id or '-'} -> {delivery.url}: "
                f"attempt {delivery.attempts}{' (taken back)' if getattr(delivery, 'taken_back', False) else ''}, "
                f"{outcome}")
        if delivery.last_status_code is not None:
            line += f" [HTTP {delivery.last_status_code}]"
        if outcome == "retry":
            wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
            line += f", next try in {max(0.0, wait):.1f} s"
        if outcome != "delivered" and delivery.last_error:
            line += f": {delivery.last_error[:200]}"
        (say or log.info)(line)
    return made


def queue_ping(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `ping` delivery to an endpoint ("Send test"): proves the URL, the signature and the
    receiver's code before a real job depends on them."""
    return WebhookDelivery.objects.create(
        endpoint=endpoint, url=endpoint.url, event="ping",
        payload={"event": "ping", "created_at": timezone.now().isoformat(),
                 "endpoint": {"id": endpoint.pk, "url": endpoint.url, "progress": endpoint.progress},
                 "owner": endpoint.owner.get_username()},
    )


def redeliver(delivery: WebhookDelivery) -> WebhookDelivery:
    return delivery.redeliver()


def remove_endpoint(endpoint: WebhookEndpoint) -> int:
    """Delete a standing webhook; its deliveries not made yet are failed (not sent to a URL its
    owner took away). The log rows stay. Returns how many were stopped."""
    stopped = WebhookDelivery.objects.filter(endpoint=endpoint, status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED, last_error="not sent: the webhook was removed")
    endpoint.delete()
    return stopped


def job_deliveries(job) -> list[WebhookDelivery]:
    """A job's deliveries for its page, newest first."""
    return list(job.webhook_deliveries.order_by("-id")[:50])
