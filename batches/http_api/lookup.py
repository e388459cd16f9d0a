"""Ownership for the API: a non-staff token sees and acts on its own jobs, images and comparisons
only, and another user's object answers 404, as if it did not exist (no 403 that would confirm
it does). Staff see everything."""
from __future__ import annotations

from django.http import Http404

from batches.models import Comparison, Image
from batches.numbers import NumberError, parse_id
from batches.services.job_requests import visible_jobs


def _id(value) -> int:
    try:
        return parse_id(value)
    except NumberError:
        raise Http404("no such id") from None


def job_for(request, job_id):
    job = visible_jobs(request.user).filter(pk=_id(job_id)).first()
    if job is None:
        raise Http404(f"job {job_id} not found")
    return job


def image_for(request, image_id):
    images = Image.objects.select_related("job", "job__owner")
    if not request.user.is_staff:
        images = images.filter(job__owner=request.user)
    image = images.filter(pk=_id(image_id)).first()
    if image is None:
        raise Http404(f"image {image_id} not found")
    return image


def comparison_for(request, comparison_id):
    comparisons = Comparison.objects.all() if request.user.is_staff else Comparison.objects.filter(owner=request.user)
    comparison = comparisons.filter(pk=_id(comparison_id)).first()
    if comparison is None:
        raise Http404(f"comparison {comparison_id} not found")
    return comparison
