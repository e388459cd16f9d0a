"""The job history: every job, newest first, searchable and filterable, in keyset pages."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from batches.numbers import NumberError
from batches.services import history


@login_required
@require_GET
def job_history(request: HttpRequest) -> HttpResponse:
    """`?q=` searches names and prompts; owner, status, profile, model, from/to filter; before/after page."""
    try:
        filters = history.HistoryFilters.from_query(request.GET)
        before = history.query_id(request.GET, "before", what="a job id")
        after = history.query_id(request.GET, "after", what="a job id", minimum=0)
    except NumberError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    page = history.history_page(filters, before=before, after=after)
    return render(request, "batches/job_history.html", {
        "page": page, "jobs": page.jobs, "filters": filters, "query_string": urlencode(filters.as_query()),
        "choices": history.history_choices(),
    })
