"""Submitting a job, the job page, and what an owner (or staff) can do to a job."""
from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from batches.forms import JobForm, RefinishForm, initial_from_job
from batches.models import Job, Priority, Unit, WorkerNode
from batches.numbers import NumberError, parse_id
from batches.services import auto_batch, control, finishing, previews, sheets
from batches.services.finishing.pages import job_summary
from batches.services.outputs import job_parameters
from batches.services.quotas import QuotaError
from batches.services.rates import rate_for
from batches.services.webhooks import job_deliveries
from batches.views.access import can_change, get_job_for_user
from batches.views.queue import latest_event_id
from batches.views.responses import action_done

IMAGES_ON_PAGE = 120  # newest first; the gallery pages through the rest
FAILED_UNITS_SHOWN = 50
UNIT_STRIP_LIMIT = 2000


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def job_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = JobForm(request.POST, request.FILES)
        job = form.submit(owner=request.user)
        if form.comparison is not None:
            cells = form.comparison.cells.count()
            messages.success(request, f"Comparison {form.comparison.pk} queued: {cells} cells.")
            return redirect("comparison-detail", comparison_id=form.comparison.pk)
        if job is not None:
            messages.success(request, f"Job {job.pk} queued: {job.images_planned} images.")
            return redirect("job-detail", job_id=job.pk)
        status = 400
    else:
        initial = {}
        source = request.GET.get("from", "")
        if source:
            try:
                initial = initial_from_job(get_job_for_user(request, parse_id(source, what="a job id")))
            except NumberError as exc:
                return HttpResponseBadRequest(f"from: {exc}", content_type="text/plain")
        form = JobForm(initial=initial)
        status = 200
    return render(request, "batches/job_form.html", {"form": form}, status=status)


def _state_context(request: HttpRequest, job: Job) -> dict:
    counts = dict(job.units.values_list("status").annotate(n=Count("id")))
    running = job.units.filter(status=Unit.Status.RUNNING).order_by("started_at").first()
    failed = list(job.units.filter(status=Unit.Status.FAILED).order_by("index")[:FAILED_UNITS_SHOWN])
    strip = list(job.units.order_by("index").values("pk", "index", "status", "batch_size", "prompt",
                                                     "batch_size_chosen", "vram_free")[:UNIT_STRIP_LIMIT])
    for u in strip:  # batch size auto: "auto (chose 4 at 30.1 GB free)"
        u["auto_note"] = auto_batch.note(job.batch_auto, u["batch_size_chosen"], u["vram_free"])
    if running is not None:
        running.auto_note = auto_batch.note(job.batch_auto, running.batch_size_chosen, running.vram_free)
    job.user_can_change = can_change(request.user, job)
    return {
        "job": job,
        "user_can_change": job.user_can_change,
        "unit_counts": counts,
        "units_total": sum(counts.values()),
        "running_unit": running,
        "failed_units": failed,
        "failed_total": counts.get(Unit.Status.FAILED, 0),
        "unit_strip": strip,
        "priorities": [p.label for p in sorted(Priority, reverse=True)],
        # Units of an active job wait while ComfyUI is away: say so, and since when.
        "outages": list(WorkerNode.objects.filter(comfyui_ok=False).order_by("name")) if job.is_active else [],
        # ... and while a node's disk guard holds (OUTPUT_ROOT nearly full): why, and that it resumes.
        "holds": list(WorkerNode.objects.exclude(hold_reason="").order_by("name")) if job.is_active else [],
        # Sent back with retry and requeue: a double click on the same drawing acts once.
        "request_id": uuid.uuid4().hex,
        "finishing": finishing.is_finishing(job),
        "job_rate": rate_for(job=job),
    }


def _finish_context(job: Job) -> dict:
    return {"job": job, "summary": job_summary(job)}


def _sheets_context(request: HttpRequest, job: Job) -> dict:
    return {"job": job, "exports": sheets.sheets_card(job), "user_can_change": can_change(request.user, job)}


