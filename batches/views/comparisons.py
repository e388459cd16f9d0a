"""A comparison's pages: the grid (live), its exports, cancelling, and blind judging (issue 14).

Any signed-in user may look at a comparison and judge it; cancelling needs its owner or staff.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from batches.models import Comparison
from batches.numbers import NumberError, parse_id
from batches.services import comparison_grid as grids
from batches.services import comparisons
from batches.views.access import _id_or_404, can_change
from batches.views.queue import latest_event_id
from batches.views.responses import action_done, wants_json


def get_comparison_for_user(request: HttpRequest, comparison_id, *, change: bool = False) -> Comparison:
    comparison = get_object_or_404(Comparison.objects.select_related("owner"), pk=_id_or_404(comparison_id))
    if change and not can_change(request.user, comparison):
        raise PermissionDenied("only the comparison's owner or staff may change it")
    return comparison


def _grid_context(request: HttpRequest, comparison: Comparison) -> dict:
    table = grids.grid(comparison, rows=request.GET.get("rows") or None, cols=request.GET.get("cols") or None)
    for job in table["jobs"]:
        job.user_can_change = can_change(request.user, job)
    return {"comparison": comparison, "grid": table, "progress": comparisons.progress(comparison)}


@login_required
@require_safe
def comparison_detail(request: HttpRequest, comparison_id: int) -> HttpResponse:
    """The grid; `?rows=slot&cols=cfg` choose its rows and columns, `?partial=grid` is the live part."""
    comparison = get_comparison_for_user(request, comparison_id)
    try:
        ctx = _grid_context(request, comparison)
    except grids.GridError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    if request.GET.get("partial") == "grid":
        return render(request, "batches/_comparison_grid.html", ctx)
    ctx.update(legend=grids.legend(comparison), since=latest_event_id(),
               user_can_change=can_change(request.user, comparison),
               next_slot=comparisons.next_blind_slot(comparison, request.user))
    return render(request, "batches/comparison_detail.html", ctx)


@login_required
@require_safe
def comparison_png(request: HttpRequest, comparison_id: int) -> HttpResponse:
    """The grid as one labelled PNG (`?sprites=1` draws the sprites where they exist)."""
    comparison = get_comparison_for_user(request, comparison_id)
    try:
        data = grids.grid_png(comparison, rows=request.GET.get("rows") or None, cols=request.GET.get("cols") or None,
                              sprites=request.GET.get("sprites") == "1")
    except grids.GridError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    response = HttpResponse(data, content_type="image/png")
    response["Content-Disposition"] = f'attachment; filename="comparison_{comparison.pk}_grid.png"'
    return response


@login_required
@require_safe
def comparison_zip(request: HttpRequest, comparison_id: int) -> HttpResponse:
    archive, filename = grids.cells_zip(get_comparison_for_user(request, comparison_id))
    response = FileResponse(archive, as_attachment=True, filename=filename, content_type="application/zip")
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def comparison_cancel(request: HttpRequest, comparison_id: int) -> HttpResponse:
    comparison = get_comparison_for_user(request, comparison_id, change=True)
    n = comparisons.comparison_cancel(comparison, by=request.user.get_username())
    default = reverse("comparison-detail", args=[comparison.pk])
    if n:
        return action_done(request, f"Comparison {comparison.pk}: {n} cell{'s' if n != 1 else ''} cancelled.",
                           default=default)
    return action_done(request, f"Comparison {comparison.pk} had already finished.", default=default, ok=False)


@login_required
@require_safe
def comparison_judge(request: HttpRequest, comparison_id: int) -> HttpResponse:
    """Blind judging: one prompt/seed at a time (`?slot=N` to judge one again); the results, and
    with `?reveal=1` which cell was which."""
    comparison = get_comparison_for_user(request, comparison_id)
    slot = request.GET.get("slot", "")
    try:
        slot = parse_id(slot, what="a row", minimum=0) if slot else comparisons.next_blind_slot(comparison, request.user)
    except NumberError as exc:
        return HttpResponseBadRequest(f"slot: {exc}", content_type="text/plain")
    try:
        round_ = grids.judge_round(comparison, request.user, slot) if slot is not None else None
    except grids.GridError as exc:
        return HttpResponse(str(exc), status=404, content_type="text/plain")
    reveal = request.GET.get("reveal") == "1"
    rows = comparisons.slots(comparison)
    picks = grids.my_picks(comparison, request.user)
    ctx = {"comparison": comparison, "round": round_, "reveal": reveal, "slots_total": len(rows),
           "judged": len(picks), "picks": picks, "since": latest_event_id(),
           "mine": comparisons.tally(comparison, user=request.user), "team": comparisons.tally(comparison),
           "show_results": round_ is None or reveal}
    return render(request, "batches/comparison_judge.html", ctx)


@login_required
@require_POST
def comparison_vote(request: HttpRequest, comparison_id: int) -> HttpResponse:
    comparison = get_comparison_for_user(request, comparison_id)
    try:
        slot = parse_id(request.POST.get("slot", ""), what="a row", minimum=0)
        winner = parse_id(request.POST.get("winner", ""), what="a winner (job id)")
        comparisons.vote(comparison, user=request.user, slot=slot, winner_id=winner)
    except (NumberError, comparisons.VoteError) as exc:
        if wants_json(request):
            return JsonResponse({"ok": False, "message": str(exc)}, status=400)
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    following = comparisons.next_blind_slot(comparison, request.user)
    target = reverse("comparison-judge", args=[comparison.pk])
    if wants_json(request):
        return JsonResponse({"ok": True, "next": following, "redirect": target})
    return redirect(target)
