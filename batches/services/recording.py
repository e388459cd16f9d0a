"""Turning a unit into a ComfyUI graph, and a finished ComfyUI prompt into images on disk and rows."""
from __future__ import annotations

import logging
import os

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from batches.models import Image, Unit
from batches.services import finishing, outputs
from batches.services.events import publish

log = logging.getLogger("batches.recording")


class OutputError(Exception):
    """Writing the output failed in a way only a person can fix (permissions, full disk)."""


def comfy_prefix(unit: Unit) -> str:
    # Not job-specific on purpose: the same parameters and seed then give the same graph, so a
    # rerun reproduces the PNG byte for byte (its embedded "prompt" chunk included), and ComfyUI
    # may answer it from its cache without spending GPU time.
    return "dgxpixels/sprite"


def generation_params(unit: Unit) -> dict:
    job = unit.job
    return {
        "positive": unit.prompt,
        "negative": job.negative_prompt or None,
        "seed": unit.seed,
        "steps": job.steps,
        "cfg": job.cfg,
        "sampler": job.sampler,
        "scheduler": job.scheduler,
        # 1.0 is "no override": KSamplerAdvanced has no denoise input at all.
        "denoise": job.denoise if job.denoise != 1.0 else None,
        "width": job.width,
        "height": job.height,
        "batch_size": unit.batch_size,
        "checkpoint": job.checkpoint or None,
        "lora": job.lora or None,
        "lora_strength_model": job.lora_strength_model if job.lora else None,
        "lora_strength_clip": job.lora_strength_clip if job.lora else None,
        "filename_prefix": comfy_prefix(unit),
    }


def build_graph(unit: Unit) -> dict:
    from batches.workflows import inject, load_workflow

    workflow = load_workflow(unit.job.workflow)
    return inject(workflow.graph, generation_params(unit), source=workflow.source)


def _unit_seconds(unit: Unit, entry) -> float:
    """Execution time from ComfyUI's own timestamps (ms), else from our clock."""
    start = end = None
    for message in getattr(entry, "messages", None) or []:
        if not isinstance(message, (list, tuple)) or len(message) != 2:
            continue
        kind, data = message
        if kind == "execution_start":
            start = data.get("timestamp")
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
    if start and end and end >= start:
        return (end - start) / 1000.0
    if unit.started_at:
        return max((timezone.now() - unit.started_at).total_seconds(), 0.0)
    return 0.0


def image_metadata(unit: Unit, *, sequence: int, batch_index: int, width: int, height: int,
                   generation_time: float, node: str, comfyui_url: str) -> dict:
    """Everything needed to reproduce one image, the injected workflow included."""
    job = unit.job
    return {
        **outputs.job_parameters(job),
        "filename": outputs.image_name(sequence, unit.seed),
        "sequence": sequence,
        "job_id": job.pk,
        "batch_id": job.output_dir,
        "unit_index": unit.index,
        "prompt": unit.prompt,
        "seed": unit.seed,
        "batch_size": unit.batch_size,
        "batch_index": batch_index,
        "downgraded_from_batch_size": unit.downgraded_from,
        # The batch size it ran at ("auto" picks it per unit) and the free VRAM ComfyUI reported then.
        "batch_auto": job.batch_auto,
        "batch_size_chosen": unit.batch_size_chosen or unit.batch_size,
        "vram_free_gb": round(unit.vram_free / 1024**3, 1) if unit.vram_free is not None else None,
        "width": width,
        "height": height,
        "profile": job.profile,
        "priority": job.priority_name,
        "workflow_file": job.workflow,
        "workflow": unit.graph,
        "comfyui_prompt_id": unit.prompt_id,
        "comfyui_url": comfyui_url,
        "node": node,
        "comparison": {"id": job.comparison_id, "cell": job.cell} if job.comparison_id else None,
        "generation_time_s": generation_time,
        "created_at": timezone.now().isoformat(),
    }


def _maybe_crash(point: str) -> None:
    """Fault injection for the crash tests: DGX_FAULT=<point>:<marker file> dies once at <point>."""
    fault = settings.FAULT
    if not fault.startswith(point + ":"):
        return
    marker = fault.split(":", 1)[1]
    if not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(point)
        os._exit(137)


def _on_disk(relative: str) -> bool:
    try:
        return outputs.resolve(relative).is_file()
    except outputs.OutsideOutputRoot:
        return False  # rewritten below, where the write side refuses the link with a clear error


