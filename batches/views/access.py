"""Who may see and change what: every view gets its job or image through these helpers."""
from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404

from batches.models import Image, Job
from batches.numbers import NumberError, parse_id


def _id_or_404(value) -> int:
    """A path id the database cannot hold (past 2**63 - 1) names nothing: 404, not a query."""
    try:
        return parse_id(value)
    except NumberError:
        raise Http404("no such id") from None


def can_change(user, job: Job) -> bool:
    """Owners change their own jobs; staff change any job."""
    return user.is_staff or job.owner_id == user.pk


def get_job_for_user(request, job_id: int, *, change: bool = False) -> Job:
    """Any signed-in user may look at any job (a studio shares its gallery); changing needs rights.

    A job the user may not change answers 403 (PermissionDenied) on a change.
    """
    from django.core.exceptions import PermissionDenied

    job = get_object_or_404(Job.objects.select_related("owner"), pk=_id_or_404(job_id))
    if change and not can_change(request.user, job):
        raise PermissionDenied("only the job's owner or staff may change it")
    return job


def get_image_for_user(request, image_id: int, *, change: bool = False) -> Image:
    from django.core.exceptions import PermissionDenied

    image = get_object_or_404(Image.objects.select_related("job", "job__owner"), pk=_id_or_404(image_id))
    if change and not can_change(request.user, image.job):
        raise PermissionDenied("only the job's owner or staff may review its images")
    return image


__all__ = ["Http404", "can_change", "get_image_for_user", "get_job_for_user"]
