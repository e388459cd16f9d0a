"""An image's files through the API, with the token's ownership rule.

The same helpers as the dashboard's image views (batches.views.images): files are opened only
through services.outputs.open_output, which refuses anything leading outside OUTPUT_ROOT (a
symlink swapped in included); a missing file is a 404 in the API's error shape.
"""
from __future__ import annotations

from pathlib import Path

from django.http import Http404, JsonResponse
from ninja import Router

from batches.http_api import schemas
from batches.http_api.lookup import image_for
from batches.services.job_requests import image_document, public_base_url
from batches.services.outputs import job_dir_name
from batches.views.images import _download, _file, download_name

router = Router(tags=["images"])
E = schemas.ERRORS
PNG = {200: {"description": "The PNG file.", "content": {"image/png": {"schema": {"type": "string",
                                                                                     "format": "binary"}}}}}


@router.get("/{int:image_id}/", response={200: schemas.ImageDocument, **E}, summary="One image")
def get_image(request, image_id: int):
    return image_document(image_for(request, image_id), base_url=public_base_url())


@router.get("/{int:image_id}/png", response=E, openapi_extra={"responses": PNG}, summary="The image's PNG")
def image_png(request, image_id: int):
    """`?download=1` sends it as an attachment."""
    image = image_for(request, image_id)
    return _file(image.file_path, "image/png", download=_download(request),
                 filename=download_name(image, Path(image.file_path).name))


@router.get("/{int:image_id}/thumb.png", response=E, openapi_extra={"responses": PNG},
            summary="The image's thumbnail")
def image_thumb(request, image_id: int):
    image = image_for(request, image_id)
    if image.thumb_path:
        try:
            return _file(image.thumb_path, "image/png")
        except Http404:  # a lost thumbnail: the full image still answers
            pass
    return _file(image.file_path, "image/png")


@router.get("/{int:image_id}/sprite.png", response=E, openapi_extra={"responses": PNG},
            summary="The image's finished sprite")
def image_sprite(request, image_id: int):
    """404 until the sprite exists (`sprite_state` on the image says how far it is)."""
    image = image_for(request, image_id)
    if not image.sprite_path:
        raise Http404(f"image {image_id} has no sprite yet (sprite_state: {image.sprite_state or 'none'})")
    folder = image.job.output_dir or job_dir_name(image.job)
    return _file(image.sprite_path, "image/png", download=_download(request),
                 filename=f"{folder}_{Path(image.sprite_path).name}")


@router.get("/{int:image_id}/metadata", response=E, openapi_extra={"responses": {200: {
    "description": "The metadata JSON written next to the image.",
    "content": {"application/json": {"schema": {"type": "object"}}}}}}, summary="The image's metadata")
def image_metadata(request, image_id: int):
    """The JSON file as written next to the image; the stored copy when the file is gone."""
    image = image_for(request, image_id)
    if image.metadata_path:
        try:
            return _file(image.metadata_path, "application/json", download=_download(request),
                         filename=download_name(image, Path(image.metadata_path).name))
        except Http404:
            if not image.metadata:
                raise
    if not image.metadata:
        raise Http404(f"image {image_id} has no metadata")
    return JsonResponse(image.metadata)
