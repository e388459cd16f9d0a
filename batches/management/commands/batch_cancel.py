"""Cancel jobs: `manage.py batch_cancel JOB_ID | --all-queued | --all [--after-current]`."""
from __future__ import annotations

from django.db.models import Count

from batches import cli
from batches.models import Job, Unit
from batches.services import control


class Command(cli.CliCommand):
    help = ("Cancel one job, every queued job (--all-queued) or every queued and running job (--all). "
            "Images already made are kept. --after-current lets the unit on the GPU finish first "
            "(with a JOB_ID: that job; alone or with --all: every job).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("job_id", nargs="?", type=cli.job_id_arg, metavar="JOB_ID", help="the job to cancel")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all-queued", action="store_true", help="cancel every job that has not started")
        which.add_argument("--all", action="store_true", help="cancel every queued and running job")
        parser.add_argument("--after-current", action="store_true",
                            help="let the unit that is running finish, then stop")
        parser.add_argument("--user", metavar="NAME", help="who to record as cancelling (default: your OS user name)")
        parser.add_argument("--json", action="store_true", help="print what was done as JSON")

    def handle(self, *args, job_id=None, **options) -> None:
        by = cli.actor_name(options["user"])
        after = options["after_current"]
        if job_id is not None and (options["all"] or options["all_queued"]):
            flag = "--all" if options["all"] else "--all-queued"
            raise cli.UsageError(f"{flag}: not with a JOB_ID: give either a job id or {flag}")
        if options["all_queued"] and after:
            raise cli.UsageError("--after-current: queued jobs have no current unit: use --all-queued alone, "
                                 "or --all --after-current")
        if job_id is None and not (options["all"] or options["all_queued"] or after):
            raise cli.UsageError("give a JOB_ID, --all-queued or --all (add --after-current to let running units finish)")

        if job_id is not None:
            result = self.one(cli.get_job(job_id), by=by, after=after)
        elif options["all_queued"]:
            n = control.cancel_all_queued(by=by)
            result = {"action": "cancel_all_queued", "jobs": n,
                      "message": f"Cancelled {n} queued job{'s' * (n != 1)}."}
        elif after:
            n = control.stop_all_after_current(by=by)
            result = {"action": "stop_all_after_current", "jobs": n,
                      "message": f"Stopping {n} job{'s' * (n != 1)} after the units now running; nothing else starts."}
        else:
            before = dict(Job.objects.filter(status__in=Job.ACTIVE).values_list("status").annotate(n=Count("id")))
            n = control.cancel_all(by=by)
            result = {"action": "cancel_all", "jobs": n,
                      "message": f"Cancelled {n} job{'s' * (n != 1)} ({before.get(Job.Status.QUEUED, 0)} queued, "
                                 f"{before.get(Job.Status.RUNNING, 0)} running)."}
        if options["json"]:
            self.write_json(result)
        else:
            self.stdout.write(result["message"])

    def one(self, job: Job, *, by: str, after: bool) -> dict:
        if not job.is_active:
            if job.status == Job.Status.CANCELLED:
                return {"action": "none", "job": job.pk, "status": job.status,
                        "message": f"Job {job.pk} is already cancelled."}
            raise cli.UsageError(f"job {job.pk} already finished ({job.status}): there is nothing to cancel")
        if after:
            stopped = control.job_stop_after_current(job, by=by)
            running = job.units.filter(status=Unit.Status.RUNNING).count()
            job.refresh_from_db()
            tail = (f"the {running} unit{'s' * (running != 1)} running will finish" if running
                    else "nothing was running")
            return {"action": "stop_after_current", "job": job.pk, "units_stopped": stopped, "status": job.status,
                    "message": f"Job {job.pk} stops after its current unit: {stopped} unit{'s' * (stopped != 1)} "
                               f"will not run; {tail}."}
        was = job.status
        cancelled = control.job_cancel(job, by=by)
        job.refresh_from_db()
        if not cancelled:  # it finished between the look and the cancel
            return {"action": "none", "job": job.pk, "status": job.status,
                    "message": f"Job {job.pk} finished ({job.status}) before it could be cancelled."}
        return {"action": "cancel", "job": job.pk, "was": was, "status": job.status,
                "message": f"Cancelled job {job.pk} (it was {was}; {job.images_done} of {job.images_planned} "
                           f"images already made are kept)."}
