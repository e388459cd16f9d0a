"""The gallery: every image newest first, its filters, the viewer's review actions and the zips."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from batches.forms import RefinishForm
from batches.numbers import NumberError
from batches.services import finishing
from batches.services import review as reviews
from batches.views.access import can_change, get_image_for_user, get_job_for_user
from batches.views.responses import safe_next, wants_json


@login_required
@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    """The grid page; `?partial=1&after=<id>` answers only the tiles newer than <id> (live top).

    `?job=<id>&sort=seam` shows that job's images most seamless first, on one capped page.
    """
    try:
        filters = reviews.GalleryFilters.from_query(request.GET)
        before = reviews.query_id(request.GET, "before", what="an image id")
        after = reviews.query_id(request.GET, "after", what="an image id", minimum=0)
    except NumberError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    if request.GET.get("partial") and request.GET.get("ids"):  # tiles whose sprite changed, drawn again
        try:
            ids = reviews.parse_ids(request.GET.getlist("ids"))
        except reviews.ReviewError as exc:
            return HttpResponseBadRequest(str(exc), content_type="text/plain")
        return render(request, "batches/_gallery_grid.html", {"images": reviews.images_with_ids(ids)})
    if request.GET.get("partial") and before and filters.sort != "seam":
        # Continuous scrolling: the next keyset page of older tiles; X-Older is the cursor after it.
        page = reviews.gallery_page(filters, before=before)
        response = render(request, "batches/_gallery_grid.html", {"images": page.images})
        response["X-Older"] = str(page.older or "")
        return response
    if request.GET.get("partial"):
        images, more = reviews.images_newer_than(filters, after or 0)
        response = render(request, "batches/_gallery_grid.html", {"images": images})
        response["X-More"] = "1" if more else "0"
        return response
    if filters.sort == "seam":  # one job's images by seam score: one page, not live
        try:
            page = reviews.seam_page(filters)
        except reviews.GallerySortError as exc:
            return HttpResponseBadRequest(str(exc), content_type="text/plain")
    else:
        page = reviews.gallery_page(filters, before=before, after=after or None)
    job = None
    if filters.job:
        job = get_job_for_user(request, filters.job)
    return render(request, "batches/gallery.html", {
        "page": page, "images": page.images, "filters": filters, "query_string": urlencode(filters.as_query()),
        "choices": reviews.gallery_choices(filters), "job": job,
        "job_can_change": bool(job and can_change(request.user, job)),
        "since": reviews.latest_event_id(), "refinish_form": RefinishForm(),
    })


def _answer(request: HttpRequest, payload: dict, *, status: int = 200) -> HttpResponse:
    """JSON for the page's fetch(); a redirect back for a plain form."""
    if wants_json(request):
        return JsonResponse(payload, status=status)
    if status >= 400:
        return HttpResponse(payload.get("error", "bad request"), status=status, content_type="text/plain")
    return redirect(safe_next(request, reverse("gallery")))


@login_required
@require_POST
def image_review(request: HttpRequest, image_id: int) -> HttpResponse:
    """review=approved|rejected|unreviewed, by the job's owner or staff."""
    image = get_image_for_user(request, image_id, change=True)
    try:
        reviews.image_review(image=image, review=request.POST.get("review", ""))
    except reviews.ReviewError as exc:
        return _answer(request, {"ok": False, "error": str(exc)}, status=400)
    return _answer(request, {"ok": True, "id": image.pk, "review": image.review, "starred": image.starred})


@login_required
@require_POST
def image_star(request: HttpRequest, image_id: int) -> HttpResponse:
    """starred=1|0 sets the star; without it the star is toggled."""
    image = get_image_for_user(request, image_id, change=True)
    value = request.POST.get("starred")
    starred = None if value in (None, "") else value in ("1", "true", "on", "yes")
    reviews.image_star(image=image, starred=starred)
    return _answer(request, {"ok": True, "id": image.pk, "review": image.review, "starred": image.starred})


@login_required
@require_POST
def images_bulk(request: HttpRequest) -> HttpResponse:
    """ids (repeated or comma-separated) + action=approve|reject|unreview|star|unstar; all or nothing."""
    try:
        ids = reviews.parse_ids(request.POST.getlist("ids"))
        changed = reviews.images_bulk_update(user=request.user, ids=ids, action=request.POST.get("action", ""))
    except reviews.ReviewError as exc:
        return _answer(request, {"ok": False, "error": str(exc)}, status=400)
    except PermissionDenied as exc:
        if wants_json(request):
            return JsonResponse({"ok": False, "error": str(exc)}, status=403)
        raise
    action = reviews.BULK_ACTIONS[request.POST["action"]]
    return _answer(request, {"ok": True, "ids": changed, "action": request.POST["action"], **action})


@login_required
@require_POST
def images_refinish(request: HttpRequest) -> HttpResponse:
    """ids + palette or colors: rebuild the selected images' sprites; all or nothing, like bulk."""
    try:
        ids = reviews.parse_ids(request.POST.getlist("ids"))
    except reviews.ReviewError as exc:
        return _answer(request, {"ok": False, "error": str(exc)}, status=400)
    values = RefinishForm(request.POST).finish_values()
    try:
        queued = finishing.images_refinish(user=request.user, ids=ids, finish=values)
    except finishing.FinishError as exc:
        return _answer(request, {"ok": False, "error": str(exc)}, status=400)
    except PermissionDenied as exc:
        if wants_json(request):
            return JsonResponse({"ok": False, "error": str(exc)}, status=403)
        raise
    settings = (f"palette {values['palette']}" if values.get("palette")
                else f"{values['colors']} colours" if values.get("colors") else "each job's own settings")
    return _answer(request, {"ok": True, "ids": ids, "queued": queued,
                             "message": f"Re-finishing {queued} sprite{'s' if queued != 1 else ''}: {settings}."})


def _zip_response(archive, filename: str) -> FileResponse:
    response = FileResponse(archive, as_attachment=True, filename=filename, content_type="application/zip")
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def images_zip(request: HttpRequest) -> HttpResponse:
    """A zip of the posted ids (a selection); anyone signed in may download what they can see."""
    try:
        ids = reviews.parse_ids(request.POST.getlist("ids"))
    except reviews.ReviewError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return _zip_response(*reviews.selection_zip(ids))


@login_required
@require_GET
def job_zip(request: HttpRequest, job_id: int) -> HttpResponse:
    """All of a job's images with their metadata; `?review=approved` for the approved set only."""
    job = get_job_for_user(request, job_id)
    return _zip_response(*reviews.job_zip(job, review=request.GET.get("review", "")))
