"""How a POST action answers: JSON to the page's script, a redirect with a message without it."""
from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme


def wants_json(request: HttpRequest) -> bool:
    """The dashboard's scripts send `X-Requested-With: fetch`; plain forms do not."""
    return request.headers.get("X-Requested-With") == "fetch"


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                 require_https=request.is_secure()):
        return target
    return default


def action_done(request: HttpRequest, message: str, *, default: str, redirect_to: str | None = None,
                ok: bool = True) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"ok": ok, "message": message, "redirect": redirect_to}, status=200 if ok else 400)
    messages.add_message(request, messages.SUCCESS if ok else messages.ERROR, message)
    return redirect(redirect_to or safe_next(request, default))
