"""Jobs: submit, list, one job, its units and images, and the operator verbs on it.

Thin endpoints: submission is job_requests.submit (the form's, the CLI's and ZeroMQ's rules and
messages), a job's shape is job_requests.job_document, the verbs are services.control's.
"""
from __future__ import annotations

from ninja import Query, Router

from batches.http_api import schemas
from batches.http_api.errors import parse_json_body
from batches.http_api.lookup import job_for
from batches.http_api.paging import PageParams, paginate
from batches.models import Comparison, Priority
from batches.services import control, job_requests
from batches.services.comparisons import progress
from batches.services.rates import RateSnapshot
from batches.services.submission import SubmissionError

router = Router(tags=["jobs"])
E = schemas.ERRORS


def _by(request) -> str:
    return f"{request.user.get_username()} (API)"


def _doc(job, rates=None) -> dict:
    return job_requests.job_document(job, base_url=job_requests.public_base_url(), rates=rates)


def _key(request) -> str:
    """`Idempotency-Key`: a retried retry/requeue request does its work once."""
    return request.headers.get("Idempotency-Key", "")[:64]


@router.post("/", response={201: schemas.JobDocument | schemas.ComparisonDocument, **E},
             openapi_extra=schemas.request_body_openapi(), summary="Queue a job (or a comparison)")
def submit(request):
    """Queue a job from a JSON object of job fields; with `compare`, a comparison (201 with its
    progress and `"kind": "comparison"`). 400 names each bad field; nothing is queued then."""
    data = parse_json_body(request)
    result = job_requests.submit(owner=request.user, data=data)
    if isinstance(result, Comparison):
        return 201, {**progress(result), "kind": "comparison"}
    return 201, _doc(result)


class JobFilters(PageParams):
    status: str | None = None
    priority: schemas.PriorityName | None = None
    profile: str | None = None
    owner: str | None = None


@router.get("/", response={200: schemas.JobPage, **E}, summary="List jobs, newest first")
def list_jobs(request, filters: Query[JobFilters]):
    """Your jobs (staff: everyone's; `owner=NAME` picks one user's). Filters combine."""
    jobs = job_requests.visible_jobs(request.user)
    if filters.status:
        jobs = jobs.filter(status=filters.status)
    if filters.priority:
        jobs = jobs.filter(priority=Priority.from_name(filters.priority))
    if filters.profile:
        jobs = jobs.filter(profile=filters.profile)
    if filters.owner:
        jobs = jobs.filter(owner__username=filters.owner)
    rates = RateSnapshot()
    return paginate(request, jobs.order_by("-id"), filters, lambda job: _doc(job, rates))


@router.get("/{int:job_id}/", response={200: schemas.JobDocument, **E}, summary="One job")
def get_job(request, job_id: int):
    return _doc(job_for(request, job_id))


@router.get("/{int:job_id}/units/", response={200: schemas.UnitList, **E}, summary="A job's work units")
def job_units(request, job_id: int):
    return {"items": job_requests.unit_documents(job_for(request, job_id))}


@router.get("/{int:job_id}/images/", response={200: schemas.ImagePage, **E}, summary="A job's images, in order")
def job_images(request, job_id: int, paging: Query[PageParams]):
    job = job_for(request, job_id)
    base = job_requests.public_base_url()
    return paginate(request, job.images.order_by("sequence", "id"), paging,
                    lambda image: job_requests.image_document(image, base_url=base))


# --- verbs -------------------------------------------------------------------------------------

@router.post("/{int:job_id}/cancel/", response={200: schemas.ActionResult, **E}, summary="Cancel a job")
def cancel(request, job_id: int):
    """Queued units never run; images already made are kept. `cancelled` is false when the job had
    already finished."""
    job = job_for(request, job_id)
    cancelled = control.job_cancel(job, by=_by(request))
    return {"cancelled": cancelled, "job": _doc(job)}


@router.post("/{int:job_id}/stop/", response={200: schemas.ActionResult, **E},
             summary="Stop after the current unit")
def stop(request, job_id: int):
    job = job_for(request, job_id)
    stopped = control.job_stop_after_current(job, by=_by(request))
    job.refresh_from_db()
    return {"units_stopped": stopped, "job": _doc(job)}


@router.post("/{int:job_id}/priority/", response={200: schemas.ActionResult, 409: schemas.Errors, **E},
             summary="Move a job to another priority level")
def set_priority(request, job_id: int, body: schemas.Priority):
    """Body `{"priority": "urgent"}`; 409 when the job already finished."""
    job = job_for(request, job_id)
    control.job_set_priority(job, body.priority, by=_by(request))
    return {"job": _doc(job)}


@router.post("/{int:job_id}/retry/", response={200: schemas.ActionResult, 409: schemas.Errors, **E},
             summary="Retry a job's failed units")
def retry(request, job_id: int):
    """Send `Idempotency-Key` to make a repeated request retry nothing more. 409 when the owner's
    queue limit would be passed."""
    job = job_for(request, job_id)
    retried = control.job_retry_failed(job, by=_by(request), request_key=_key(request))
    job.refresh_from_db()
    return {"units_retried": retried, "job": _doc(job)}


@router.post("/{int:job_id}/requeue/", response={201: schemas.ActionResult, **E},
             summary="Queue a new job with the same parameters")
def requeue(request, job_id: int):
    """A new job like this one (same seeds when it had a base seed), owned by the caller.
    Send `Idempotency-Key` so that a repeated request returns the first new job."""
    job = job_for(request, job_id)
    try:
        new = control.job_requeue(job, owner=request.user, by=_by(request), request_key=_key(request))
    except SubmissionError as exc:
        raise SubmissionError(job_requests.request_errors(exc)) from None
    return 201, {"job": _doc(new), "requeued_from": job.pk}

