"""The seed's get_statistics, from the rows: throughput, generation times, queue size, active jobs."""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from django.db.models import Avg, Count, Sum
from django.utils import timezone

from batches.models import Image, Job, Unit, WorkerNode
from batches.services.rates import RateSnapshot, rate_for  # the one definition of images/min and ETA


def queue_statistics(*, window_minutes: int = 10) -> dict:
    rates = RateSnapshot(window=timedelta(minutes=window_minutes))
    queue_rate = rates.queue()
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
        "throughput_per_minute": round(queue_rate.images_per_minute, 2),
        "rate": queue_rate.as_dict(),
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
        "nodes": node_statistics(rates=rates),
    }


NODE_RATE_WINDOW = timedelta(minutes=10)


def node_rates(*, window: timedelta = NODE_RATE_WINDOW) -> dict[str, float]:
    """Images per minute of each GPU node (services/rates: recent throughput)."""
    rates = RateSnapshot(window=window)
    return {name: rates.node(name).images_per_minute
            for name in WorkerNode.objects.values_list("name", flat=True)}


def node_statistics(*, rates: RateSnapshot | None = None) -> list[dict]:
    """Each GPU node: ComfyUI URL and health, VRAM, the unit it runs, recent images/min, heartbeat."""
    rates = rates or RateSnapshot()
    nodes = []
    for node in WorkerNode.objects.select_related("current_unit").order_by("name"):
        unit = node.current_unit
        rate = rates.node(node.name)
        nodes.append({
            "name": node.name, "comfyui_url": node.comfyui_url, "comfyui_ok": node.comfyui_ok,
            "unreachable_since": node.unreachable_since, "last_error": node.last_error,
            "heartbeat_at": node.heartbeat_at, "vram_total": node.vram_total, "vram_free": node.vram_free,
            "images_made": node.images_made, "hold_reason": node.hold_reason, "disk_free": node.disk_free,
            "images_per_minute": round(rate.images_per_minute, 2),
            "eta_seconds": rate.eta_seconds, "rate_based_on": rate.based_on,
            "current_unit": ({"job": unit.job_id, "index": unit.index, "status": unit.status}
                             if unit and unit.status in Unit.IN_FLIGHT else None),
        })
    return nodes


def job_statistics(job: Job) -> dict:
    rate = rate_for(job=job)
    return {
        "job_id": job.pk,
        "status": job.status,
        "progress": round(job.progress, 4),
        "images_planned": job.images_planned,
        "images_done": job.images_done,
        "images_failed": job.images_failed,
        "images_per_minute": round(rate.images_per_minute, 2),
        "eta_seconds": rate.eta_seconds,
        "rate_based_on": rate.based_on,
    }


# --- The statistics page: throughput series and small charts --------------------------------

WINDOWS = {1: 1, 6: 5, 24: 15}  # hours shown -> minutes per bar


def throughput_series(*, hours: int = 6, now: datetime | None = None) -> dict:
    """Images made per minute in each bucket over the last `hours`, oldest first."""
    hours = hours if hours in WINDOWS else 6
    bucket = WINDOWS[hours]
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end += timedelta(minutes=(-end.minute) % bucket)
    count = hours * 60 // bucket
    start = end - timedelta(minutes=bucket * count)
    counts = [0] * count
    for created in Image.objects.filter(created_at__gte=start, created_at__lt=end).values_list("created_at", flat=True).iterator():
        index = int((created - start).total_seconds() // (bucket * 60))
        if 0 <= index < count:
            counts[index] += 1
    buckets = [
        {"start": start + timedelta(minutes=bucket * i), "images": n, "per_minute": n / bucket}
        for i, n in enumerate(counts)
    ]
    return {"hours": hours, "bucket_minutes": bucket, "start": start, "end": end, "buckets": buckets,
            "total": sum(counts), "peak": max((b["per_minute"] for b in buckets), default=0.0)}


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        nice = step * 10 ** exponent
        if nice >= value:
            return nice
    return 10 ** (exponent + 1)


def bar_chart(series: dict, *, width: int = 960, height: int = 240) -> dict:
    """Geometry of the throughput chart for an inline SVG (no chart library, no JavaScript)."""
    left, right, top, bottom = 44, 8, 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    buckets = series["buckets"]
    y_max = _nice_ceiling(series["peak"])
    slot = plot_w / max(len(buckets), 1)
    bars = []
    label_every = max(1, len(buckets) // 8)
    for i, b in enumerate(buckets):
        h = plot_h * b["per_minute"] / y_max
        local = timezone.localtime(b["start"])
        bars.append({
            "x": round(left + i * slot + slot * 0.12, 2), "w": round(slot * 0.76, 2),
            "y": round(top + plot_h - h, 2), "h": round(h, 2),
            "title": f"{local:%H:%M}: {b['images']} image{'s' if b['images'] != 1 else ''} "
                     f"({b['per_minute']:.2f}/min)",
            "label": f"{local:%H:%M}" if i % label_every == 0 else "",
            "label_x": round(left + i * slot + slot / 2, 2),
        })
    grid = [{"y": round(top + plot_h - plot_h * f, 2), "value": f"{y_max * f:g}"} for f in (0, 0.25, 0.5, 0.75, 1)]
    return {"width": width, "height": height, "bars": bars, "grid": grid, "left": left,
            "right": width - right, "axis_y": top + plot_h, "label_y": height - 8, "y_max": y_max}


def sparkline(values: list[float], *, width: int = 300, height: int = 48) -> dict:
    """A polyline for the last generation times (oldest on the left)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"points": "", "width": width, "height": height, "max": 0, "min": 0}
    peak = max(values) or 1.0
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (height - 4) * v / peak:.1f}" for i, v in enumerate(values))
    return {"points": points, "width": width, "height": height, "max": max(values), "min": min(values)}


def outcome_counts() -> dict:
    """Success and failure, by jobs, units and images."""
    jobs = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
    units = dict(Unit.objects.order_by().values_list("status").annotate(n=Count("id")))
    images = Job.objects.aggregate(done=Sum("images_done"), failed=Sum("images_failed"))
    reviews = dict(Image.objects.order_by().values_list("review").annotate(n=Count("id")))
    return {
        "jobs": [(s.label, jobs.get(s.value, 0), s.value) for s in Job.Status],
        "units": [(s.label, units.get(s.value, 0), s.value) for s in Unit.Status],
        "images_done": images["done"] or 0,
        "images_failed": images["failed"] or 0,
        "reviews": [(r.label, reviews.get(r.value, 0), r.value) for r in Image.Review],
    }


def profile_table(by_profile: dict) -> list[dict]:
    """queue_statistics' nested {profile: {batch size: row}} as flat, sorted table rows."""
    return [
        {"profile": profile, "batch_size": size, **row}
        for profile, sizes in sorted(by_profile.items())
        for size, row in sorted(sizes.items())
    ]
