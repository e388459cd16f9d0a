"""The signed-in user's API tokens: create one (shown once), list them, revoke one.

One URL: GET lists; POST `action=create` (with an optional `name`) issues a token and shows it on
the answer page itself (never in a redirect's URL or the session, and `Cache-Control: no-store`),
POST `action=revoke` with `token=<id>` revokes one of the user's own tokens. A token of another
user is a 404, as in the API.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from batches.models import ApiToken
from batches.numbers import NumberError, parse_id

MAX_NAME = 100


def _page(request: HttpRequest, *, new_token: str = "", new_row=None, error: str = "", status: int = 200):
    tokens = request.user.api_tokens.order_by("-created_at", "-id")
    response = render(request, "batches/account_tokens.html", {
        "tokens": tokens, "new_token": new_token, "new_row": new_row, "error": error,
        "max_name": MAX_NAME,
    }, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_tokens(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request)
    action = request.POST.get("action", "")
    if action == "create":
        name = (request.POST.get("name") or "").strip()
        if len(name) > MAX_NAME:
            return _page(request, error=f"The name is {len(name)} characters; use at most {MAX_NAME}.", status=400)
        row, token = ApiToken.issue(request.user, name=name)
        return _page(request, new_token=token, new_row=row)
    if action == "revoke":
        try:
            token_id = parse_id(request.POST.get("token", ""))
        except NumberError:
            raise Http404("no such token") from None
        row = request.user.api_tokens.filter(pk=token_id).first()
        if row is None:
            raise Http404("no such token")
        if row.revoke():
            messages.success(request, f"Revoked token {row.prefix}...; scripts using it now get 401.")
        return redirect("account-tokens")
    return _page(request, error="Unknown action: use the buttons on this page.", status=400)
