"""For monitors and scrapers: `GET /healthz` (no sign-in) and `GET /metrics` (token or address).

Both are thin: the checks live in services/health.py (shared with `batch_doctor`), the metrics in
services/metrics.py. Neither uses the session, so both work with DEBUG off and without cookies.
"""
from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from batches.services import health, metrics


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """`{"ok": bool, "checks": {...}}`: 200 when every check passes, else 503."""
    report = health.health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503, json_dumps_params={"indent": 2})


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    for entry in settings.METRICS_ALLOW:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:  # not an address or network: never matches
            continue
    return False


def metrics_allowed(request: HttpRequest) -> bool:
    """A Bearer DGX_METRICS_TOKEN (when set), or REMOTE_ADDR in DGX_METRICS_ALLOW (addresses or networks).

    Only REMOTE_ADDR counts, never X-Forwarded-For: a header anyone can send proves nothing.
    """
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    return _address_allowed(request.META.get("REMOTE_ADDR", ""))


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponseForbidden("metrics: send Authorization: Bearer <DGX_METRICS_TOKEN>, or scrape from an "
                                     "address listed in DGX_METRICS_ALLOW\n", content_type="text/plain")
    from prometheus_client import CONTENT_TYPE_LATEST

    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
