"""The seed's get_statistics, from the rows: throughput, generation times, queue size, active jobs."""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.db.models import Avg, Count, Sum
from django.utils import timezone

from batches.models import Image, Job, Unit, WorkerNode


def queue_statistics(*, window_minutes: int = 10) -> dict:
    now = timezone.now()
    since = now - timedelta(minutes=window_minutes)
    recent = Image.objects.filter(created_at__gte=since).count()
    first_recent = (
        Image.objects.filter(created_at__gte=since).order_by("created_at").values_list("created_at", flat=True).first()
    )
    span = max((now - first_recent).total_seconds(), 60.0) if first_recent else window_minutes * 60.0
    last_times = list(
        Image.objects.order_by("-id").values_list("generation_time", flat=True)[:100]
    )
    per_profile: dict[str, dict] = defaultdict(dict)
    rows = (
        Image.objects.values("job__profile", "unit__batch_size")
        .annotate(n=Count("id"), avg=Avg("generation_time"))
        .order_by("job__profile", "unit__batch_size")
    )
    for row in rows:
        per_profile[row["job__profile"]][row["unit__batch_size"]] = {
            "images": row["n"],
            "seconds_per_image": round(row["avg"] or 0.0, 3),
            "images_per_minute": round(60.0 / row["avg"], 2) if row["avg"] else None,
        }
    job_counts = dict(Job.objects.values_list("status").annotate(n=Count("id")))
    pending_images = Unit.objects.filter(status__in=Unit.OPEN).aggregate(n=Sum("batch_size"))["n"] or 0
    return {
        "throughput_per_minute": round(recent * 60.0 / span, 2) if recent else 0.0,
        "images_total": Image.objects.count(),
        "generation_times": last_times,
        "average_generation_time": round(sum(last_times) / len(last_times), 3) if last_times else None,
        "by_profile_and_batch_size": dict(per_profile),
        "queue_size": Unit.objects.filter(status=Unit.Status.PENDING).count(),
        "images_queued": pending_images,
        "active_jobs": job_counts.get(Job.Status.RUNNING, 0) + job_counts.get(Job.Status.QUEUED, 0),
        "running_jobs": job_counts.get(Job.Status.RUNNING, 0),
        "jobs_by_status": job_counts,
        "units_failed": Unit.objects.filter(status=Unit.Status.FAILED).count(),
        "nodes": list(WorkerNode.objects.values(
            "name", "comfyui_url", "comfyui_ok", "unreachable_since", "heartbeat_at", "vram_free", "images_made")),
    }


def job_statistics(job: Job) -> dict:
    eta = job.eta()
    return {
        "job_id": job.pk,
        "status": job.status,
        "progress": round(job.progress, 4),
        "images_planned": job.images_planned,
        "images_done": job.images_done,
        "images_failed": job.images_failed,
        "images_per_minute": round(job.images_per_minute(), 2),
        "eta_seconds": round(eta.total_seconds(), 1) if eta else None,
    }
