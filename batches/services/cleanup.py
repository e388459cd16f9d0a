"""Removing old batches (the seed's `cleanup_old_batches`): files and rows together.

A job is removed only when it is finished for good (a final status and `finished_at` set, so
no unit is in flight); the row is deleted first with that same guard, and its folder only
after, so a job that is retried at the last moment keeps its files. Folders under
`OUTPUT_ROOT/batches/` that no job row points to (left by a deleted row) are removed once
nothing in them has changed for the same number of days.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from batches.models import Job
from batches.services import outputs
from batches.services.events import prune_events

BATCH_FOLDER = re.compile(r"^batch_\d{8}_\d{6}_\d+$")
MAX_DAYS = 36500  # 100 years: more is a typo, and timedelta overflows not far past it


@dataclass
class Removal:
    folder: str
    kind: str  # "job" or "orphan" (a folder without a job row)
    job_id: int | None = None
    status: str = ""
    finished_at: datetime | None = None
    images: int = 0
    bytes: int = 0
    removed: bool = False
    error: str = ""  # a folder that could not be removed (its rows are gone; a later run retries)
    note: str = ""  # why it was left alone


@dataclass
class CleanupReport:
    older_than_days: float
    cutoff: datetime
    dry_run: bool
    removals: list[Removal] = field(default_factory=list)
    spared_active: list[int] = field(default_factory=list)  # old jobs left alone because they still run
    events_pruned: int = 0  # progress events past DGX_EVENT_RETENTION_HOURS (see events.prune_events)

    @property
    def jobs(self) -> list[Removal]:
        return [r for r in self.removals if r.kind == "job"]

    @property
    def orphans(self) -> list[Removal]:
        return [r for r in self.removals if r.kind == "orphan"]

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals if r.removed or self.dry_run)

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.removals if r.error]

    def as_dict(self) -> dict:
        return {**asdict(self), "bytes": self.bytes, "errors": self.errors}


def folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
    return newest


def _batches_root() -> Path:
    return (outputs.output_root() / "batches").resolve()


def _job_folder(job: Job) -> Path | None:
    """The job's folder, or None when its stored name would lead outside OUTPUT_ROOT/batches."""
    folder = outputs.job_dir(job).resolve()
    return folder if folder.parent == _batches_root() else None


def _remove_tree(folder: Path | None) -> str:
    if folder is None or not folder.exists():
        return ""
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        return f"could not remove {folder}: {exc.strerror or exc}"
    return ""


def job_delete(job: Job, *, dry_run: bool = False) -> Removal:
    """Delete a finished job's rows (units, images, events) and its folder; an active job is refused."""
    folder = _job_folder(job)
    removal = Removal(
        folder=str(folder or outputs.job_dir(job)), kind="job", job_id=job.pk, status=job.status,
        finished_at=job.finished_at, images=job.images.count(),
        bytes=folder_size(folder) if folder is not None and folder.exists() else 0,
    )
    if dry_run:
        return removal
    with transaction.atomic():
        # Guarded like every state change: a job retried since we looked is active again and stays.
        _, per_model = Job.objects.filter(
            pk=job.pk, status__in=Job.FINISHED, finished_at__isnull=False).delete()
    if not per_model.get(Job._meta.label):
        removal.note = f"job {job.pk} is active again; left alone"
        return removal
    removal.removed = True
    removal.error = _remove_tree(folder)
    return removal


def cleanup_old_batches(*, older_than_days: float, dry_run: bool = False, now: datetime | None = None) -> CleanupReport:
    """Remove jobs finished more than `older_than_days` ago, with their files, and orphan folders."""
    if not 0 <= older_than_days <= MAX_DAYS:  # also refuses NaN; past MAX_DAYS timedelta overflows
        raise ValueError(f"older_than_days must be between 0 and {MAX_DAYS}, got {older_than_days}")
    now = now or timezone.now()
    cutoff = now - timedelta(days=older_than_days)
    report = CleanupReport(older_than_days=older_than_days, cutoff=cutoff, dry_run=dry_run)

    old = Job.objects.filter(Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff))
    for job in old.filter(status__in=Job.FINISHED, finished_at__isnull=False).order_by("id"):
        report.removals.append(job_delete(job, dry_run=dry_run))
    # Old but still running (or cancelling with a unit in flight): never touched.
    report.spared_active = list(old.exclude(status__in=Job.FINISHED, finished_at__isnull=False)
                                .order_by("id").values_list("id", flat=True))

    root = _batches_root()
    if root.is_dir():
        known = set(Job.objects.values_list("output_dir", flat=True))
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or folder.is_symlink() or not BATCH_FOLDER.match(folder.name):
                continue
            if folder.name in known:
                continue
            try:
                changed = datetime.fromtimestamp(_newest_mtime(folder), tz=dt_timezone.utc)
            except OSError:
                continue
            if changed >= cutoff:
                continue
            removal = Removal(folder=str(folder), kind="orphan", bytes=folder_size(folder))
            if not dry_run:
                removal.error = _remove_tree(folder)
                removal.removed = not removal.error
            report.removals.append(removal)
    if not dry_run:
        report.events_pruned = prune_events(now=now)
    return report
