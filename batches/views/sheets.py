"""Sheets, animations and tilesets (issue 13): the job page's exports and their files, the
animation player's settings and frame order, and the gallery's "Download sheet"."""
from __future__ import annotations

import mimetypes

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from batches.services import outputs, sheets
from batches.services import review as reviews
from batches.sheets import SheetError
from batches.views.access import get_job_for_user
from batches.views.responses import action_done

CONTENT_TYPES = {".json": "application/json", ".tsj": "application/json", ".tsx": "application/xml",
                 ".png": "image/png", ".gif": "image/gif", ".webp": "image/webp"}


def _card(job, anchor: str = "job-sheets") -> str:
    return f"{reverse('job-detail', args=[job.pk])}#{anchor}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


@login_required
@require_POST
def job_sheets_export(request: HttpRequest, job_id: int) -> HttpResponse:
    """Pack the job's sprites as the export form asks (owner or staff); the Sheets card lists it."""
    job = get_job_for_user(request, job_id, change=True)
    try:
        made = sheets.export_from_form(job, request.POST, by=request.user.get_username())
    except SheetError as exc:
        return action_done(request, f"Nothing exported: {exc}", default=_card(job), ok=False)
    width, height = made.size
    return action_done(request, f"Exported {made.export.name}: {_plural(made.frames, 'frame')}, {width}×{height}, "
                                f"{_plural(len(made.files), 'file')}.", default=_card(job))


@login_required
@require_safe
def job_sheet_file(request: HttpRequest, job_id: int, export_id: int, name: str) -> HttpResponse:
    """One file of an export, as an attachment: only the files the export lists, and only from
    inside the output folder (anyone signed in may download, as with images)."""
    job = get_job_for_user(request, job_id)
    relative = sheets.export_file(job, export_id, name)
    if relative is None:
        raise Http404("this export has no such file")
    try:
        handle = outputs.open_output(relative)
    except (OSError, ValueError):  # gone from disk, or a link leading outside OUTPUT_ROOT
        raise Http404("the file is missing from the output folder") from None
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    kind = CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=kind, as_attachment=True, filename=name)
    response["Cache-Control"] = "no-store"  # an export of the same name is written again in place
    return response


@login_required
@require_POST
def job_animation(request: HttpRequest, job_id: int) -> HttpResponse:
    """fps, loop (loop|pingpong|once) and onion: how the job's frames play (owner or staff)."""
    job = get_job_for_user(request, job_id, change=True)
    try:
        played = sheets.animation_from_form(job, request.POST)
    except SheetError as exc:
        return action_done(request, f"Animation not saved: {exc}", default=_card(job, "animation"), ok=False)
    return action_done(request, f"Animation of job {job.pk}: {played['fps']} fps, {played['loop']}"
                                f"{', onion skin' if played['onion'] else ''}.", default=_card(job, "animation"))


@login_required
@require_POST
def job_frames(request: HttpRequest, job_id: int) -> HttpResponse:
    """order (kept image ids in play order) and dropped (ids left out): the frame strip (owner or staff)."""
    job = get_job_for_user(request, job_id, change=True)
    try:
        order = sheets.frames_from_form(job, request.POST)
    except SheetError as exc:
        return action_done(request, f"Frame order not saved: {exc}", default=_card(job, "animation"), ok=False)
    return action_done(request, f"Frame order saved: {_plural(len(order), 'frame')} play.",
                       default=_card(job, "animation"))


@login_required
@require_POST
def images_sheet(request: HttpRequest) -> HttpResponse:
    """ids of one job's images: a zip of their sheet (PNG and Aseprite JSON atlas), named selection_<n>.

    The zip comes back whatever the rights; for the job's owner (or staff) the sheet is also kept in
    the job's sheets/ folder and listed on the job page's Sheets card (see sheets.selection_sheet).
    """
    try:
        ids = reviews.parse_ids(request.POST.getlist("ids"))
        archive, filename, _ = sheets.selection_sheet(user=request.user, ids=ids)
    except (reviews.ReviewError, SheetError) as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    response = FileResponse(archive, as_attachment=True, filename=filename, content_type="application/zip")
    response["Cache-Control"] = "no-store"
    return response
