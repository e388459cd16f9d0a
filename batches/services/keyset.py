"""Keyset pages, newest first, by id: the gallery's and the job history's paging, in one place.

No COUNT(*) and no OFFSET: an index on -id is walked from the cursor and stops after size + 1
rows, so page 500 costs what page 1 costs. `?before=<id>` is the next (older) page, `?after=<id>`
the previous (newer) one; past the newest rows the first page is shown, full and live.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from django.db.models import QuerySet


@dataclass
class Keyset:
    rows: list[Any]
    newer: int | None  # link ?after=<id> to the page before this one (newer rows)
    older: int | None  # link ?before=<id> to the page after this one (older rows)


def keyset_page(rows: QuerySet, *, before: int | None, after: int | None, size: int,
                fetch: Callable[[QuerySet], QuerySet] = lambda qs: qs,
                pk: Callable[[Any], int] = lambda row: row.pk) -> Keyset:
    """One page of `rows` (a filtered queryset), newest first. `fetch` shapes what is read (e.g.
    `.values(...)`); `pk` reads a fetched row's id."""
    if after is not None:
        upward = list(fetch(rows.filter(id__gt=after).order_by("id"))[: size + 1])
        if len(upward) > size:
            page = upward[:size][::-1]
            older = pk(page[-1]) if rows.filter(id__lt=pk(page[-1])).exists() else None
            return Keyset(page, newer=pk(page[0]), older=older)
        before = None  # reached the newest rows: show the first page
    start = rows if before is None else rows.filter(id__lt=before)
    found = list(fetch(start.order_by("-id"))[: size + 1])
    older = pk(found[size - 1]) if len(found) > size else None
    page = found[:size]
    newer = None
    if before is not None and page and rows.filter(id__gt=pk(page[0])).exists():
        newer = pk(page[0])
    elif before is not None and not page:
        newer = before  # past the end: offer the way back
    return Keyset(page, newer=newer, older=older)
