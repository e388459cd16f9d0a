"""Reviewing images: the gallery's filters and keyset pages, review and star changes (one image or
a selection), and zips of images. Comparing jobs is in compare.py, the statistics page's series
in stats.py.

Views stay thin: they parse the request, call one function here, render.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable

from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet

from batches.models import Event, Image, Job
from batches.numbers import NumberError, parse_id, parse_id_list
from batches.services import outputs
from batches.services.events import publish
from batches.services.keyset import keyset_page

PAGE_SIZE = 60
SEAM_SORT_LIMIT = 500  # images of one job shown by seam score, on one page (no keyset to page by)
SORTS = ("seam",)  # besides the default, newest first
MAX_SELECTION = 2000  # ids in one bulk change or selection zip
NO_LORA = "-"  # the LoRA filter's value for "jobs without a LoRA"

# The columns a gallery tile and the viewer need; the job's prompt list (up to 5000 texts) and
# the image's metadata JSON stay in the database.
TILE_DEFER = ("metadata", "job__prompts", "job__error", "job__negative_prompt")


# --- Gallery: filters and keyset pages ------------------------------------------------------

@dataclass(frozen=True)
class GalleryFilters:
    job: int | None = None
    q: str = ""
    profile: str = ""
    checkpoint: str = ""
    lora: str = ""
    review: str = ""
    starred: bool = False
    sort: str = ""  # "" newest first (keyset pages); "seam": one job's images, most seamless first

    @classmethod
    def from_query(cls, params) -> "GalleryFilters":
        """Read filters from GET parameters; unknown choices are ignored, a job that is not an id
        raises NumberError (the view answers 400)."""
        job = query_id(params, "job", what="a job id")
        review = (params.get("review") or "").strip()
        if review not in Image.Review.values:
            review = ""
        sort = (params.get("sort") or "").strip()
        return cls(
            job=job,
            q=(params.get("q") or "").strip()[:200],
            profile=(params.get("profile") or "").strip()[:50],
            checkpoint=(params.get("checkpoint") or "").strip()[:255],
            lora=(params.get("lora") or "").strip()[:255],
            review=review,
            starred=(params.get("starred") or "") in ("1", "on", "true", "yes"),
            sort=sort if sort in SORTS else "",
        )

    def as_query(self) -> dict[str, str]:
        """The non-empty filters, for links that keep them (pager, partial fetches)."""
        query = {
            "job": str(self.job) if self.job else "", "q": self.q, "profile": self.profile,
            "checkpoint": self.checkpoint, "lora": self.lora, "review": self.review,
            "starred": "1" if self.starred else "", "sort": self.sort,
        }
        return {k: v for k, v in query.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.as_query())


def query_id(params, name: str, *, what: str, minimum: int = 1) -> int | None:
    """An id from a GET parameter: None when absent or blank, NumberError when it is not an id."""
    value = (params.get(name) or "").strip()
    return parse_id(value, what=what, minimum=minimum) if value else None


def gallery_queryset(filters: GalleryFilters) -> QuerySet[Image]:
    images = Image.objects.select_related("job").defer(*TILE_DEFER)
    if filters.job:
        images = images.filter(job_id=filters.job)
    if filters.q:
        images = images.filter(prompt__icontains=filters.q)
    if filters.profile:
        images = images.filter(job__profile=filters.profile)
    if filters.checkpoint:
        images = images.filter(job__checkpoint=filters.checkpoint)
    if filters.lora == NO_LORA:
        images = images.filter(job__lora="")
    elif filters.lora:
        images = images.filter(job__lora=filters.lora)
    if filters.review:
        images = images.filter(review=filters.review)
    if filters.starred:
        images = images.filter(starred=True)
    return images


@dataclass
class GalleryPage:
    images: list[Image]
    newer: int | None  # link ?after=<id> to the page before this one (newer images)
    older: int | None  # link ?before=<id> to the page after this one (older images)

    @property
    def is_first(self) -> bool:
        """The newest page: live images are added at its top."""
        return self.newer is None

    @property
    def top_id(self) -> int:
        return self.images[0].pk if self.images else 0


def gallery_page(filters: GalleryFilters, *, before: int | None = None, after: int | None = None,
                 size: int = PAGE_SIZE) -> GalleryPage:
    """One page of images, newest first, by keyset on id: two queries whatever the page.

    No COUNT(*) and no OFFSET: the `image_newest` index (-id) is walked from the cursor and
    stops after size + 1 rows, so page 500 costs what page 1 costs.
    """
    page = keyset_page(gallery_queryset(filters), before=before, after=after, size=size)
    return GalleryPage(page.rows, newer=page.newer, older=page.older)


class GallerySortError(ValueError):
    """A sort the gallery cannot do as asked (seam order without a job); says what to add."""


@dataclass
class SortedPage:
    """One job's images in another order than newest first: a single page, not live, no pager."""

    images: list[Image]
    total: int
    limit: int
    newer: None = None
    older: None = None
    is_first: bool = False
    top_id: int = 0

    @property
    def capped(self) -> bool:
        return self.total > len(self.images)


