"""Comparison batches (issue 14): one submission across models, LoRAs and settings.

The axes' cartesian product gives the cells; each cell is a job with the same prompts and the same
seeds, so an axis value is the only difference between the cells' images. The cells' units are
written in the grid's order: cells that share a checkpoint together (one model load each), and
inside them the first prompt/seed across every cell before the second, so a half-done grid can
already be compared. Blind votes pick the best cell of one prompt/seed; tallies are per axis value.
"""
from __future__ import annotations

import difflib
import itertools
import random
from collections import defaultdict

from django.conf import settings
from django.db import IntegrityError, transaction

from batches.models import Comparison, Job, Vote
from batches.numbers import NumberError, parse_int
from batches.services.events import publish
from batches.services.submission import (
    SEED_SPACE,
    SubmissionError,
    announce_job,
    check_job,
    insert_units,
    plan_units,
    write_job,
)

AXES = ("checkpoint", "lora", "lora_strength", "cfg", "sampler", "steps", "suffix")
NUMERIC = {"lora_strength": float, "cfg": float, "steps": int}
NO_LORA = "none"
MAX_AXES = 3


def max_cells() -> int:
    return settings.COMPARISON_MAX_CELLS


# --- axes and cells ---------------------------------------------------------------------------

def parse_axes(specs) -> tuple[list[dict], list[str]]:
    """Axes from `AXIS=V1,V2` texts (the CLI) or {axis: [values]} / [(axis, values)] (form, API).

    Returns (axes, problems); every problem is listed, none stops the others being found.
    """
    pairs: list[tuple[str, list]] = []
    problems: list[str] = []
    if isinstance(specs, dict):
        specs = list(specs.items())
    for spec in specs or []:
        if isinstance(spec, str):
            axis, sep, text = spec.partition("=")
            if not sep:
                problems.append(f"{spec!r}: write AXIS=V1,V2 (axes: {', '.join(AXES)})")
                continue
            values = [v.strip() for v in text.split(",")]
        else:
            axis, values = spec
            values = [v.strip() if isinstance(v, str) else v for v in (values or [])]
        pairs.append((str(axis).strip().lower(), values))
    axes: list[dict] = []
    seen: set[str] = set()
    for axis, values in pairs:
        if axis not in AXES:
            close = difflib.get_close_matches(axis, AXES, n=1)
            problems.append(f"unknown axis {axis!r}" + (f"; did you mean {close[0]!r}?" if close else
                                                        f": use one of {', '.join(AXES)}"))
            continue
        if axis in seen:
            problems.append(f"axis {axis!r} given twice: list all its values once, as {axis}=a,b")
            continue
        seen.add(axis)
        typed = []
        for value in values:
            if value in ("", None):
                problems.append(f"{axis}: an empty value: write {axis}=a,b with no empty item")
                continue
            try:
                typed.append(_typed(axis, value))
            except ValueError as exc:
                problems.append(f"{axis}: {exc}")
        dupes = sorted({str(v) for v in typed if typed.count(v) > 1})
        if dupes:
            problems.append(f"{axis}: value {', '.join(dupes)} given twice: each value once")
        if len(typed) < 2 and not dupes:
            problems.append(f"{axis}: give at least two values to compare, as {axis}=a,b")
        axes.append({"axis": axis, "values": typed})
    if not axes and not problems:
        problems.append(f"give at least one axis, e.g. cfg=6,8 (axes: {', '.join(AXES)})")
    if len(axes) > MAX_AXES:
        problems.append(f"{len(axes)} axes; at most {MAX_AXES}: drop one")
    return axes, problems


def _typed(axis: str, value):
    if axis in NUMERIC:
        if NUMERIC[axis] is int:
            try:
                return parse_int(value)
            except NumberError:
                raise ValueError(f"{value!r} is not a whole number") from None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a number")
        return number
    text = str(value).strip()
    if axis == "lora" and text.lower() in (NO_LORA, "-", "no lora"):
        return NO_LORA
    return text


def cells_of(axes: list[dict]) -> list[dict]:
    """The cartesian product, the first axis varying slowest."""
    names = [a["axis"] for a in axes]
    return [dict(zip(names, combo)) for combo in itertools.product(*(a["values"] for a in axes))]