@login_required
@require_safe
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request, job_id)
    part = request.GET.get("partial")
    if part == "state":
        return render(request, "batches/_job_state.html", _state_context(request, job))
    if part == "finish":
        return render(request, "batches/_job_finish.html", _finish_context(job))
    if part == "sheets":
        return render(request, "batches/_job_sheets.html", _sheets_context(request, job))
    images = job.images.order_by("-id")
    if part == "images":
        after = request.GET.get("after", "")
        if after:
            try:
                images = images.filter(pk__gt=parse_id(after, what="an image id", minimum=0))
            except NumberError as exc:
                return HttpResponseBadRequest(f"after: {exc}", content_type="text/plain")
        return render(request, "batches/_job_images.html", {"job": job, "images": images[:IMAGES_ON_PAGE]})
    ctx = _state_context(request, job)
    ctx.update(_finish_context(job))
    ctx.update(_sheets_context(request, job), animation=sheets.animation_card(job), animation_limit=sheets.MAX_FRAMES,
               sheet_formats=sheets.FORMATS, sheet_loops=sheets.LOOPS)
    ctx.update(
        refinish_form=RefinishForm(job=job) if ctx["user_can_change"] else None,
        images=images[:IMAGES_ON_PAGE],
        images_more=max(0, job.images_done - IMAGES_ON_PAGE),
        params=job_parameters(job),
        since=latest_event_id(),
        # Webhook URLs may carry a secret in their path: shown to the job's owner and staff only.
        show_webhooks=ctx["user_can_change"] and bool(job.webhook_url or job.webhook_deliveries.exists()),
        webhook_deliveries=job_deliveries(job) if ctx["user_can_change"] else [],
    )
    return render(request, "batches/job_detail.html", ctx)


@login_required
@require_safe
def unit_preview(request: HttpRequest, job_id: int, unit_id: int) -> HttpResponse:
    """The running unit's latest live preview (404 once the unit is done: its images show instead)."""
    job = get_job_for_user(request, job_id)
    if not job.units.filter(pk=unit_id).exists():
        raise Http404("no such unit in this job")
    data = previews.latest_preview(unit_id)
    if data is None:
        raise Http404("no preview for this unit")
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=60"  # each preview has its own ?v=
    return response


def _job_url(job: Job) -> str:
    return reverse("job-detail", args=[job.pk])


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request, job_id, change=True)
    if control.job_cancel(job, by=request.user.get_username()):
        return action_done(request, f"Job {job.pk} cancelled.", default=_job_url(job))
    return action_done(request, f"Job {job.pk} had already finished.", default=_job_url(job), ok=False)


@login_required
@require_POST
def job_stop(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request, job_id, change=True)
    n = control.job_stop_after_current(job, by=request.user.get_username())
    return action_done(request, f"Job {job.pk} stops after the unit that is running ({n} units not started "
                                f"were cancelled).", default=_job_url(job))


@login_required
@require_POST
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request, job_id, change=True)
    try:
        n = control.job_retry_failed(job, by=request.user.get_username(),
                                     request_key=request.POST.get("request_id", ""))
    except QuotaError as exc:
        return action_done(request, f"Job {job.pk} not retried: {exc}.", default=_job_url(job), ok=False)
    if not n:
        return action_done(request, f"Job {job.pk} has no failed units to retry.", default=_job_url(job), ok=False)
    return action_done(request, f"{n} failed unit{'s' if n != 1 else ''} of job {job.pk} back in the queue.",
                       default=_job_url(job))


@login_required
@require_POST
def job_requeue(request: HttpRequest, job_id: int) -> HttpResponse:
    """A new job with the same parameters, owned by the original job's owner."""
    job = get_job_for_user(request, job_id, change=True)
    try:
        new = control.job_requeue(job, by=request.user.get_username(),
                                  request_key=request.POST.get("request_id", ""))
    except ValueError as exc:  # SubmissionError: a workflow or profile changed since
        return action_done(request, f"Job {job.pk} cannot be requeued: {exc}", default=_job_url(job), ok=False)
    return action_done(request, f"Job {job.pk} requeued as job {new.pk}.", default=_job_url(new),
                       redirect_to=_job_url(new))


@login_required
@require_POST
def job_priority(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request, job_id, change=True)
    name = request.POST.get("priority", "")
    try:
        Priority.from_name(name)
    except ValueError:
        return action_done(request, f"Unknown priority {name!r}: choose urgent, high, normal or low.",
                           default=_job_url(job), ok=False)
    try:
        control.job_set_priority(job, name, by=request.user.get_username())
    except control.ControlError as exc:  # the job finished meanwhile
        return action_done(request, f"Priority not changed: {exc}.", default=_job_url(job), ok=False)
    return action_done(request, f"Job {job.pk} is now {job.priority_name} priority.", default=_job_url(job))


@login_required
@require_POST
def job_refinish(request: HttpRequest, job_id: int) -> HttpResponse:
    """Rebuild every sprite of the job; blank fields keep the job's finishing settings."""
    job = get_job_for_user(request, job_id, change=True)
    values = RefinishForm(request.POST, job=job).finish_values()
    try:
        n = finishing.job_refinish(job, finish=values, by=request.user.get_username())
    except finishing.FinishError as exc:
        return action_done(request, f"Sprites of job {job.pk} not re-finished: {exc}", default=_job_url(job), ok=False)
    what = f"{n} sprite{'s' if n != 1 else ''}" if n else "no images yet; new images use these settings"
    return action_done(request, f"Re-finishing job {job.pk} ({what}): {finishing.describe(job.finish)}.",
                       default=_job_url(job))
