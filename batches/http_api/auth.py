"""Bearer tokens, and only them: the session cookie of a signed-in browser never authenticates an
API call. That is why the API needs no CSRF check (Ninja's views are CSRF-exempt): a forged
cross-site request carries cookies, never an Authorization header."""
from __future__ import annotations

from ninja.errors import HttpError
from ninja.security import HttpBearer

from batches.http_api import throttle
from batches.models import ApiToken


class TokenAuth(HttpBearer):
    """`Authorization: Bearer dgx_...` -> the token's row (request.auth); its user becomes request.user.

    An unknown, revoked or over-long token, or one whose user is inactive, answers 401. Each
    accepted request counts against the token's rate limit (throttle.check).
    """

    openapi_description = "An API token: ./dgx api_token USER, /account/tokens/ or the admin."

    def authenticate(self, request, token: str):
        row = ApiToken.find((token or "").strip())
        if row is None:
            return None
        throttle.check(row.pk)
        row.touch()
        request.user = row.user  # the session's user (if any) is not the caller
        return row


def require_staff(request) -> None:
    if not request.user.is_staff:
        raise HttpError(403, "only staff may do this; ask an operator, or use a staff user's token")