def seam_page(filters: GalleryFilters, *, limit: int = SEAM_SORT_LIMIT) -> SortedPage:
    """A job's images by seam score, most seamless (lowest) first, ties by id; unscored ones last.

    Keyset pages walk the id index and cannot follow a score, so this sort needs a job filter and
    shows at most `limit` images (the `image_seam_order` index serves the order).
    """
    if not filters.job:
        raise GallerySortError("sort=seam needs a job: choose one in the Job filter (?job=<id>&sort=seam)")
    images = gallery_queryset(filters)
    rows = list(images.order_by(F("seam_score").asc(nulls_last=True), "id")[:limit])
    total = len(rows) if len(rows) < limit else images.count()
    return SortedPage(images=rows, total=total, limit=limit)


def images_newer_than(filters: GalleryFilters, newest_id: int, *, limit: int = PAGE_SIZE) -> tuple[list[Image], bool]:
    """The next images saved after `newest_id` (the live top of the first page), newest first, and
    whether more are waiting: taken oldest first, so a burst is fetched in order without gaps."""
    rows = list(gallery_queryset(filters).filter(id__gt=newest_id).order_by("id")[: limit + 1])
    return rows[:limit][::-1], len(rows) > limit


def images_with_ids(ids: list[int]) -> list[Image]:
    """Tiles drawn again by id (a sprite made or queued since the page was drawn), newest first."""
    return list(gallery_queryset(GalleryFilters()).filter(pk__in=ids[:PAGE_SIZE]).order_by("-id"))


def latest_event_id() -> int:
    """Where the page's socket starts: events after the state it was drawn from."""
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def gallery_choices(filters: GalleryFilters) -> dict:
    """What the filter bar offers: one query over jobs for the values, one for the job list."""
    profiles, checkpoints, loras = set(), set(), set()
    for profile, checkpoint, lora in Job.objects.order_by().values_list("profile", "checkpoint", "lora").distinct():
        profiles.add(profile)
        if checkpoint:
            checkpoints.add(checkpoint)
        if lora:
            loras.add(lora)
    jobs = list(
        Job.objects.filter(images_done__gt=0).order_by("-id")
        .values("id", "name", "profile", "status", "images_done", "created_at")[:100]
    )
    if filters.job and all(j["id"] != filters.job for j in jobs):
        jobs += list(Job.objects.filter(pk=filters.job).values(
            "id", "name", "profile", "status", "images_done", "created_at"))
    return {"profiles": sorted(profiles), "checkpoints": sorted(checkpoints), "loras": sorted(loras),
            "jobs": jobs, "reviews": Image.Review.values, "no_lora": NO_LORA}


# --- Review and star ------------------------------------------------------------------------

BULK_ACTIONS = {
    "approve": {"review": Image.Review.APPROVED},
    "reject": {"review": Image.Review.REJECTED},
    "unreview": {"review": Image.Review.UNREVIEWED},
    "star": {"starred": True},
    "unstar": {"starred": False},
}


class ReviewError(ValueError):
    """A review request that means nothing (unknown state or action, no ids); says what is allowed."""


def image_review(*, image: Image, review: str) -> Image:
    if review not in Image.Review.values:
        raise ReviewError(f"unknown review {review!r}: use one of {', '.join(Image.Review.values)}")
    image.set_review(review)
    publish("image_reviewed", job_id=image.job_id, images=[image.pk], review=review)
    return image


def image_star(*, image: Image, starred: bool | None = None) -> Image:
    """Set the star (`starred` given) or toggle it (None)."""
    if starred is None:
        image.toggle_star()
    else:
        Image.objects.filter(pk=image.pk).update(starred=starred)
        image.starred = starred
    publish("image_reviewed", job_id=image.job_id, images=[image.pk], starred=image.starred)
    return image


def parse_ids(values: Iterable[str]) -> list[int]:
    """Ids from form values, each either one id or a comma-separated list; raises ReviewError."""
    try:
        ids = parse_id_list(values, what="an image id")
    except NumberError as exc:
        raise ReviewError(str(exc)) from None
    if not ids:
        raise ReviewError("select at least one image")
    if len(ids) > MAX_SELECTION:
        raise ReviewError(f"{len(ids)} images selected; the limit is {MAX_SELECTION} at once")
    return ids


