"""Which URLs a webhook may be sent to: http(s) only, and no loopback, private, link-local or
otherwise internal address unless its host is listed in DGX_WEBHOOK_ALLOW (server-side request
forgery: a webhook must not become a way to reach the studio's internal services).

Checked when a URL is given (form, CLI, API) and again before every delivery, on the addresses
the name resolves to then (a name can be re-pointed between the two).
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL = 500


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_allowed_host(host: str) -> bool:
    return host.lower().strip("[]") in {h.strip("[]") for h in settings.WEBHOOK_ALLOW}


def url_problem(url: str, *, resolve: bool = True) -> str | None:
    """Why `url` may not be a webhook target (a message saying what to do), or None when it may."""
    if not isinstance(url, str) or not url.strip():
        return "give an http:// or https:// URL"
    url = url.strip()
    if len(url) > MAX_URL:
        return f"is {len(url)} characters; the limit is {MAX_URL}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"must start with http:// or https://, not {parts.scheme + ':' if parts.scheme else url[:20]!r}"
    host = (parts.hostname or "").lower()
    if not host:
        return "has no host name: write it as https://host/path"
    if parts.username or parts.password:
        return "must not carry a user name or password: put a secret in the path or verify X-DGX-Signature"
    if is_allowed_host(host):
        return None
    if not resolve:
        return None
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return f"host {host!r} does not resolve ({exc}): check the name"
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if internal(address):
            return (f"host {host!r} is an internal address ({address}); webhooks to loopback or private "
                    f"addresses are refused unless DGX_WEBHOOK_ALLOW lists {host!r}")
    return None


def internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified (also as IPv4-mapped IPv6)."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return (address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified or not address.is_global)