def label(cell: dict) -> str:
    return ", ".join(f"{axis}={'no LoRA' if value == NO_LORA else value}" for axis, value in cell.items())


def cell_params(params: dict, prompts: list[str], cell: dict) -> tuple[dict, list[str]]:
    """A cell's job parameters: the common ones with its axis values laid over them."""
    params = dict(params)
    for axis, value in cell.items():
        if axis == "checkpoint":
            params["checkpoint"] = value
        elif axis == "lora":
            params["lora"] = None if value == NO_LORA else value
            if value == NO_LORA:
                params.pop("lora_strength", None)
        elif axis == "lora_strength":
            params["lora_strength"] = value
        elif axis == "cfg":
            params["cfg"] = value
        elif axis == "steps":
            params["steps"] = value
        elif axis == "sampler":
            sampler, _, scheduler = str(value).partition("/")
            params["sampler"] = sampler
            if scheduler:
                params["scheduler"] = scheduler
        elif axis == "suffix":
            prompts = [f"{p}, {value}" for p in prompts]
    return params, prompts


# --- submitting -------------------------------------------------------------------------------

def comparison_submit(*, owner, axes, prompts, name: str = "", seed=None, client="default", wake: bool = True,
                      **params) -> Comparison:
    """Check every cell at once, then queue the grid. Raises SubmissionError listing every problem
    (field "compare" for the axes; a cell's problems prefixed with its label); nothing is written."""
    parsed, problems = parse_axes(axes)
    errors: dict[str, list[str]] = defaultdict(list)
    errors["compare"].extend(problems)
    cells = cells_of(parsed) if parsed and not problems else []
    if len(cells) > max_cells():
        errors["compare"].append(f"{len(cells)} cells; the limit is {max_cells()} (DGX_COMPARISON_MAX_CELLS): "
                                 "drop a value or an axis")
        cells = []
    if "lora_strength" in {a["axis"] for a in parsed} and not params.get("lora") and \
            "lora" not in {a["axis"] for a in parsed}:
        errors["compare"].append("lora_strength: compare strengths of a LoRA: give --lora NAME (or a lora axis)")
    if isinstance(prompts, str):
        prompts = [prompts]
    base_seed = seed if seed not in (None, "") else random.SystemRandom().randrange(SEED_SPACE // 2)
    checked = []
    per_cell: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for cell in cells:
        cell_args, cell_prompts = cell_params(params, list(prompts or []), cell)
        try:
            fields = check_job(owner=owner, prompts=cell_prompts, seed=base_seed, client=client,
                               name=f"{name or 'comparison'} [{label(cell)}]"[:200], **cell_args)
            checked.append((cell, fields))
        except SubmissionError as exc:
            for field, messages in exc.errors.items():
                for message in messages:
                    per_cell[field].append((label(cell), message))
    for field, found in per_cell.items():
        by_message: dict[str, list[str]] = defaultdict(list)
        for where, message in found:
            by_message[message].append(where)
        for message, wheres in by_message.items():
            every = len(wheres) == len(cells)
            errors[field].append(message if every else f"cells {'; '.join(wheres)}: {message}")
    if checked and not any(errors.values()):
        from batches.services.quotas import queue_quota_problem

        total = sum(f["count"] * len(f["prompts"]) for _, f in checked)
        if quota := queue_quota_problem(user=owner, adding=total):
            errors["count"].append(quota)
    errors = {k: v for k, v in errors.items() if v}
    if errors:
        raise SubmissionError(errors)
    comparison = _write(owner, name, parsed, base_seed, checked)
    for job in comparison.cells.all():
        announce_job(job)
    publish("comparison_queued", comparison=comparison.pk, cells=len(checked))
    if wake:
        from batches.tasks import wake_workers

        transaction.on_commit(wake_workers)
    return comparison


def _write(owner, name: str, axes: list[dict], base_seed: int, checked: list[tuple[dict, dict]]) -> Comparison:
    with transaction.atomic():
        comparison = Comparison.objects.create(owner=owner, name=name, axes=axes, base_seed=base_seed)
        jobs = [write_job({**fields, "comparison": comparison, "cell": cell}, with_units=False)
                for cell, fields in checked]
        insert_units(grid_order(jobs))
    return comparison


def grid_order(jobs: list[Job]) -> list[tuple[Job, dict]]:
    """The cells' units in the order the queue should run them (FIFO by insertion).

    Cells sharing a checkpoint run together (one model load per checkpoint); inside a group the
    first prompt/seed goes across every cell before the second.
    """
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.checkpoint, []).append(job)
    ordered = []
    for group in groups.values():
        planned = [(job, plan_units(job)) for job in group]
        for k in range(max(len(units) for _, units in planned)):
            for job, units in planned:
                if k < len(units):
                    ordered.append((job, units[k]))
    return ordered


