"""The statistics page: throughput over time, speed per profile and batch size, queue, outcomes."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from batches.numbers import NumberError, parse_count
from batches.services import stats as statistics
from batches.services.stats import queue_statistics


@login_required
@require_GET
def stats(request: HttpRequest) -> HttpResponse:
    """`?hours=1|6|24`; `?partial=1` answers the body alone (the page refreshes it every few seconds)."""
    try:  # a window the page does not offer falls back to 6 hours, as the service does
        hours = parse_count(request.GET.get("hours", "6"), minimum=1, maximum=max(statistics.WINDOWS), field="hours")
    except NumberError:
        hours = 6
    numbers = queue_statistics()
    series = statistics.throughput_series(hours=hours)
    context = {
        "stats": numbers,
        "series": series,
        "chart": statistics.bar_chart(series),
        "spark": statistics.sparkline(list(reversed(numbers["generation_times"]))),
        "profiles": statistics.profile_table(numbers["by_profile_and_batch_size"]),
        "outcomes": statistics.outcome_counts(),
        "windows": sorted(statistics.WINDOWS),
    }
    template = "batches/_stats_body.html" if request.GET.get("partial") else "batches/stats.html"
    return render(request, template, context)
