"""Signing webhook bodies, so a receiver can tell a message came from us and was not replayed.

    X-DGX-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<raw body>")>

The time is inside the signed text: a receiver that checks it (within `tolerance`) refuses an old
message captured and sent again. The key is DGX_WEBHOOK_SECRET; when that is empty a key is
derived from Django's SECRET_KEY (salted_hmac), which works but ties every receiver to the site's
secret key, so the worker warns at start. Several `v1=` entries may be given (a key being rotated):
one match is enough.
"""
from __future__ import annotations

import hashlib
import hmac
import time

from django.conf import settings

HEADER = "X-DGX-Signature"
DERIVED_SALT = "dgxpixels.webhooks.signing-key"


def secret_is_derived() -> bool:
    return not getattr(settings, "WEBHOOK_SECRET", "")


def signing_key() -> str:
    """DGX_WEBHOOK_SECRET, or (when empty) a key derived from SECRET_KEY: its hex is what a receiver
    must use then (`manage.py webhook_worker --show-secret` prints it)."""
    secret = getattr(settings, "WEBHOOK_SECRET", "")
    if secret:
        return secret
    from django.utils.crypto import salted_hmac

    return salted_hmac(DERIVED_SALT, "webhook signing key", algorithm="sha256").hexdigest()


def _key_bytes(secret: str | bytes) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(_key_bytes(secret), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(body: bytes, *, secret: str | bytes | None = None, now: float | None = None) -> str:
    """The X-DGX-Signature header value for `body` (the exact bytes sent)."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={signature(signing_key() if secret is None else secret, timestamp, body)}"


def verify_signature(secret: str | bytes, header: str | None, body: bytes, *, tolerance: float = 300,
                     now: float | None = None) -> bool:
    """True when `header` signs `body` with `secret` and its time is within `tolerance` seconds of
    `now` (either side: a receiver's clock may run ahead). Constant-time comparison; any malformed
    header is simply False."""
    if not header or not isinstance(body, (bytes, bytearray)):
        return False
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, bytes(body))
    return any(hmac.compare_digest(expected.encode(), c.encode("utf-8", "replace")) for c in candidates)
