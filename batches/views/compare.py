"""Batch against batch: two to four jobs side by side, rows aligned by prompt and seed."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from batches.models import Job
from batches.services import compare as comparing
from batches.views.access import can_change

ROWS_SHOWN = 300  # rows drawn at first; a 2000-image job would otherwise load 2000 x columns images


@login_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    """`?jobs=1,2[,3,4]` (or the picker's `?job=1&job=2`); fewer than two shows the picker alone.
    `&rows=all` draws every row (the first 300 otherwise)."""
    context: dict = {"candidates": comparing.compare_candidates(), "comparison": None, "error": "",
                     "selected": [], "max_jobs": comparing.MAX_COMPARE}
    status = 200
    try:
        ids = comparing.parse_job_ids(request.GET)
        context["selected"] = ids
        if len(ids) == 1:
            context["error"] = "Choose at least one more job to compare with."
        elif ids:
            comparison = comparing.compare_jobs(comparing.jobs_for_compare(ids))
            shown = None if request.GET.get("rows") == "all" else ROWS_SHOWN
            context.update(comparison=comparison, rows=comparison.rows[:shown],
                           changeable=[job.pk for job in comparison.jobs if can_change(request.user, job)],
                           rows_hidden=max(0, len(comparison.rows) - (shown or len(comparison.rows))))
    except comparing.CompareError as exc:
        context["error"], status = str(exc), 400
    except Job.DoesNotExist as exc:
        context["error"], status = str(exc), 404
    return render(request, "batches/compare.html", context, status=status)
