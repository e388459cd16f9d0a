"""The seed's Python API on top of the services (BatchProcessor.submit_job, get_job, ...).

    from batches import api
    job = api.submit_job(owner=user, prompts=["pixel art warrior", "pixel art mage"],
                         batch_size=4, priority="high", model="sd_xl_base_1.0.safetensors",
                         steps=20, cfg_scale=8.0)
    print(f"Progress: {api.get_job(job.pk).progress * 100:.1f}%")
    print(f"Throughput: {api.get_statistics()['throughput_per_minute']:.1f} images/min")
    api.cancel_job(job.pk)

Finishing (sprites): `submit_job(..., finish={"palette": "pico-8", "cell": "64x64"})` changes the
profile's finishing, `finish=False` makes none; `refinish_job(job.pk, {"colors": 8})` rebuilds a
job's sprites without the GPU.
"""
from __future__ import annotations

from batches.models import Comparison, Job
from batches.services.comparisons import comparison_submit, progress
from batches.services.control import job_cancel
from batches.services.finishing import job_refinish
from batches.services.stats import job_statistics, queue_statistics
from batches.services.submission import job_submit


def submit_job(*, owner, prompts, model=None, cfg_scale=None, workflow_path=None, count=None, **params) -> Job:
    """The seed's submit_job: each prompt makes one batch (batch_size images) unless count says otherwise."""
    params["count"] = count if count is not None else (params.get("batch_size") or 1)
    if workflow_path is not None:
        params["workflow"] = str(workflow_path)
    return job_submit(owner=owner, prompts=prompts, checkpoint=model, cfg=cfg_scale, **params)


def get_job(job_id: int) -> Job:
    return Job.objects.get(pk=job_id)


def get_progress(job_id: int) -> dict:
    return job_statistics(get_job(job_id))


def get_statistics() -> dict:
    return queue_statistics()


def cancel_job(job_id: int, *, by: str = "") -> bool:
    return job_cancel(get_job(job_id), by=by)


def refinish_job(job_id: int, finish: dict | None = None, *, by: str = "") -> int:
    """Rebuild a job's sprites with changed finishing settings (None: the job's own); returns images queued."""
    return job_refinish(get_job(job_id), finish=finish, by=by)


def submit_comparison(*, owner, axes, prompts, **params) -> Comparison:
    """One job per combination of the axes' values, same prompts and seeds:
    `submit_comparison(owner=u, axes={"cfg": [6, 8], "steps": [4, 8]}, prompts=["pixel art slime"], count=2)`.
    Axes may also be `["cfg=6,8", ...]`; raises SubmissionError (field "compare" for the axes)."""
    return comparison_submit(owner=owner, axes=axes, prompts=prompts, **params)


def get_comparison(comparison_id: int) -> Comparison:
    """The comparison; `progress(comparison)` of batches.services.comparisons says how far its cells are."""
    return Comparison.objects.get(pk=comparison_id)


def get_comparison_progress(comparison_id: int) -> dict:
    return progress(get_comparison(comparison_id))