def record_unit(unit: Unit, entry, *, client, node: str) -> list[Image]:
    """Download the unit's images, write them (image, thumbnail, metadata), record rows, mark done.

    Idempotent: running it again after a crash rewrites the same files under the same names and
    finds the rows already there.
    """
    refs = list(entry.images)
    if len(refs) < unit.batch_size:
        log.warning("%s: ComfyUI returned %d image(s) for a batch of %d", unit, len(refs), unit.batch_size)
    total_seconds = _unit_seconds(unit, entry)
    per_image = total_seconds / max(len(refs), 1)
    folder = outputs.job_dir(unit.job)
    recorded: list[Image] = []
    for batch_index, ref in enumerate(refs[: unit.batch_size]):
        sequence = unit.first_sequence + batch_index
        existing = Image.objects.filter(unit=unit, batch_index=batch_index).first()
        if existing is not None and _on_disk(existing.file_path):
            recorded.append(existing)
            continue
        png = client.download(ref)
        try:
            thumb, width, height = outputs.make_thumbnail(png)
        except Exception as exc:
            raise OutputError(f"ComfyUI sent an image that is not a readable PNG ({ref.filename}): {exc}") from exc
        meta = image_metadata(unit, sequence=sequence, batch_index=batch_index, width=width, height=height,
                              generation_time=per_image, node=node, comfyui_url=unit.comfyui_url)
        image_path = folder / "images" / outputs.image_name(sequence, unit.seed)
        thumb_path = folder / "thumbs" / outputs.image_name(sequence, unit.seed)
        meta_path = folder / "metadata" / outputs.metadata_name(sequence)
        try:
            outputs.atomic_write(image_path, png)
            outputs.atomic_write(thumb_path, thumb)
            outputs.atomic_write_json(meta_path, meta)
        except outputs.OutputWriteError as exc:
            raise OutputError(str(exc)) from exc
        _maybe_crash("exit-after-download")
        try:
            with transaction.atomic():
                image, created = Image.objects.get_or_create(
                    unit=unit, batch_index=batch_index,
                    defaults=dict(
                        job_id=unit.job_id, sequence=sequence, prompt=unit.prompt, seed=unit.seed,
                        file_path=outputs.relative(image_path), thumb_path=outputs.relative(thumb_path),
                        metadata_path=outputs.relative(meta_path), width=width, height=height,
                        file_size=len(png), generation_time=per_image, node=node,
                        metadata={k: v for k, v in meta.items() if k != "workflow"},
                        sprite_state=finishing.initial_state(unit.job),
                    ),
                )
        except IntegrityError:  # another node recorded it first
            image, created = Image.objects.get(unit=unit, batch_index=batch_index), False
        recorded.append(image)
        if created:
            publish("image_saved", job_id=unit.job_id, image=image.pk, sequence=sequence, seed=unit.seed,
                    unit=unit.pk, width=width, height=height, prompt=unit.prompt)
    unit.mark_done()
    publish("unit_done", job_id=unit.job_id, unit=unit.pk, index=unit.index, images=len(recorded),
            seconds=round(total_seconds, 3))
    return recorded


def split_after_oom(unit: Unit, exc) -> list[Unit]:
    """ComfyUI ran out of memory: rerun the unit's images at the next smaller batch size (8->4->1)."""
    smaller = {8: 4, 4: 1, 2: 1, 3: 1, 5: 4, 6: 4, 7: 4}.get(unit.batch_size, 1)
    pieces = split_unit(unit, smaller, downgraded=True, note=(
        f"out of memory at batch size {unit.batch_size}; split into {{pieces}} unit(s) of "
        f"{smaller}: {exc.exception_message}"))
    publish("unit_downgraded", job_id=unit.job_id, unit=unit.pk, index=unit.index,
            from_batch_size=unit.batch_size, to_batch_size=smaller, pieces=len(pieces))
    return pieces


def split_unit(unit: Unit, size: int, *, note: str, downgraded: bool = False,
               claim_first: dict | None = None) -> list[Unit]:
    """Hand a unit's images to new units of at most `size` images (new indexes, the same seeds
    and sequence numbers); the unit itself becomes SPLIT with `note` ({pieces} is filled in).

    `downgraded`: an out-of-memory split, recorded in the pieces' downgraded_from. `claim_first`:
    the first piece is written already claimed with these fields (status, node, ...), so no other
    node can take it between the split and the claim; the others are pending.
    """
    with transaction.atomic():
        last_index = Unit.objects.filter(job_id=unit.job_id).order_by("-index").values_list("index", flat=True).first()
        pieces: list[Unit] = []
        offset = 0
        next_index = (last_index or 0) + 1
        while offset < unit.batch_size:
            piece_size = min(size, unit.batch_size - offset)
            pieces.append(Unit(
                job_id=unit.job_id, index=next_index, prompt_index=unit.prompt_index, prompt=unit.prompt,
                seed=unit.seed + offset, batch_size=piece_size, first_sequence=unit.first_sequence + offset,
                priority=unit.priority, checkpoint=unit.checkpoint,
                downgraded_from=(unit.downgraded_from or unit.batch_size) if downgraded else unit.downgraded_from,
                **(claim_first if claim_first and not pieces else {}),
            ))
            offset += piece_size
            next_index += 1
        Unit.objects.bulk_create(pieces)
        # The original unit hands its images over to the pieces; it made none itself.
        Unit.objects.filter(pk=unit.pk).update(
            status=Unit.Status.SPLIT, finished_at=timezone.now(),
            error=note.replace("{pieces}", str(len(pieces)))[:4000],
        )
    # bulk_create sets primary keys on PostgreSQL and recent SQLite only: read them back.
    by_index = {u.index: u for u in Unit.objects.select_related("job").filter(
        job_id=unit.job_id, index__in=[p.index for p in pieces])}
    return [by_index[p.index] for p in pieces]
