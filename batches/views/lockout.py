"""The page a sign-in answers after too many wrong passwords (django-axes calls it, for both logins)."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def locked_out(request: HttpRequest, original_response: HttpResponse | None = None,
               credentials: dict | None = None) -> HttpResponse:
    """429 with what happened and when to try again; `Retry-After` says the same to scripts."""
    cool_off: timedelta = settings.AXES_COOLOFF_TIME
    # Axes restarts the wait with every attempt made while locked: the wait is counted from now.
    minutes = max(1, round(cool_off.total_seconds() / 60))
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": minutes,
        "retry_at": timezone.now() + cool_off,
        "username": (request.POST.get("username") or "").strip()[:150],
        "login_url": "/admin/login/" if request.path.startswith("/admin/") else "/accounts/login/",
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
