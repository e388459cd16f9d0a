"""What the batch_* management commands share: the acting user, one-line errors, exit codes,
job rendering (table rows, progress bars, JSON) and waiting on jobs until they finish.

Exit codes (the same for every command):
    0 completed (or nothing to report)    1 a job failed     2 a job partly failed
    3 a job was cancelled                  64 a usage mistake (bad flag, bad file, unknown job)
    130 interrupted (Ctrl-C) while waiting; the job goes on
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import re
import signal
import sys
import time
from datetime import timedelta
from typing import Callable, Iterable

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from batches.checks import COMMAND_CHECKS
from batches.models import Job, Unit
from batches.numbers import NumberError, parse_id, parse_int
from batches.services import outputs
from batches.services.rates import RateSnapshot, rate_for

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_PARTIAL = 2
EXIT_CANCELLED = 3
EXIT_USAGE = 64  # sysexits.h EX_USAGE: kept apart from 1-3 so a script can tell a typo from a failed job
EXIT_INTERRUPTED = 130

EXIT_FOR_STATUS = {
    Job.Status.COMPLETED: EXIT_COMPLETED,
    Job.Status.FAILED: EXIT_FAILED,
    Job.Status.PARTIAL: EXIT_PARTIAL,
    Job.Status.CANCELLED: EXIT_CANCELLED,
}

POLL_SECONDS = 0.25
QUIET_LOGGERS = ("batches", "django-q")
BAR_WIDTH = 24


class UsageError(CommandError):
    """A user mistake: one line naming the flag and the fix, exit code 64."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()), returncode=EXIT_USAGE)


class WorkerCommand(BaseCommand):
    """A long-running worker command (sprite_worker, webhook_worker): SIGTERM or SIGINT asks it to
    stop after what it is doing, and each line it says is flushed at once (the launcher's log)."""

    requires_system_checks = COMMAND_CHECKS  # the secret key only (batches/checks.py)

    def stop_flag(self) -> Callable[[], bool]:
        """Install the signal handlers; the returned callable is true once a stop was asked for."""
        stopping: list[int] = []

        def stop(signum, frame):
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        return lambda: bool(stopping)

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()


class CliCommand(BaseCommand):
    """A management command whose argument errors are one line on stderr and exit with 64."""

    requires_system_checks = COMMAND_CHECKS  # the secret key only: a quick CLI (batches/checks.py)

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        prog = self._prog = f"manage.py {subcommand}"

        def error(message: str):
            line = f"{message} (see {prog} --help)"
            if parser.called_from_command_line:
                # argparse would print the whole usage block first; one line is easier to act on.
                sys.stderr.write(f"{prog}: error: {line}\n")
                sys.exit(EXIT_USAGE)
            raise UsageError(line)

        parser.error = error
        return parser

    def execute(self, *args, **options):
        # The services log at INFO (an unreachable ComfyUI, a queued nudge); on a terminal that
        # would bury the one line a user needs. -v 2 shows them again.
        quiet = options.get("verbosity", 1) < 2
        loggers = [logging.getLogger(name) for name in QUIET_LOGGERS] if quiet else []
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
        try:
            return super().execute(*args, **options)
        except UsageError as exc:
            if not getattr(self, "_called_from_command_line", False):
                raise  # call_command: the caller gets the exception
            # The same shape as an argument error, not Django's "UsageError: ..." prefix.
            self.stderr.write(f"{self._prog}: error: {exc}")
            sys.exit(EXIT_USAGE)
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)

    def write_json(self, payload) -> None:
        self.stdout.write(to_json(payload))


def to_json(payload, *, indent: int | None = 2) -> str:
    return json.dumps(payload, cls=DjangoJSONEncoder, indent=indent, sort_keys=False)


# --- who the command acts as ---------------------------------------------------------------


def os_user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return ""


def resolve_user(name: str | None = None):
    """The Django user a command acts as.

    `--user NAME` if given (it must exist); else the Django user named like the OS user; else the
    first superuser; else a 'cli' user, created once, that cannot sign in.
    """
    User = get_user_model()
    field = User.USERNAME_FIELD
    if name:
        user = User.objects.filter(**{field: name}).first()
        if user is None:
            raise UsageError(f"--user: there is no user {name!r}: give an existing user name "
                             f"(manage.py createsuperuser makes one) or leave --user out")
        return user
    os_name = os_user_name()
    if os_name:
        user = User.objects.filter(**{field: os_name}, is_active=True).first()
        if user is not None:
            return user
    user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    if user is not None:
        return user
    user, created = User.objects.get_or_create(**{field: "cli"})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def actor_name(name: str | None = None) -> str:
    """Who to record as having done an operator action ("by" in the events)."""
    return name or os_user_name() or "cli"


