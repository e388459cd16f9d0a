"""The queue page: what runs, what waits, the GPU workers' state, and the queue-wide controls."""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, IntegerField, Sum, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from batches.models import Event, Job, QueueControl, Unit, WorkerNode
from batches.services import control
from batches.services.rates import RateSnapshot
from batches.views.access import can_change
from batches.views.responses import action_done

ACTIVE_LIMIT = 200  # rows on the page; a longer queue says how many more wait
RECENT_LIMIT = 12
STALE_HEARTBEAT = timedelta(seconds=90)
SERVING_HEARTBEAT = timedelta(minutes=10)  # as in tasks.wake_workers: a node quiet longer is gone

PARTIALS = {
    "rows": "batches/_queue_rows.html",
    "worker": "batches/_worker_state.html",
    "recent": "batches/_recent_jobs.html",
}


def latest_event_id() -> int:
    """Where a page's socket starts: it asks for everything after the state it was rendered from."""
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def active_jobs(user, *, rates: RateSnapshot | None = None) -> tuple[list[Job], int]:
    """Running jobs first, then queued ones in the order the workers will claim them."""
    rates = rates or RateSnapshot()
    active = Job.objects.filter(status__in=Job.ACTIVE)
    # The page's rows first (an index walk), then unit counts for those rows only: counting units
    # for every job of a 10 000-job queue cost more than the rest of the page.
    jobs = list(
        active.select_related("owner")
        .annotate(running_first=Case(When(status=Job.Status.RUNNING, then=Value(0)), default=Value(1),
                                     output_field=IntegerField()))
        .order_by("running_first", "-priority", "id")[:ACTIVE_LIMIT]
    )
    total = active.count()
    ids = [j.pk for j in jobs]
    units_total = dict(Unit.objects.filter(job_id__in=ids).values_list("job_id").annotate(n=Count("id")))
    running = {
        u.job_id: u
        for u in Unit.objects.filter(job__in=[j.pk for j in jobs if j.status == Job.Status.RUNNING],
                                     status=Unit.Status.RUNNING).order_by("started_at")
    }
    for job in jobs:
        job.units_total = units_total.get(job.pk, 0)
        job.running_unit = running.get(job.pk)
        job.user_can_change = can_change(user, job)
        job.rate = rates.job(job) if job.status == Job.Status.RUNNING else None
    return jobs, max(0, total - len(jobs))


def recent_jobs(user) -> list[Job]:
    finished = Job.objects.filter(status__in=Job.FINISHED).select_related("owner")
    # Cancelled jobs whose last unit is still being interrupted have no finished_at yet: on top.
    jobs = list(finished.filter(finished_at__isnull=True).order_by("-id")[:RECENT_LIMIT])
    # finished_at is set only when a job finishes (retrying clears it): no status filter, so the
    # database walks the job_recently_finished index instead of sorting every finished job.
    jobs += list(Job.objects.filter(finished_at__isnull=False).select_related("owner")
                 .order_by("-finished_at", "-id")[:RECENT_LIMIT - len(jobs)])
    for job in jobs:
        job.user_can_change = can_change(user, job)
    return jobs


def worker_state(user, *, rates: RateSnapshot | None = None) -> dict:
    now = timezone.now()
    rates = rates or RateSnapshot(now=now)
    control_row = QueueControl.objects.filter(pk=1).first()
    nodes = list(WorkerNode.objects.select_related("current_unit", "current_unit__job").order_by("name"))
    for node in nodes:
        node.rate = rates.node(node.name)
        node.images_per_minute = node.rate.images_per_minute
        unit = node.current_unit
        node.busy_unit = unit if unit is not None and unit.status in Unit.IN_FLIGHT else None
        node.stale = bool(node.heartbeat_at and node.busy_unit and now - node.heartbeat_at > STALE_HEARTBEAT)
    queue_rate = rates.queue()
    remaining = queue_rate.images_left
    paused = bool(control_row and control_row.paused)
    queued = Job.objects.filter(status=Job.Status.QUEUED)
    # The nodes serving the queue: those that checked in lately (all of them when none has).
    # When every one of them has lost its ComfyUI nothing is being made: the recent rate is
    # history and an ETA drawn from it would be a lie.
    serving = [n for n in nodes if n.heartbeat_at and now - n.heartbeat_at <= SERVING_HEARTBEAT] or nodes
    comfyui_down = bool(serving) and not any(n.comfyui_ok for n in serving)
    return {
        "paused": paused,
        "paused_at": control_row.paused_at if paused else None,
        "paused_by": control_row.paused_by if paused else "",
        "nodes": nodes,
        "unreachable": [n for n in nodes if not n.comfyui_ok],
        # The disk guard: nodes that claim nothing new until OUTPUT_ROOT has space again.
        "held": [n for n in nodes if n.hold_reason],
        "busy": any(n.busy_unit for n in nodes),
        "images_remaining": remaining,
        "rate": queue_rate.images_per_minute,
        "rate_based_on": queue_rate.based_on,
        "comfyui_down": comfyui_down,
        "queue_eta": queue_rate.eta if not paused and not comfyui_down else None,
        "units_pending": Unit.objects.filter(status=Unit.Status.PENDING).count(),
        # What "cancel all queued" would touch for this user: everyone's for staff, else their own.
        "cancellable": queued.count() if user.is_staff else queued.filter(owner=user).count(),
        "cancellable_images": (queued if user.is_staff else queued.filter(owner=user)).aggregate(
            n=Sum("images_planned"))["n"] or 0,
    }


def _context(request: HttpRequest, part: str | None = None) -> dict:
    ctx: dict = {}
    rates = RateSnapshot()  # one snapshot: the header, the rows and the nodes show the same numbers
    if part in (None, "rows"):
        ctx["jobs"], ctx["more_jobs"] = active_jobs(request.user, rates=rates)
    if part in (None, "worker"):
        ctx["worker"] = worker_state(request.user, rates=rates)
    if part in (None, "recent"):
        ctx["recent"] = recent_jobs(request.user)
    return ctx


@login_required
@require_safe
def queue_page(request: HttpRequest) -> HttpResponse:
    part = request.GET.get("partial")
    if part in PARTIALS:
        return render(request, PARTIALS[part], _context(request, part))
    ctx = _context(request)
    ctx["since"] = latest_event_id()
    return render(request, "batches/queue.html", ctx)


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("only staff may pause or resume the whole queue")


@login_required
@require_POST
def queue_pause(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    control.queue_pause(by=request.user.get_username())
    return action_done(request, "Queue paused: the running unit finishes, nothing new starts.", default="/")


@login_required
@require_POST
def queue_resume(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    control.queue_resume(by=request.user.get_username())
    return action_done(request, "Queue resumed.", default="/")


@login_required
@require_POST
def queue_cancel_queued(request: HttpRequest) -> HttpResponse:
    """Staff cancel every job that has not started; anyone else cancels their own."""
    by = request.user.get_username()
    if request.user.is_staff:
        n = control.cancel_all_queued(by=by)
    else:
        n = sum(control.job_cancel(job, by=by)
                for job in Job.objects.filter(status=Job.Status.QUEUED, owner=request.user))
    return action_done(request, f"Cancelled {n} queued job{'s' if n != 1 else ''}.", default="/")
