"""The operator verbs without another CLI door: pause, resume, priority, retry, requeue.

    manage.py batch_queue                      # is the queue paused? how much is waiting?
    manage.py batch_queue --pause | --resume
    manage.py batch_queue --priority 12 urgent
    manage.py batch_queue --retry-failed 12 | --requeue 12
"""
from __future__ import annotations

from django.core.management.base import CommandError

from batches import cli
from batches.models import Job, Priority, QueueControl, Unit
from batches.services import control
from batches.services.quotas import QuotaError
from batches.services.submission import SubmissionError

PRIORITIES = [p.label for p in sorted(Priority, reverse=True)]


class Command(cli.CliCommand):
    help = "Pause or resume the queue, change a job's priority, retry its failed units or requeue it."

    def add_arguments(self, parser) -> None:
        verb = parser.add_mutually_exclusive_group()
        verb.add_argument("--pause", action="store_true", help="running units finish; nothing new starts")
        verb.add_argument("--resume", action="store_true", help="start claiming units again")
        verb.add_argument("--priority", nargs=2, metavar=("JOB_ID", "LEVEL"),
                          help=f"set a job's priority: {', '.join(PRIORITIES)}")
        verb.add_argument("--retry-failed", type=cli.job_id_arg, metavar="JOB_ID", help="put a job's failed units back in the queue")
        verb.add_argument("--requeue", type=cli.job_id_arg, metavar="JOB_ID", help="queue a new job with the same parameters")
        parser.add_argument("--user", metavar="NAME",
                            help="act as this user (recorded as 'by'; --requeue queues the new job for them)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:
        by = cli.actor_name(options["user"])
        if options["pause"]:
            control.queue_pause(by=by)
            result = {"paused": True, "message": "Paused the queue: units running now finish, nothing new starts."}
        elif options["resume"]:
            control.queue_resume(by=by)
            result = {"paused": False, "message": "Resumed the queue."}
        elif options["priority"]:
            job_id, level = options["priority"]
            job = cli.get_job(job_id, flag="--priority")
            try:
                control.job_set_priority(job, level.strip().lower(), by=by)
            except control.ControlError as exc:
                raise cli.UsageError(f"--priority: {exc}") from None
            result = {"job": job.pk, "priority": job.priority_name,
                      "message": f"Job {job.pk} now has priority {job.priority_name}."}
        elif options["retry_failed"] is not None:
            job = cli.get_job(options["retry_failed"])
            try:
                n = control.job_retry_failed(job, by=by)
            except QuotaError as exc:
                raise cli.UsageError(f"--retry-failed: {exc}") from None
            if not n:
                raise cli.UsageError(f"--retry-failed: job {job.pk} has no failed units")
            result = {"job": job.pk, "units": n,
                      "message": f"Job {job.pk}: {n} failed unit{'s' * (n != 1)} queued again."}
        elif options["requeue"] is not None:
            job = cli.get_job(options["requeue"])
            owner = cli.resolve_user(options["user"]) if options["user"] else job.owner
            try:
                new = control.job_requeue(job, owner=owner)
            except SubmissionError as exc:  # e.g. its workflow file was removed since
                problems = "; ".join(f"{f}: {m}" for f, ms in exc.errors.items() for m in ms)
                raise CommandError(f"--requeue: job {job.pk} cannot be queued again: {problems}") from None
            result = {"job": new.pk, "requeued_from": job.pk,
                      "message": f"Queued job {new.pk}, a copy of job {job.pk} ({new.images_planned} images)."}
        else:
            control_row = QueueControl.objects.filter(pk=1).first()
            paused = bool(control_row and control_row.paused)
            pending = Unit.objects.filter(status=Unit.Status.PENDING).count()
            active = Job.objects.filter(status__in=Job.ACTIVE).count()
            state = "PAUSED" + (f" by {control_row.paused_by}" if control_row.paused_by else "") if paused else "running"
            result = {"paused": paused, "pending_units": pending, "active_jobs": active,
                      "message": f"The queue is {state}: {active} active jobs, {pending} units pending."}
        if options["json"]:
            self.write_json(result)
        else:
            self.stdout.write(result["message"])
