"""One definition of images per minute and ETA, asked by every door: the queue header, a job's
row and page, the node rows, the form's estimate, `batch_status` and the admin.

A rate is the recent throughput of the node(s) doing the work: images made by units finished in
the last RATE_WINDOW, divided by the time those units spent on the GPU (execution start to
recorded). For a job, each of its nodes counts only units of the job's profile and batch size
when it has made such units lately (a batch of 8 and a batch of 1 run at different speeds);
otherwise all its recent units. Nodes work side by side, so their rates add up. The ETA is the
images left divided by that rate. Every Rate says what it is based on, in words.

All surfaces of one page read one RateSnapshot (one query for the recent units), so the numbers
they show agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from batches.models import Job, QueueControl, Unit, WorkerNode

RATE_WINDOW = timedelta(minutes=10)
SERVING_HEARTBEAT = timedelta(minutes=10)  # a node quiet longer than this is not working the queue


@dataclass(frozen=True)
class Rate:
    images_per_minute: float
    eta: timedelta | None
    images_left: int
    based_on: str

    @property
    def eta_seconds(self) -> float | None:
        return round(self.eta.total_seconds(), 1) if self.eta is not None else None

    def as_dict(self) -> dict:
        return {"images_per_minute": round(self.images_per_minute, 2), "eta_seconds": self.eta_seconds,
                "images_left": self.images_left, "based_on": self.based_on}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _eta(left: int, rate: float) -> timedelta | None:
    return timedelta(minutes=left / rate) if rate > 0 and left > 0 else None


@dataclass(frozen=True)
class _Done:
    node: str
    profile: str
    batch_size: int
    images: int
    seconds: float


class RateSnapshot:
    """The recent units, read once; every rate of one page or command comes from here."""

    def __init__(self, *, now: datetime | None = None, window: timedelta = RATE_WINDOW):
        self.now = now or timezone.now()
        self.window = window
        self.minutes = round(window.total_seconds() / 60)
        rows = (Unit.objects.filter(status=Unit.Status.DONE, finished_at__gte=self.now - window,
                                    started_at__isnull=False)
                .values_list("node", "job__profile", "batch_size", "started_at", "finished_at"))
        self.done = [_Done(node, profile, size, size, max((end - start).total_seconds(), 0.001))
                     for node, profile, size, start, end in rows]

    # --- the pieces ------------------------------------------------------------------------------
    @staticmethod
    def _throughput(rows: list[_Done]) -> float:
        seconds = sum(r.seconds for r in rows)
        return sum(r.images for r in rows) * 60.0 / seconds if seconds > 0 else 0.0

    def _node_rows(self, name: str, *, profile: str | None = None, batch_size: int | None = None) -> list[_Done]:
        rows = [r for r in self.done if r.node == name]
        if profile is not None:
            matching = [r for r in rows if r.profile == profile and r.batch_size == batch_size]
            if matching:
                return matching
        return rows

    def serving_nodes(self) -> list[str]:
        recent = self.now - SERVING_HEARTBEAT
        names = list(WorkerNode.objects.filter(heartbeat_at__gte=recent).order_by("name").values_list("name", flat=True))
        return names or sorted({r.node for r in self.done})

    def _over(self, nodes: list[str], *, profile: str | None = None, batch_size: int | None = None,
              left: int) -> tuple[float, list[_Done], bool]:
        """(rate, the rows used, whether the rows are profile-and-batch specific) over `nodes`."""
        used: list[_Done] = []
        rate, specific = 0.0, profile is not None
        for name in nodes:
            rows = self._node_rows(name, profile=profile, batch_size=batch_size)
            if profile is not None and not any(r.profile == profile and r.batch_size == batch_size for r in rows):
                specific = False
            rate += self._throughput(rows)
            used += rows
        return rate, used, specific and bool(used)

    def _words(self, used: list[_Done], nodes: list[str], extra: str = "") -> str:
        if not used:
            return f"no units finished in the last {self.minutes} min"
        where = ", ".join(sorted({r.node for r in used}))
        return f"{_plural(len(used), 'unit')}{extra} on {where} in the last {self.minutes} min"

    # --- the three questions ---------------------------------------------------------------------
    def node(self, name: str) -> Rate:
        rows = self._node_rows(name)
        rate = self._throughput(rows)
        unit = (Unit.objects.filter(node=name, status__in=Unit.IN_FLIGHT).select_related("job")
                .order_by("submitted_at", "claimed_at", "id").first())
        if unit is None:
            return Rate(rate, None, 0, self._words(rows, [name]))
        job_rate = self.job(unit.job)
        return Rate(rate, job_rate.eta, job_rate.images_left,
                    self._words(rows, [name]) + f"; ETA of job #{unit.job_id}")

    def job(self, job: Job) -> Rate:
        left = max(0, job.images_planned - job.images_done - job.images_failed)
        if not job.is_active:
            own = _own_rate(job, self.now)
            return Rate(own, None, 0, f"this job: {_plural(job.images_done, 'image')} from start to finish")
        nodes = sorted(set(Unit.objects.filter(job=job, status__in=Unit.IN_FLIGHT).values_list("node", flat=True)))
        nodes = [n for n in nodes if n] or self.serving_nodes()
        rate, used, specific = self._over(nodes, profile=job.profile, batch_size=job.batch_size, left=left)
        if rate > 0:
            extra = f" of profile {job.profile}, batch {job.batch_size}" if specific else ""
            return Rate(rate, _eta(left, rate), left, self._words(used, nodes, extra))
        own = _own_rate(job, self.now)
        if own > 0:
            return Rate(own, _eta(left, own), left, "this job since it started (no recent units to go by)")
        return Rate(0.0, None, left, f"no units finished in the last {self.minutes} min")

    def queue(self) -> Rate:
        left = sum(max(0, p - d - f) for p, d, f in Job.objects.filter(status__in=Job.ACTIVE)
                   .values_list("images_planned", "images_done", "images_failed"))
        nodes = self.serving_nodes()
        rate, used, _ = self._over(nodes, left=left)
        words = self._words(used, nodes)
        if QueueControl.is_paused():
            return Rate(rate, None, left, words + "; paused, so no ETA")
        if nodes and not WorkerNode.objects.filter(name__in=nodes, comfyui_ok=True).exists():
            return Rate(rate, None, left, words + "; ComfyUI is unreachable, so no ETA")
        return Rate(rate, _eta(left, rate), left, words)


def _own_rate(job: Job, now: datetime) -> float:
    """The job's own average since it started (what a finished job reports as its speed)."""
    return job.images_per_minute()


def rate_for(*, job: Job | None = None, node: str | None = None, queue: bool = False,
             snapshot: RateSnapshot | None = None) -> Rate:
    """Images/min, ETA and what they are based on, for one job, one node (by name) or the queue."""
    snap = snapshot or RateSnapshot()
    if job is not None:
        return snap.job(job)
    if node is not None:
        return snap.node(node)
    if queue:
        return snap.queue()
    raise TypeError("rate_for needs job=, node= or queue=True")


def expected_rate(*, profile: str, batch_size: int, fallback: float = 0.0,
                  snapshot: RateSnapshot | None = None) -> tuple[float, str]:
    """The form's estimate: recent throughput of the serving nodes for this profile and batch size,
    else the profile's expected rate (`fallback`)."""
    snap = snapshot or RateSnapshot()
    nodes = snap.serving_nodes()
    rate, used, specific = snap._over(nodes, profile=profile, batch_size=batch_size, left=0)
    if rate > 0 and specific:
        return rate, snap._words(used, nodes, f" of profile {profile}, batch {batch_size}")
    if rate > 0:
        return rate, snap._words(used, nodes)
    return fallback, "the profile's expected rate (no units finished lately)"