# --- progress, cancel --------------------------------------------------------------------------

def progress(comparison: Comparison) -> dict:
    cells = list(comparison.cells.order_by("id"))
    return {
        "id": comparison.pk, "name": comparison.name, "axes": comparison.axes,
        "cells": [{"job": job.pk, "cell": job.cell, "status": job.status, "images_done": job.images_done,
                   "images_planned": job.images_planned} for job in cells],
        "images_done": sum(j.images_done for j in cells), "images_planned": sum(j.images_planned for j in cells),
        "done": all(j.status in Job.FINISHED for j in cells),
    }


def comparison_cancel(comparison: Comparison, *, by: str = "") -> int:
    """Cancel every cell still running; returns how many were cancelled."""
    from batches.services.control import job_cancel

    return sum(1 for job in comparison.cells.all() if job.status in Job.ACTIVE and job_cancel(job, by=by))


# --- blind judging -----------------------------------------------------------------------------

def slots(comparison: Comparison) -> list[dict]:
    """The grid's rows: one per prompt/seed (unit index), from the first cell's plan."""
    first = comparison.cells.order_by("id").first()
    if first is None:
        return []
    return [{"slot": u["index"], "prompt": u["prompt"], "seed": u["seed"]} for u in plan_units(first)]


def blind_order(comparison: Comparison, user, slot: int) -> list[Job]:
    """The cells of one slot in an order fixed per user and slot, and unrelated to the axes."""
    cells = list(comparison.cells.order_by("id"))
    random.Random(f"{comparison.pk}:{user.pk}:{slot}").shuffle(cells)
    return cells


def next_blind_slot(comparison: Comparison, user) -> int | None:
    voted = set(Vote.objects.filter(comparison=comparison, user=user).values_list("slot", flat=True))
    for row in slots(comparison):
        if row["slot"] not in voted:
            return row["slot"]
    return None


class VoteError(ValueError):
    """A vote that cannot count; says why."""


def vote(comparison: Comparison, *, user, slot: int, winner_id: int) -> Vote:
    """Record (or change) the user's pick for one prompt/seed."""
    if not comparison.cells.filter(pk=winner_id).exists():
        raise VoteError(f"job {winner_id} is not a cell of comparison {comparison.pk}")
    if slot not in {row["slot"] for row in slots(comparison)}:
        raise VoteError(f"comparison {comparison.pk} has no row {slot}")
    try:
        with transaction.atomic():
            ballot, _ = Vote.objects.update_or_create(comparison=comparison, user=user, slot=slot,
                                                      defaults={"winner_id": winner_id})
    except IntegrityError:  # two tabs voting at once: the other one's vote stands, then ours
        ballot = Vote.objects.get(comparison=comparison, user=user, slot=slot)
        Vote.objects.filter(pk=ballot.pk).update(winner_id=winner_id)
    return ballot


def tally(comparison: Comparison, *, user=None) -> list[dict]:
    """Per axis and value: wins, votes, win rate (a value is in every vote, as every cell is)."""
    votes = Vote.objects.filter(comparison=comparison).select_related("winner")
    if user is not None:
        votes = votes.filter(user=user)
    votes = list(votes)
    table = []
    for axis in comparison.axes:
        for value in axis["values"]:
            wins = sum(1 for v in votes if (v.winner.cell or {}).get(axis["axis"]) == value)
            table.append({"axis": axis["axis"], "value": value, "wins": wins, "votes": len(votes),
                          "rate": wins / len(votes) if votes else None,
                          "expected": 1 / len(axis["values"])})
    return table
