"""Comparisons queued through POST /jobs/ with `compare`: their progress, and cancelling them."""
from __future__ import annotations

from ninja import Router

from batches.http_api import schemas
from batches.http_api.lookup import comparison_for
from batches.services.comparisons import comparison_cancel, progress

router = Router(tags=["comparisons"])
E = schemas.ERRORS


def _doc(comparison) -> dict:
    return {**progress(comparison), "kind": "comparison"}


@router.get("/{int:comparison_id}/", response={200: schemas.ComparisonDocument, **E},
            summary="A comparison's progress")
def get_comparison(request, comparison_id: int):
    return _doc(comparison_for(request, comparison_id))


@router.post("/{int:comparison_id}/cancel/", response={200: schemas.ComparisonDocument, **E},
             summary="Cancel every cell still running")
def cancel(request, comparison_id: int):
    comparison = comparison_for(request, comparison_id)
    cancelled = comparison_cancel(comparison, by=f"{request.user.get_username()} (API)")
    return {**_doc(comparison), "cells_cancelled": cancelled}