def get_job(job_id, *, flag: str = "") -> Job:
    """The job a JOB_ID names; a usage error (naming `flag` when given) if it is not an id or no job."""
    prefix = f"{flag}: " if flag else ""
    try:
        pk = parse_id(job_id, what="a job id")
    except NumberError as exc:
        raise UsageError(f"{prefix}{exc}: manage.py batch_status --all lists the jobs") from None
    try:
        return Job.objects.select_related("owner").get(pk=pk)
    except Job.DoesNotExist:
        raise UsageError(f"{prefix}job {pk} does not exist: manage.py batch_status --all lists the jobs") from None


# --- argument types: ASCII digits only (argparse's int() also reads '٣', ' 3' and '1_0') -----------


def job_id_arg(value: str) -> int:
    try:
        return parse_id(value, what="a job id")
    except NumberError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number_arg(value: str) -> int:
    """A whole number; its range is checked where it is used (the service names the limits)."""
    try:
        return parse_int(value)
    except NumberError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def batch_size_arg(value: str) -> int | str:
    """--batch-size: a whole number, or "auto" (the size chosen per unit from the free VRAM)."""
    if value.strip().lower() == "auto":
        return "auto"
    return whole_number_arg(value)


def batch_size_text(job: Job) -> str:
    """A job's batch size as shown: "auto" for batch size auto, else the number."""
    return "auto" if job.batch_auto else str(job.batch_size)


