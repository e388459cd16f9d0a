"""Page-numbered lists: `?page=N&page_size=M` (M up to 200, default 50), newest first.

Why numbered pages and not the gallery's keyset cursor: scripts want "how many" (`count`) and to
fetch page N directly; job and image lists of one user stay small enough that COUNT and OFFSET
are cheap. `next` and `previous` are ready-made links (null at either end).
"""
from __future__ import annotations

from urllib.parse import urlencode

from django.db.models import QuerySet
from ninja import Schema
from pydantic import Field

from batches.services.job_requests import public_base_url

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class PageParams(Schema):
    page: int = Field(1, ge=1, le=1_000_000, description="1-based page number.")
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Items per page, up to 200.")


def _link(request, page: int) -> str:
    query = request.GET.copy()
    query["page"] = str(page)
    return f"{public_base_url()}{request.path}?{urlencode(sorted(query.items()))}"


def paginate(request, rows: QuerySet, params: PageParams, document) -> dict:
    """One page of `rows` (ordered), each row made into its document by `document(row)`."""
    count = rows.count()
    start = (params.page - 1) * params.page_size
    items = [document(row) for row in rows[start:start + params.page_size]] if start < count else []
    return {
        "items": items, "count": count, "page": params.page, "page_size": params.page_size,
        "next": _link(request, params.page + 1) if start + params.page_size < count else None,
        "previous": _link(request, min(params.page - 1, max(1, -(-count // params.page_size))))
        if params.page > 1 else None,
    }

