"""Remove old batches: `manage.py batch_cleanup --older-than DAYS [--dry-run]`."""
from __future__ import annotations

import argparse
import re

from django.utils import timezone

from batches import cli
from batches.services.cleanup import MAX_DAYS, cleanup_old_batches


# ASCII digits with an optional fraction: float() would also take 'inf', 'nan', '1e400' and '٣'.
_DAYS = re.compile(r"-?(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})")


def days(value: str) -> float:
    if not _DAYS.fullmatch(value.strip()):
        raise argparse.ArgumentTypeError(f"expected a number of days, got {value!r}")
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 days or more, got {value}")
    if number > MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_DAYS} days (100 years), got {value}")
    return number


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class Command(cli.CliCommand):
    help = ("Remove jobs that finished more than DAYS ago: their rows (units, images, events) and their "
            "output folders together. Jobs still queued or running are never touched. Folders under "
            "OUTPUT_ROOT/batches with no job row, unchanged for DAYS, go too.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=days, required=True, metavar="DAYS",
                            help="remove batches finished more than DAYS ago (0: every finished batch)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:
        report = cleanup_old_batches(older_than_days=options["older_than"], dry_run=options["dry_run"])
        if options["json"]:
            self.write_json(report.as_dict())
            if report.errors:
                raise SystemExit(cli.EXIT_FAILED)
            return
        verb = "Would remove" if report.dry_run else "Removed"
        for r in report.removals:
            if r.note:
                self.stdout.write(f"  kept job {r.job_id}: {r.note}")
                continue
            if r.kind == "job":
                finished = timezone.localtime(r.finished_at).strftime("%Y-%m-%d %H:%M") if r.finished_at else "?"
                self.stdout.write(f"  {verb.lower()} job {r.job_id} ({r.status}, finished {finished}): "
                                  f"{r.images} images, {size(r.bytes)}  {r.folder}")
            else:
                self.stdout.write(f"  {verb.lower()} folder without a job: {size(r.bytes)}  {r.folder}")
        jobs = [r for r in report.jobs if not r.note]
        orphans = report.orphans
        self.stdout.write(
            f"{verb} {len(jobs)} job{'s' * (len(jobs) != 1)} finished before "
            f"{timezone.localtime(report.cutoff):%Y-%m-%d %H:%M} ({sum(r.images for r in jobs)} images) and "
            f"{len(orphans)} folder{'s' * (len(orphans) != 1)} without a job: {size(report.bytes)}"
            f"{' would be' if report.dry_run else ''} freed."
        )
        if report.events_pruned:
            self.stdout.write(f"Pruned {report.events_pruned} progress events older than the retention "
                              f"(DGX_EVENT_RETENTION_HOURS).")
        if report.spared_active:
            ids = ", ".join(map(str, report.spared_active))
            self.stdout.write(f"Left alone (still active): job{'s' * (len(report.spared_active) != 1)} {ids}.")
        for error in report.errors:
            self.stderr.write(error)
        if report.errors:
            raise SystemExit(cli.EXIT_FAILED)
