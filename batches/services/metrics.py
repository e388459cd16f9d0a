"""Prometheus metrics, computed from the rows at scrape time (official prometheus_client).

No in-process counters: daphne, the GPU worker and the CLI are separate processes, so every value
is read from the database (or the disk) when /metrics is scraped, by `RowsCollector`, and any
daphne answers the same. The counters (`dgx_images_made_total`, the job-duration histogram) only
grow while rows are kept; `batch_cleanup` deleting old jobs makes the histogram shrink, which
Prometheus' rate() treats as a counter reset.

GPU busy ratio: the share of the last BUSY_WINDOW (5 minutes) each node spent on units, from the
units' started_at (ComfyUI's execution start) to finished_at (recorded), a running unit up to now.
"""
from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from batches.services import disk_guard

BUSY_WINDOW = timedelta(minutes=5)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


def _busy_seconds(intervals: list[tuple], start, end) -> float:
    """Seconds of [start, end] covered by the union of `intervals` (start, end-or-None)."""
    clipped = sorted((max(a, start), min(b or end, end)) for a, b in intervals)
    total, cur_a, cur_b = 0.0, None, None
    for a, b in clipped:
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += (cur_b - cur_a).total_seconds()
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += (cur_b - cur_a).total_seconds()
    return total


class RowsCollector:
    """Every dgx_ metric, read from the rows when collected."""

    def describe(self):
        return []  # values exist only at scrape time; nothing to describe up front

    def collect(self):
        from batches.models import Job, Priority, QueueControl, Unit, WorkerNode

        now = timezone.now()
        nodes = list(WorkerNode.objects.order_by("name"))

        made = CounterMetricFamily("dgx_images_made", "Images made and recorded by each GPU node.", labels=["node"])
        vram_free = GaugeMetricFamily("dgx_vram_free_bytes", "VRAM free on the node's GPU, as ComfyUI last "
                                      "reported it.", labels=["node"])
        vram_total = GaugeMetricFamily("dgx_vram_total_bytes", "VRAM of the node's GPU, as ComfyUI last "
                                       "reported it.", labels=["node"])
        comfy = GaugeMetricFamily("dgx_comfyui_up", "1 while the node's worker reaches its ComfyUI, 0 while "
                                  "it is unreachable.", labels=["node"])
        beat = GaugeMetricFamily("dgx_node_heartbeat_age_seconds", "Seconds since the node's worker last beat.",
                                 labels=["node"])
        worker = GaugeMetricFamily("dgx_node_worker_running", "1 while a qcluster holds the node's lease.",
                                   labels=["node"])
        holding = GaugeMetricFamily("dgx_disk_guard_holding", "1 while the node claims no new unit because "
                                    "OUTPUT_ROOT is below DGX_DISK_MIN_FREE_GB.", labels=["node"])
        node_disk = GaugeMetricFamily("dgx_node_disk_free_bytes", "Bytes free at OUTPUT_ROOT as the node's "
                                      "worker last saw it.", labels=["node"])
        busy = GaugeMetricFamily("dgx_gpu_busy_ratio", "Share of the last 5 minutes the node's GPU spent on "
                                 "units (execution start to recorded).", labels=["node"])
        window_start = now - BUSY_WINDOW
        intervals: dict[str, list[tuple]] = {}
        for node, started, finished in (Unit.objects.filter(started_at__isnull=False, started_at__lte=now)
                                        .exclude(finished_at__lt=window_start).exclude(node="")
                                        .values_list("node", "started_at", "finished_at")):
            intervals.setdefault(node, []).append((started, finished))
        for node in nodes:
            label = [node.name]
            made.add_metric(label, node.images_made)
            if node.vram_free is not None:
                vram_free.add_metric(label, node.vram_free)
            if node.vram_total is not None:
                vram_total.add_metric(label, node.vram_total)
            comfy.add_metric(label, 1 if node.comfyui_ok else 0)
            if node.heartbeat_at:
                beat.add_metric(label, max(0.0, (now - node.heartbeat_at).total_seconds()))
            worker.add_metric(label, 1 if node.worker_id else 0)
            holding.add_metric(label, 1 if node.hold_reason else 0)
            if node.disk_free is not None:
                node_disk.add_metric(label, node.disk_free)
            seconds = _busy_seconds(intervals.get(node.name, []), window_start, now)
            busy.add_metric(label, round(seconds / BUSY_WINDOW.total_seconds(), 4))
        yield from (made, vram_free, vram_total, comfy, beat, worker, holding, node_disk, busy)

        units = GaugeMetricFamily("dgx_units", "Work units by status.", labels=["status"])
        counts = dict(Unit.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in Unit.Status:
            units.add_metric([status.value], counts.get(status.value, 0))
        yield units

        jobs = GaugeMetricFamily("dgx_jobs", "Jobs by status.", labels=["status"])
        counts = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in Job.Status:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs

        pending_units = GaugeMetricFamily("dgx_queue_pending_units", "Units waiting to be claimed, by priority.",
                                          labels=["priority"])
        pending_images = GaugeMetricFamily("dgx_queue_pending_images", "Images waiting to be made (pending "
                                           "units), by priority.", labels=["priority"])
        rows = {p: (n, i) for p, n, i in Unit.objects.filter(status=Unit.Status.PENDING).order_by()
                .values_list("priority").annotate(n=Count("id"), i=Sum("batch_size"))
                .values_list("priority", "n", "i")}
        for priority in Priority:
            n, images = rows.get(priority.value, (0, 0))
            pending_units.add_metric([priority.label], n)
            pending_images.add_metric([priority.label], images or 0)
        yield pending_units
        yield pending_images

        durations = HistogramMetricFamily("dgx_job_duration_seconds", "Finished jobs, from start to finish.",
                                          labels=["status"])
        by_status: dict[str, list[float]] = {}
        for status, started, finished in (Job.objects.filter(status__in=Job.FINISHED, started_at__isnull=False,
                                                             finished_at__isnull=False)
                                          .values_list("status", "started_at", "finished_at").iterator()):
            by_status.setdefault(status, []).append(max(0.0, (finished - started).total_seconds()))
        for status in Job.FINISHED:
            values = by_status.get(status, [])
            buckets = [(f"{le:g}", sum(1 for v in values if v <= le)) for le in DURATION_BUCKETS]
            buckets.append(("+Inf", len(values)))
            durations.add_metric([status], buckets, sum_value=sum(values))
        yield durations

        state = disk_guard.check()
        disk = GaugeMetricFamily("dgx_disk_free_bytes", "Bytes free at OUTPUT_ROOT (seen by this process).")
        if state.free is not None:
            disk.add_metric([], state.free)
        yield disk
        yield GaugeMetricFamily("dgx_disk_min_free_bytes", "DGX_DISK_MIN_FREE_GB in bytes: below it the GPU "
                                "worker claims no new unit.", value=state.minimum)
        yield GaugeMetricFamily("dgx_disk_low", "1 while free space at OUTPUT_ROOT is below DGX_DISK_MIN_FREE_GB.",
                                value=1 if state.low else 0)
        yield GaugeMetricFamily("dgx_queue_paused", "1 while the queue is paused.",
                                value=1 if QueueControl.is_paused() else 0)


def render() -> bytes:
    """The text exposition of every dgx_ metric, now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RowsCollector())
    return generate_latest(registry)