# --- rendering -----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text) -> str:
    """Stored text (names, prompts, errors from ComfyUI) as shown on a terminal: every control
    character escaped (ESC would be a command to the terminal), all else as it is."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group()) or f"\\x{ord(m.group()):02x}", str(text))


def duration(value: timedelta | float | None) -> str:
    if value is None:
        return "--"
    seconds = int(round(value.total_seconds() if isinstance(value, timedelta) else value))
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def is_done(job: Job) -> bool:
    """Finished for good: a final status and no unit still in flight (a cancel is being carried out)."""
    return job.status in Job.FINISHED and job.finished_at is not None


def elapsed(job: Job) -> timedelta | None:
    if not job.started_at:
        return None
    return (job.finished_at or timezone.now()) - job.started_at


def progress_line(job: Job) -> str:
    """`job 12 [#####---] 5/16 images  1 failed  21.4 img/min  ETA 0:00:31  running`"""
    parts = [f"job {job.pk}", bar(job.progress), f"{job.images_done}/{job.images_planned} images"]
    if job.images_failed:
        parts.append(f"{job.images_failed} failed")
    rate = rate_for(job=job)
    parts.append(f"{rate.images_per_minute:.1f} img/min")
    if is_done(job):
        parts.append(f"took {duration(elapsed(job))}")
    else:
        parts.append(f"ETA {duration(rate.eta)}")
    parts.append(job.status)
    return "  ".join(parts)


def summary_line(job: Job) -> str:
    """The last word on a finished job."""
    text = f"Job {job.pk} {job.status}: {job.images_done} of {job.images_planned} images made"
    if job.images_failed:
        text += f", {job.images_failed} failed"
    took = elapsed(job)
    if took is not None:
        text += f" in {duration(took)} ({job.images_per_minute():.1f} images/min)"
    return text + "."


def unit_errors(job: Job, limit: int = 3) -> list[str]:
    rows = job.units.filter(status=Unit.Status.FAILED).order_by("index").values_list("index", "error")[:limit]
    return [f"unit {index}: {printable(' '.join((error or 'failed').split()))}" for index, error in rows]


def job_payload(job: Job, *, units: bool = False, rates: RateSnapshot | None = None) -> dict:
    """A job as JSON-ready data (the shape of --json everywhere); pass `rates` to report several
    jobs from one snapshot."""
    rate = rate_for(job=job, snapshot=rates)
    data = {
        "id": job.pk,
        "name": job.name,
        "status": job.status,
        "done": is_done(job),
        "exit_code": EXIT_FOR_STATUS.get(job.status) if is_done(job) else None,
        "owner": job.owner.get_username() if job.owner_id else None,
        "priority": job.priority_name,
        "profile": job.profile,
        "workflow": job.workflow,
        "prompts": job.prompts,
        "count": job.count,
        "parameters": outputs.job_parameters(job),
        "batch_auto": job.batch_auto,
        "images_planned": job.images_planned,
        "images_done": job.images_done,
        "images_failed": job.images_failed,
        "progress": round(job.progress, 4),
        "images_per_minute": round(rate.images_per_minute, 2),
        "eta_seconds": rate.eta_seconds,
        "rate_based_on": rate.based_on,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "output_dir": str(outputs.job_dir(job)),
        "error": job.error,
        "requeued_from": job.requeued_from_id,
        "finish": job.finish,
        "finish_palette": job.finish_palette,
    }
    if units:
        data["units"] = [
            {"index": u.index, "status": u.status, "prompt": u.prompt, "seed": u.seed, "batch_size": u.batch_size,
             "attempts": u.attempts, "node": u.node, "comfyui_prompt_id": u.prompt_id, "error": u.error,
             "downgraded_from": u.downgraded_from, "batch_size_chosen": u.batch_size_chosen,
             "vram_free_gb": round(u.vram_free / 1024**3, 1) if u.vram_free is not None else None}
            for u in job.units.order_by("index")
        ]
    return data


TABLE_COLUMNS = ("ID", "STATUS", "PRIORITY", "OWNER", "PROFILE", "PROGRESS", "IMAGES", "IMG/MIN", "ETA", "CREATED")


def job_row(job: Job, *, rates: RateSnapshot | None = None) -> tuple[str, ...]:
    rate = rate_for(job=job, snapshot=rates)
    images = f"{job.images_done}/{job.images_planned}"
    if job.images_failed:
        images += f" ({job.images_failed} failed)"
    return (
        str(job.pk), job.status, job.priority_name, job.owner.get_username() if job.owner_id else "-",
        job.profile, f"{bar(job.progress, 10)} {job.progress * 100:3.0f}%", images,
        f"{rate.images_per_minute:.1f}", duration(rate.eta) if job.is_active else "--",
        timezone.localtime(job.created_at).strftime("%Y-%m-%d %H:%M"),
    )


def table(header: Iterable[str], rows: list[tuple[str, ...]]) -> str:
    header = tuple(header)
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in (header, *rows)]
    return "\n".join(lines)


# --- waiting and monitoring ----------------------------------------------------------------


class JobMonitor:
    """Poll jobs until all are done, drawing a progress line per job.

    On a terminal the lines are redrawn in place (carriage return and cursor-up); into a pipe or
    a file a job's line is printed again only when its numbers or status change.
    """

    def __init__(self, stdout, job_ids: list[int], *, show: bool = True, tty: bool | None = None,
                 poll: float = POLL_SECONDS, sleep: Callable[[float], None] = time.sleep):
        self.stdout = stdout
        self.job_ids = list(job_ids)
        self.show = show
        self.tty = stdout.isatty() if tty is None else tty
        self.poll = poll
        self.sleep = sleep
        self._drawn = 0
        self._last: dict[int, tuple] = {}

    def fetch(self) -> list[Job]:
        jobs = {j.pk: j for j in Job.objects.select_related("owner").filter(pk__in=self.job_ids)}
        return [jobs[i] for i in self.job_ids if i in jobs]

    def draw(self, jobs: list[Job]) -> None:
        if not self.show:
            return
        if self.tty:
            lines = [progress_line(j) for j in jobs]
            moves = "\r" + (f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else "")
            self.stdout.write(moves + "\n".join(line + "\x1b[K" for line in lines), ending="")
            self.stdout.flush()
            self._drawn = len(lines)
            return
        for job in jobs:
            key = (job.status, job.images_done, job.images_failed, is_done(job))
            if self._last.get(job.pk) != key:
                self._last[job.pk] = key
                self.stdout.write(progress_line(job))

    def run(self) -> list[Job]:
        """Block until every job is done; returns the jobs as they finished."""
        while True:
            jobs = self.fetch()
            self.draw(jobs)
            if len(jobs) < len(self.job_ids) or all(is_done(j) for j in jobs):
                break
            self.sleep(self.poll)
        if self.show and self.tty:
            self.stdout.write("")  # leave the finished bars on screen
        return jobs


def exit_code_for(jobs: list[Job]) -> int:
    """The worst outcome wins: failed (1) over partly failed (2) over cancelled (3) over completed (0)."""
    codes = {EXIT_FOR_STATUS.get(j.status, EXIT_FAILED) for j in jobs} or {EXIT_FAILED}
    for code in (EXIT_FAILED, EXIT_PARTIAL, EXIT_CANCELLED, EXIT_COMPLETED):
        if code in codes:
            return code
    return EXIT_FAILED
