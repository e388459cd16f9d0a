"""An image's files through the API, with the token's ownership rule.

The same helpers as the dashboard's image views (batches.views.images): files are opened only
through services.outputs.open_output, which refuses anything leading outside OUTPUT_ROOT (a
symlink swapped in included); a missing file is a 404 in the API's error shape.
"""
from __future__ import annotations

from ninja import Router

from batches.http_api import schemas
from batches.http_api.lookup import image_for
from batches.services.job_requests import image_document, public_base_url
from batches.views.images import metadata_response, png_response, sprite_response, thumb_response

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
    return png_response(request, image_for(request, image_id))


@router.get("/{int:image_id}/thumb.png", response=E, openapi_extra={"responses": PNG},
            summary="The image's thumbnail")
def image_thumb(request, image_id: int):
    return thumb_response(image_for(request, image_id))


@router.get("/{int:image_id}/sprite.png", response=E, openapi_extra={"responses": PNG},
            summary="The image's finished sprite")
def image_sprite(request, image_id: int):
    """404 until the sprite exists (`sprite_state` on the image says how far it is)."""
    return sprite_response(request, image_for(request, image_id))


@router.get("/{int:image_id}/metadata", response=E, openapi_extra={"responses": {200: {
    "description": "The metadata JSON written next to the image.",
    "content": {"application/json": {"schema": {"type": "object"}}}}}}, summary="The image's metadata")
def image_metadata(request, image_id: int):
    """The JSON file as written next to the image; the stored copy when the file is gone."""
    return metadata_response(request, image_for(request, image_id))
