"""The queue as a whole: pause and resume (staff), statistics, GPU nodes."""
from __future__ import annotations

from ninja import Router

from batches.http_api import schemas
from batches.http_api.auth import require_staff
from batches.models import QueueControl
from batches.services import control
from batches.services.stats import node_statistics, queue_statistics

router = Router(tags=["queue"])
E = {**schemas.ERRORS, 403: schemas.Errors}


def _state() -> dict:
    return {"paused": QueueControl.is_paused()}


@router.post("/queue/pause/", response={200: schemas.QueueState, **E}, summary="Pause the queue (staff)")
def pause(request):
    """Nothing new starts; the units on the GPUs finish. Staff only (403 otherwise)."""
    require_staff(request)
    control.queue_pause(by=f"{request.user.get_username()} (API)")
    return _state()


@router.post("/queue/resume/", response={200: schemas.QueueState, **E}, summary="Resume the queue (staff)")
def resume(request):
    require_staff(request)
    control.queue_resume(by=f"{request.user.get_username()} (API)")
    return _state()


@router.get("/stats/", response={200: schemas.Stats, **E}, summary="Queue statistics")
def stats(request):
    """Throughput, generation times, queue size, jobs by status and the GPU nodes (the CLI's --stats)."""
    return {**queue_statistics(), "paused": QueueControl.is_paused()}


@router.get("/nodes/", response={200: schemas.NodeList, **E}, summary="GPU nodes")
def nodes(request):
    return {"items": node_statistics()}
