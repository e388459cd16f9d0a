"""Generated images, served to signed-in users by the image's id (never a path in the URL)."""
from __future__ import annotations

from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from batches.services.outputs import job_dir_name, open_output
from batches.views.access import get_image_for_user

# The files never change once written (written atomically, named by sequence and seed).
CACHE_CONTROL = "private, max-age=86400"


def _file(relative: str, content_type: str, *, download: bool = False, filename: str = "") -> FileResponse:
    if not relative:
        raise Http404("no such file")
    try:
        handle = open_output(relative)
    except (OSError, ValueError):  # missing, not a regular file, or a link leading outside OUTPUT_ROOT
        raise Http404("the file is missing from the output folder") from None
    response = FileResponse(handle, content_type=content_type, as_attachment=download,
                            filename=filename or Path(relative).name)
    response["Cache-Control"] = CACHE_CONTROL
    return response


def download_name(image, name: str) -> str:
    """`job<id>_sprite_0007_<seed>.png`: files from many jobs share one Downloads folder, and a
    bare `sprite_0007_<seed>.png` from one job would overwrite another's."""
    return f"job{image.job_id}_{name}"


def _download(request: HttpRequest) -> bool:
    return request.GET.get("download") in ("1", "true", "yes")


# --- one response per kind of file: the dashboard's views below and the HTTP API's use them -------

def png_response(request: HttpRequest, image) -> FileResponse:
    """The full PNG; `?download=1` sends it as an attachment."""
    return _file(image.file_path, "image/png", download=_download(request),
                 filename=download_name(image, Path(image.file_path).name))


def thumb_response(image) -> FileResponse:
    if image.thumb_path:
        try:
            return _file(image.thumb_path, "image/png")
        except Http404:  # a thumbnail lost or never written: the full image still shows
            pass
    return _file(image.file_path, "image/png")


def sprite_response(request: HttpRequest, image) -> FileResponse:
    """The finished sprite (404 until one exists); `?download=1` names it after its job's folder."""
    if not image.sprite_path:
        raise Http404(f"image {image.pk} has no sprite yet (sprite state: {image.sprite_state or 'none'})")
    folder = image.job.output_dir or job_dir_name(image.job)
    return _file(image.sprite_path, "image/png", download=_download(request),
                 filename=f"{folder}_{Path(image.sprite_path).name}")


def metadata_response(request: HttpRequest, image) -> HttpResponse:
    """The metadata JSON as written next to the image; the stored copy if the file is gone."""
    if image.metadata_path:
        try:
            return _file(image.metadata_path, "application/json", download=_download(request),
                         filename=download_name(image, Path(image.metadata_path).name))
        except Http404:
            if not image.metadata:
                raise
    if not image.metadata:
        raise Http404(f"image {image.pk} has no metadata")
    response = JsonResponse(image.metadata, json_dumps_params={"indent": 2})
    if _download(request):
        response["Content-Disposition"] = f'attachment; filename="{download_name(image, f"sprite_{image.sequence:04d}.json")}"'
    return response


@login_required
@require_safe
def image_file(request: HttpRequest, image_id: int) -> HttpResponse:
    return png_response(request, get_image_for_user(request, image_id))


@login_required
@require_safe
def image_thumb(request: HttpRequest, image_id: int) -> HttpResponse:
    return thumb_response(get_image_for_user(request, image_id))


@login_required
@require_safe
def image_sprite(request: HttpRequest, image_id: int) -> HttpResponse:
    """Pages add `?v=<sprite run>`: a re-finish replaces the file under the same name, and the
    cached copy of the previous run must not be shown."""
    return sprite_response(request, get_image_for_user(request, image_id))


@login_required
@require_safe
def image_metadata(request: HttpRequest, image_id: int) -> HttpResponse:
    return metadata_response(request, get_image_for_user(request, image_id))
