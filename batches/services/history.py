"""The job history: every job, newest first, searched and filtered, in keyset pages (issue 15).

Like the gallery's pages (services/review.gallery_page): no COUNT(*) and no OFFSET, cursors are
job ids, and a page costs the same few queries whatever its rows: one for the jobs, one for
all their thumbnails (a window over the images, first four of each job), one to see if newer
jobs exist, and one for the filter bar's choices.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from batches.models import Image, Job
from batches.numbers import NumberError, parse_id
from batches.services.keyset import keyset_page

PAGE_SIZE = 50
THUMBS_PER_JOB = 4
# Only what a row shows: a job's prompt list can hold 5000 texts.
ROW_FIELDS = ("id", "name", "owner__username", "status", "profile", "checkpoint", "lora", "count",
              "images_planned", "images_done", "images_failed", "width", "height", "created_at",
              "finished_at")


def query_id(params, name: str, *, what: str, minimum: int = 1) -> int | None:
    value = (params.get(name) or "").strip()
    return parse_id(value, what=what, minimum=minimum) if value else None


def _query_date(params, name: str) -> dt.date | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise NumberError(f"{value[:40]!r} is not a date: use YYYY-MM-DD", field=name) from None


@dataclass(frozen=True)
class HistoryFilters:
    q: str = ""
    owner: int | None = None
    status: str = ""
    profile: str = ""
    checkpoint: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    @classmethod
    def from_query(cls, params) -> "HistoryFilters":
        """Read filters from GET parameters; raises NumberError (the view answers 400) for an owner
        that is not an id, a status that does not exist or a date that is not YYYY-MM-DD."""
        status = (params.get("status") or "").strip()
        if status and status not in Job.Status.values:
            raise NumberError(f"{status[:40]!r} is not a status: use one of {', '.join(Job.Status.values)}",
                              field="status")
        return cls(
            q=(params.get("q") or "").strip()[:200],
            owner=query_id(params, "owner", what="a user id"),
            status=status,
            profile=(params.get("profile") or "").strip()[:50],
            checkpoint=(params.get("model") or params.get("checkpoint") or "").strip()[:255],
            date_from=_query_date(params, "from"),
            date_to=_query_date(params, "to"),
        )

    def as_query(self) -> dict[str, str]:
        """The non-empty filters, for links that keep them (the pager)."""
        query = {
            "q": self.q, "owner": str(self.owner) if self.owner else "", "status": self.status,
            "profile": self.profile, "model": self.checkpoint,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }
        return {k: v for k, v in query.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.as_query())


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def history_queryset(filters: HistoryFilters) -> QuerySet[Job]:
    jobs = Job.objects.all()
    if filters.q:
        # The prompt list is JSON: searched as its text, which holds every prompt.
        jobs = jobs.filter(Q(name__icontains=filters.q) | Q(prompts__icontains=filters.q))
    if filters.owner:
        jobs = jobs.filter(owner_id=filters.owner)
    if filters.status:
        jobs = jobs.filter(status=filters.status)
    if filters.profile:
        jobs = jobs.filter(profile=filters.profile)
    if filters.checkpoint:
        jobs = jobs.filter(checkpoint=filters.checkpoint)
    if filters.date_from:
        jobs = jobs.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:  # the whole "to" day counts
        jobs = jobs.filter(created_at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    return jobs


@dataclass
class HistoryPage:
    jobs: list[dict]
    newer: int | None  # ?after=<id>: the page before this one (newer jobs)
    older: int | None  # ?before=<id>: the page after this one (older jobs)
    thumbs: dict[int, list[dict]] = field(default_factory=dict)

    @property
    def is_first(self) -> bool:
        return self.newer is None


def history_page(filters: HistoryFilters, *, before: int | None = None, after: int | None = None,
                 size: int | None = None) -> HistoryPage:
    """One page of jobs, newest first, by keyset on id, each with its first four thumbnails."""
    size = size or PAGE_SIZE
    page = keyset_page(history_queryset(filters), before=before, after=after, size=size,
                       fetch=lambda jobs: jobs.values(*ROW_FIELDS), pk=lambda row: row["id"])
    rows, newer, older = page.rows, page.newer, page.older
    thumbs = first_images([row["id"] for row in rows])
    for row in rows:
        row["owner"] = row.pop("owner__username")
        row["thumbs"] = thumbs[row["id"]]
    return HistoryPage(rows, newer=newer, older=older, thumbs=thumbs)


def first_images(job_ids: list[int], *, per_job: int = THUMBS_PER_JOB) -> dict[int, list[dict]]:
    """The first `per_job` images (by sequence) of each job, in one query: a row number per job."""
    if not job_ids:
        return {}
    numbered = (Image.objects.filter(job_id__in=job_ids)
                .annotate(place=Window(RowNumber(), partition_by=[F("job_id")], order_by=F("sequence").asc()))
                .filter(place__lte=per_job)
                .order_by("job_id", "sequence")
                .values("id", "job_id", "sequence", "seed", "sprite_state", "sprite_run"))
    thumbs: dict[int, list[dict]] = {pk: [] for pk in job_ids}
    for image in numbered:
        thumbs[image["job_id"]].append(image)
    return thumbs


def history_choices() -> dict:
    """What the filter bar offers: the values jobs use, and the people who own jobs."""
    profiles, checkpoints = set(), set()
    for profile, checkpoint in Job.objects.order_by().values_list("profile", "checkpoint").distinct():
        profiles.add(profile)
        if checkpoint:
            checkpoints.add(checkpoint)
    owners = list(get_user_model().objects.filter(jobs__isnull=False).distinct()
                  .order_by("username").values("id", "username"))
    return {"profiles": sorted(profiles), "checkpoints": sorted(checkpoints), "owners": owners,
            "statuses": Job.Status.values}