def images_bulk_update(*, user, ids: list[int], action: str) -> list[int]:
    """Apply one action to a selection: all or nothing. Returns the ids changed.

    Raises PermissionDenied when any image belongs to a job the user may not change (staff may
    change all), so a selection never half-applies.
    """
    changes = BULK_ACTIONS.get(action)
    if changes is None:
        raise ReviewError(f"unknown action {action!r}: use one of {', '.join(BULK_ACTIONS)}")
    rows = list(Image.objects.filter(pk__in=ids).values_list("pk", "job_id", "job__owner_id"))
    if not user.is_staff and any(owner != user.pk for _, _, owner in rows):
        raise PermissionDenied("only the job's owner or staff may review its images")
    found = [pk for pk, _, _ in rows]
    Image.objects.filter(pk__in=found).update(**changes)
    by_job: dict[int, list[int]] = defaultdict(list)
    for pk, job_id, _ in rows:
        by_job[job_id].append(pk)
    for job_id, pks in by_job.items():
        publish("image_reviewed", job_id=job_id, images=pks, **changes)
    return found


# --- Zips ----------------------------------------------------------------------------------

def zip_images(images: Iterable[Image], *, with_batch_info: bool = False) -> IO[bytes]:
    """Write a zip into an anonymous temp file and return it rewound (FileResponse streams it).

    The layout of the output folder, per job: <batch>/images/sprite_0001_<seed>.png and
    <batch>/metadata/sprite_0001.json (plus <batch>/batch_info.json for a whole job), so an
    unpacked zip reads like the folder on the studio machine. PNGs are stored, JSON deflated. Files missing on
    disk are listed in MISSING.txt rather than failing the download.
    """
    tmp = tempfile.TemporaryFile(prefix="dgxpixels-zip-")
    missing: list[str] = []
    folders: set[str] = set()
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for image in images:
            folder = image.job.output_dir or outputs.job_dir_name(image.job)
            entries = [
                (image.file_path, f"{folder}/images/{Path(image.file_path).name}", zipfile.ZIP_STORED),
                (image.metadata_path, f"{folder}/metadata/{Path(image.metadata_path).name}", zipfile.ZIP_DEFLATED),
            ]
            if with_batch_info and folder not in folders:
                entries.insert(0, (outputs.job_dir(image.job) / "batch_info.json", f"{folder}/batch_info.json",
                                   zipfile.ZIP_DEFLATED))
            folders.add(folder)
            for source, arcname, kind in entries:
                if source:
                    _add_to_zip(archive, source, arcname, kind, missing)
        if missing:
            archive.writestr("MISSING.txt", "These files were not on disk when the zip was made:\n"
                             + "\n".join(missing) + "\n")
    tmp.seek(0)
    return tmp


def _add_to_zip(archive: zipfile.ZipFile, source, arcname: str, kind: int, missing: list[str]) -> None:
    """Pack one output file, only if it is a regular file inside OUTPUT_ROOT; else note why not."""
    try:
        handle = outputs.open_output(source)
    except outputs.OutsideOutputRoot:
        missing.append(f"{arcname} (refused: it leads outside the output folder)")
        return
    except OSError:
        missing.append(arcname)
        return
    info = zipfile.ZipInfo(arcname, date_time=_zip_time(handle))
    info.compress_type = kind
    info.external_attr = 0o644 << 16
    with handle, archive.open(info, "w") as out:
        shutil.copyfileobj(handle, out, 1 << 20)


def _zip_time(handle) -> tuple:
    return time.localtime(max(os.fstat(handle.fileno()).st_mtime, 315532800))[:6]  # zip starts at 1980


def job_zip(job: Job, *, review: str = "") -> tuple[IO[bytes], str]:
    """A job's images (optionally only approved/rejected/unreviewed ones) as (file, download name)."""
    images = Image.objects.filter(job_id=job.pk).select_related("job").defer(*TILE_DEFER).order_by("sequence")
    suffix = ""
    if review in Image.Review.values:
        images = images.filter(review=review)
        suffix = f"_{review}"
    return zip_images(images.iterator(chunk_size=500), with_batch_info=True), \
        f"{job.output_dir or outputs.job_dir_name(job)}{suffix}.zip"


def selection_zip(ids: list[int]) -> tuple[IO[bytes], str]:
    images = Image.objects.filter(pk__in=ids).select_related("job").defer(*TILE_DEFER).order_by("job_id", "sequence")
    return zip_images(images.iterator(chunk_size=500)), f"dgxpixels_selection_{len(ids)}_images.zip"
