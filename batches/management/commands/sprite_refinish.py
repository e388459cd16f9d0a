"""Rebuild a job's sprites with other finishing settings, without touching the GPU.

    manage.py sprite_refinish JOB [--images ID,ID...] [--palette gameboy | --colors 8 ...] [--wait]
"""
from __future__ import annotations

import time

from django.core.exceptions import PermissionDenied

from batches import cli, finish_flags
from batches.models import Image
from batches.numbers import NumberError, parse_id_list
from batches.services import finishing
from batches.sprites.plan import FinishError


class Command(cli.CliCommand):
    help = ("Rebuild the sprites of a job (or of some of its images) with new finishing settings; the "
            "originals and the GPU are not touched, and each image's metadata keeps every run's settings. "
            "The sprite worker (manage.py sprite_worker, started by ./scripts/run.sh) does the work.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("job", type=cli.job_id_arg, metavar="JOB", help="the job's id")
        parser.add_argument("--images", metavar="ID,ID...", help="only these images of the job (default: all)")
        parser.add_argument("--user", metavar="NAME", help="act as this user (default: you, else the first superuser)")
        parser.add_argument("--wait", action="store_true", help="wait until the sprites are rebuilt, showing progress")
        finish_flags.add_arguments(parser, switch=False)

    def handle(self, *args, **options) -> None:
        job = cli.get_job(options["job"], flag="JOB")
        values = finish_flags.values_from(options)
        user = cli.resolve_user(options["user"])
        try:
            if options["images"]:
                ids = self._image_ids(job, options["images"])
                count = finishing.images_refinish(user=user, ids=ids, finish=values or None)
            else:
                if not (user.is_staff or job.owner_id == user.pk):
                    raise PermissionDenied
                count = finishing.job_refinish(job, finish=values or None, by=cli.actor_name(options["user"]))
        except FinishError as exc:
            raise cli.UsageError(finish_flags.usage_line(exc)) from None
        except PermissionDenied:
            raise cli.UsageError(f"--user: {user.get_username()} may not change job {job.pk}: "
                                 "only its owner or staff may re-finish its sprites") from None
        job.refresh_from_db()
        self.stdout.write(f"Job {job.pk}: {count} image(s) queued for finishing ({finishing.describe(job.finish)}).")
        if options["wait"]:
            self._wait(job)

    def _image_ids(self, job, text: str) -> list[int]:
        try:
            ids = parse_id_list([text], what="an image id")
        except NumberError as exc:
            raise cli.UsageError(f"--images: {exc}") from None
        found = set(Image.objects.filter(job_id=job.pk, pk__in=ids).values_list("pk", flat=True))
        missing = [i for i in ids if i not in found]
        if missing:
            raise cli.UsageError(f"--images: job {job.pk} has no image {', '.join(map(str, missing))}: "
                                 f"see the job page or batch_status {job.pk}")
        return ids

    def _wait(self, job) -> None:
        while True:
            counts = finishing.sprite_counts([job.pk]).get(job.pk, {"done": 0, "open": 0, "failed": 0})
            total = counts["done"] + counts["open"] + counts["failed"]
            self.stdout.write(f"\r  {cli.bar(counts['done'] / max(total, 1))} {counts['done']}/{total} sprites"
                              + (f", {counts['failed']} failed" if counts["failed"] else ""), ending="")
            self.stdout.flush()
            if not counts["open"]:
                self.stdout.write("")
                return
            time.sleep(cli.POLL_SECONDS)
