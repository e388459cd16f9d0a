"""Per-user limits on what waits in the queue, so one artist cannot fill it for everyone.

Counted in images not made yet (of jobs queued or running), checked by every way work enters
the queue: a submission (form, CLI, admin, API), a requeue and a retry. Staff are exempt.
"""
from __future__ import annotations

from django.conf import settings
from django.db.models import F, Sum

from batches.models import Job


class QuotaError(ValueError):
    """More queued images than the user may have; the message says how many and what to do."""


def queued_images(user) -> int:
    """Images of the user's queued and running jobs that are neither made nor failed yet."""
    left = Job.objects.filter(owner=user, status__in=Job.ACTIVE).aggregate(
        n=Sum(F("images_planned") - F("images_done") - F("images_failed")))["n"]
    return max(0, left or 0)


def queue_quota_problem(*, user, adding: int) -> str | None:
    """Why `adding` more images may not be queued for `user`, or None when they may."""
    limit = settings.USER_QUEUE_LIMIT
    if not limit or adding <= 0 or getattr(user, "is_staff", False):
        return None
    queued = queued_images(user)
    if queued + adding <= limit:
        return None
    name = user.get_username()
    return (f"{adding:,} more images would put {name} over the queue limit of {limit:,} images per user "
            f"({queued:,} already wait): wait until some are made, cancel queued jobs, queue fewer "
            f"(at most {max(0, limit - queued):,} now), or ask staff (DGX_USER_QUEUE_LIMIT)")


def check_queue_quota(*, user, adding: int) -> None:
    problem = queue_quota_problem(user=user, adding=adding)
    if problem:
        raise QuotaError(problem)
