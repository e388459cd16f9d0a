"""The GPU worker: feeds one ComfyUI, one unit at a time, in priority order, and records results.

One `drain()` call is one django-q task. It first reconciles the units this node already had in
flight (after a crash, a restart or the previous drain), then claims and runs units until the
queue is empty, the queue is paused or its time budget is spent. It keeps ComfyUI one prompt
ahead: the next unit is submitted before the current one is downloaded and recorded, so the GPU
never waits on our bookkeeping.

Reconciling is the normal path, not a special case: a unit in flight is awaited by its prompt id;
if ComfyUI finished it meanwhile its history is adopted, if ComfyUI lost it (restart, deletion)
it is resubmitted under the same prompt id. Images are recorded idempotently (unique per unit
and batch index, files renamed into place), so nothing is lost and nothing is made twice.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F
from django.utils import timezone

from batches.comfyui import (
    ComfyUIClient,
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIInterrupted,
    ComfyUIPromptLost,
    ComfyUIRejected,
    ComfyUITimeout,
    ComfyUIUnreachable,
    EventStream,
)
from batches.models import Job, QueueControl, Unit, WorkerNode
from batches.services import auto_batch, previews, reclaim, recording, stopping
from batches.services.events import in_one_frame, publish
from batches.services.worker_disk import DiskGuard
from batches.services.worker_sizing import UnitSizing, preferred_pieces

log = logging.getLogger("batches.worker")

MAX_ATTEMPTS = 4  # ComfyUI lost the prompt or went away this many times: fail the unit
WAIT_SLICE = 0.25  # seconds between looks at the rows (cancel, pause, a more urgent job)
LOCATE_EVERY = 1.0  # ask /history and /queue after this long without a sign of the unit
BACKOFF_MAX = 10.0

_client_ids: dict[tuple[int, str], str] = {}


def process_client_id(node: str) -> str:
    """ComfyUI's client_id for this process: the node name plus a part no other process has.

    ComfyUI routes a prompt's /ws events to the socket of the client_id it was queued with; two
    installations (a test run and production, say) under one node name must not take each
    other's events. Kept for the life of the process, so a later drain still hears its units.
    """
    key = (os.getpid(), node)
    if key not in _client_ids:
        _client_ids[key] = f"dgxpixels-{node}-{uuid.uuid4().hex[:12]}"
    return _client_ids[key]


class _Stopping(Exception):
    """The cluster is stopping and the stop grace is spent: leave the unit in flight and return."""


class GpuWorker(UnitSizing, DiskGuard):
    def __init__(self, *, node: str, comfyui_url: str, time_budget: float = 600.0,
                 client: ComfyUIClient | None = None):
        self.node_name = node
        self.comfyui_url = comfyui_url
        self.time_budget = time_budget
        self.client = client or ComfyUIClient(comfyui_url, client_id=process_client_id(node))
        self.stream: EventStream | None = None
        self.node: WorkerNode | None = None
        self.inflight: deque[Unit] = deque()
        self.recorded = 0
        self._backoff = 0.5
        self._last_progress_write = 0.0
        self._last_reclaim = 0.0
        self.last_checkpoint = ""
        self._last_beat = 0.0
        self._last_vram = 0.0
        # (total, free for ComfyUI) bytes at the last look (auto_batch.Vram): recorded on every unit
        self._vram_seen: tuple[int, int] | None = None
        self.preferred = preferred_pieces(node)
        self._last_sign = 0.0
        self._previews = previews.PreviewThrottle()
        self._holding = False  # the disk guard holds: claim nothing new (services/disk_guard)
        self._last_disk_write = 0.0

    # --- the loop ------------------------------------------------------------------------------
    def drain(self) -> int:
        """Run units until there is nothing to do or the time budget is spent; return units recorded."""
        self.node = WorkerNode.register(name=self.node_name, comfyui_url=self.comfyui_url)
        deadline = time.monotonic() + self.time_budget
        self.inflight = deque(
            Unit.objects.select_related("job").filter(node=self.node_name, status__in=Unit.IN_FLIGHT)
            .order_by("submitted_at", "claimed_at", "id")
        )
        if self.inflight:
            log.info("%s: reconciling %d unit(s) in flight", self.node_name, len(self.inflight))
        try:
            while True:
                close_old_connections()
                if not self.inflight:
                    if self._no_more_claims(deadline):
                        if self._wait_for_disk(deadline):
                            continue
                        break
                    if not self._claim_and_submit():
                        break
                current = self.inflight[0]
                if len(self.inflight) < 2 and not self._no_more_claims(deadline):
                    with in_one_frame():
                        self._claim_and_submit()
                self._await(current)
        except _Stopping:
            log.warning("%s: stopping; %d unit(s) left in flight on ComfyUI, reconciled by prompt id "
                        "on the next start", self.node_name, len(self.inflight))
        finally:
            if self.stream is not None:
                self.stream.close()
            WorkerNode.objects.filter(pk=self.node.pk).update(current_unit=None)
        return self.recorded

    def _no_more_claims(self, deadline: float) -> bool:
        return (stopping.requested() or time.monotonic() > deadline or QueueControl.is_paused()
                or self._disk_holds())

    # --- claiming and submitting ---------------------------------------------------------------
    def _claim_and_submit(self) -> Unit | None:
        """Claim the next unit and hand it to ComfyUI; a unit it refuses fails and the next is tried."""
        self._reclaim_stale()
        while True:
            unit = self._claim_preferred() or Unit.claim_next(
                node=self.node_name, comfyui_url=self.comfyui_url, prefer_checkpoint=self.last_checkpoint,
                max_skips=settings.AFFINITY_MAX_SKIPS)
            if unit is None:
                return None
            if unit.job.mark_started():
                publish("job_started", job_id=unit.job_id, status=Job.Status.RUNNING)
            unit = self._size_unit(unit)
            try:
                graph = recording.build_graph(unit)
            except Exception as exc:  # a workflow edited after submission: fail this unit clearly
                self._fail(unit, f"cannot build the workflow: {exc}")
                continue
            unit.mark_submitted(graph)
            self.last_checkpoint = unit.checkpoint
            self.inflight.append(unit)
            if self._submit(unit):
                return unit
            # refused: _submit failed it and removed it

    def _submit(self, unit: Unit) -> bool:
        try:
            self._ensure_stream()
            self.client.submit(unit.graph, prompt_id=unit.prompt_id)
            publish("unit_submitted", job_id=unit.job_id, unit=unit.pk, index=unit.index, node=self.node_name)
            return True
        except ComfyUIRejected as exc:
            self._fail(unit, f"ComfyUI refused the workflow: {exc}",
                       {"error": exc.error, "node_errors": exc.node_errors})
            return False
        except ComfyUIUnreachable as exc:
            # It may or may not have been accepted; _await reconciles by prompt id.
            self._unreachable(exc)
            return True

    def _ensure_stream(self) -> None:
        if self.stream is None:
            self.stream = self.client.events()

    def _reclaim_stale(self) -> None:
        """Take over units of nodes that stopped beating, reconciling them with their ComfyUI."""
        now = time.monotonic()
        if now - self._last_reclaim < 2.0:
            return
        self._last_reclaim = now
        for unit in reclaim.stale_units(exclude_node=self.node_name):
            reclaim.reclaim_unit(unit, node=self.node_name)
        reclaim.close_jobs_left_open()

    # --- waiting on one unit -------------------------------------------------------------------
    def _await(self, unit: Unit) -> None:
        """Wait for `unit` to finish on ComfyUI and record it, watching the rows as it runs.

        The wait is cut into short slices so a cancel, a pause or a more urgent job is acted on
        within a fraction of a second. Between slices, when the unit has been silent for a while,
        the worker asks ComfyUI where it is, so a prompt ComfyUI lost (a restart) is resubmitted.
        """
        started = time.monotonic()
        self._last_sign = started  # the last event of this unit, or the last look at /queue
        WorkerNode.objects.filter(pk=self.node.pk).update(current_unit=unit)
        while True:
            if time.monotonic() - started > settings.UNIT_TIMEOUT:
                self._retry_or_fail(unit, f"ComfyUI did not finish within {settings.UNIT_TIMEOUT:.0f}s")
                return
            self._heartbeat()
            self._handle_cancel(unit)
            if unit not in self.inflight:
                return
            self._handle_stop()
            self._maybe_swap_ahead()
            try:
                self._ensure_stream()
                try:
                    entry = self.client.wait_for(
                        unit.prompt_id, timeout=WAIT_SLICE, stream=self.stream,
                        on_event=lambda event: self._on_event(unit, event), poll_interval=3600.0,
                        unreachable_grace=0.0,
                    )
                except ComfyUITimeout:
                    entry = self._locate_if_silent(unit)
                if entry is None:
                    continue
            except ComfyUIPromptLost as exc:
                self._prompt_lost(unit, exc)
                if unit not in self.inflight:
                    return
                continue
            except ComfyUIUnreachable as exc:
                self._unreachable(exc)
                self._sleep_backoff()
                continue
            self._comfy_back()
            with in_one_frame():
                self._finish(unit, entry)
            return

    def _locate_if_silent(self, unit: Unit):
        """After LOCATE_EVERY seconds without a sign of the unit, ask ComfyUI where it is.

        Returns its history entry when it is done; raises ComfyUIPromptLost when ComfyUI knows
        nothing of it; None while it is queued or running.
        """
        now = time.monotonic()
        if now - self._last_sign < LOCATE_EVERY:
            return None
        self._last_sign = now
        where = self.client.locate(unit.prompt_id)
        if where == "done":
            return self.client.history(unit.prompt_id)
        if where is None:
            raise ComfyUIPromptLost(unit.prompt_id)
        return None

    def _prompt_lost(self, unit: Unit, exc: Exception) -> None:
        if not self._comfy_back():
            self._reconcile_inflight(f"ComfyUI lost the prompt ({exc}); resubmitting")
        self._last_sign = time.monotonic()

    def _reconcile_inflight(self, why: str) -> None:
        """Ask ComfyUI about every unit in flight, in order, and resubmit the ones it lost.

        After a ComfyUI restart both the running unit and the one sent ahead are gone; resubmitting
        them together, oldest first, keeps them ahead of anything claimed later.
        """
        for unit in list(self.inflight):
            try:
                where = self.client.locate(unit.prompt_id)
            except ComfyUIUnreachable as exc:
                self._unreachable(exc)
                return
            if where is None:
                self._resubmit(unit, why)

    def _on_event(self, unit: Unit, event) -> None:
        self._last_sign = time.monotonic()
        if event.type == "execution_start":
            if unit.mark_running():
                publish("unit_started", job_id=unit.job_id, unit=unit.pk, index=unit.index,
                        node=self.node_name, prompt=unit.prompt, batch_size=unit.batch_size)
        elif event.type == "progress":
            value, maximum = int(event.data.get("value", 0)), int(event.data.get("max", 0))
            now = time.monotonic()
            # Throttled: a fast sampler must not turn into a database write per step.
            if value >= maximum or now - self._last_progress_write > 0.2:
                self._last_progress_write = now
                unit.mark_progress(value, maximum)
                publish("progress", job_id=unit.job_id, unit=unit.pk, index=unit.index,
                        value=value, max=maximum)
        elif event.type == "preview" and event.data.get("image"):
            # Throttled and never blocking: at most two a second, a small file replaced in place.
            if self._previews.take(unit.pk, time.monotonic()) and previews.store_preview(
                    unit_id=unit.pk, image=event.data["image"]):
                publish("preview", job_id=unit.job_id, unit=unit.pk, index=unit.index, node=self.node_name,
                        url=previews.preview_url(job_id=unit.job_id, unit_id=unit.pk, seq=self._previews.seq))

    def _finish(self, unit: Unit, entry) -> None:
        try:
            entry.raise_for_status()
        except ComfyUIInterrupted:
            unit.refresh_from_db(fields=["status"])
            job_status = Job.objects.filter(pk=unit.job_id).values_list("status", flat=True).first()
            if job_status == Job.Status.CANCELLED or unit.status == Unit.Status.CANCELLED:
                self._cancelled(unit)
            else:  # somebody else pressed ComfyUI's global interrupt: run it again
                self._resubmit(unit, "interrupted on ComfyUI by someone else; resubmitting")
            return
        except ComfyUIExecutionError as exc:
            if exc.is_out_of_memory and unit.batch_size > 1:
                self._drop(unit)
                recording.split_after_oom(unit, exc)
                return
            self._fail(unit, f"ComfyUI failed at node {exc.node_id} ({exc.node_type}): "
                             f"{exc.exception_type}: {exc.exception_message}",
                       {"node_id": exc.node_id, "node_type": exc.node_type,
                        "exception_type": exc.exception_type, "exception_message": exc.exception_message})
            return
        try:
            images = recording.record_unit(unit, entry, client=self.client, node=self.node_name)
        except recording.OutputError as exc:
            self._fail(unit, str(exc))
            return
        except ComfyUIUnreachable as exc:  # download failed: the unit stays in flight, try again
            self._unreachable(exc)
            self._sleep_backoff()
            return self._await(unit)
        self._drop(unit)
        self.recorded += 1
        WorkerNode.objects.filter(pk=self.node.pk).update(images_made=F("images_made") + len(images))
        self._close_job(unit)

    # --- row watching: cancel, pause, urgent work ----------------------------------------------
    def _handle_cancel(self, unit: Unit) -> bool:
        """Interrupt our running unit or delete our queued ones whose job was cancelled/stopped."""
        handled = False
        for other in list(self.inflight):
            status, owner = Unit.objects.filter(pk=other.pk).values_list("status", "node").first() or (None, None)
            if owner != self.node_name:
                # Another node took it over (we looked dead to it): stop caring, it reconciles.
                log.warning("%s: %s was reclaimed by %s", self.node_name, other, owner)
                self._drop(other)
                continue
            job_status = Job.objects.filter(pk=other.job_id).values_list("status", flat=True).first()
            if status != Unit.Status.CANCELLED and job_status != Job.Status.CANCELLED:
                continue
            handled = True
            if other is unit:
                try:
                    self.client.interrupt(other.prompt_id)
                    self.client.delete_pending([other.prompt_id])
                except ComfyUIError as exc:
                    log.warning("could not interrupt %s: %s", other.prompt_id, exc)
                    self._cancelled(other)
            else:
                try:
                    self.client.delete_pending([other.prompt_id])
                except ComfyUIError as exc:
                    log.warning("could not delete %s from ComfyUI's queue: %s", other.prompt_id, exc)
                self._cancelled(other)
        if QueueControl.is_paused() or self._holding:
            # Pause or the disk guard: the running unit finishes; the one sent ahead goes back to our queue.
            for other in list(self.inflight)[1:]:
                self._take_back(other, "queue paused" if not self._holding else "disk guard: " + self.node.hold_reason)
        return handled

    def _handle_stop(self) -> None:
        """On a stop request: take back the unit sent ahead; give the running one DGX_STOP_GRACE."""
        if not stopping.requested():
            return
        waited = stopping.seconds_since_noticed()
        if waited == 0.0:
            log.info("%s: stop requested; finishing the unit on the GPU (at most %.0fs)",
                     self.node_name, settings.STOP_GRACE)
        for other in list(self.inflight)[1:]:
            self._take_back(other, "the GPU worker is stopping")
        if waited >= settings.STOP_GRACE:
            raise _Stopping()

    def _maybe_swap_ahead(self) -> None:
        """A more urgent unit arrived while one was waiting in ComfyUI's queue: swap them."""
        if len(self.inflight) < 2:
            return
        ahead = self.inflight[1]
        more_urgent = Unit.objects.filter(status=Unit.Status.PENDING, priority__gt=ahead.priority).exclude(
            job__status=Job.Status.CANCELLED).exists()
        if more_urgent and self._take_back(ahead, "a more urgent job arrived"):
            self._claim_and_submit()

    def _take_back(self, unit: Unit, why: str) -> bool:
        """Delete a not-yet-started unit from ComfyUI's queue and return it to ours."""
        try:
            self.client.delete_pending([unit.prompt_id])
            state = self.client.queue()
        except ComfyUIError as exc:
            log.warning("could not take back %s: %s", unit.prompt_id, exc)
            return False
        if unit.prompt_id in state.running or unit.prompt_id in state.pending:
            return False  # it already started: let it run
        if self.client.history(unit.prompt_id) is not None:
            return False  # it already finished: record it normally
        Unit.objects.filter(pk=unit.pk).update(attempts=F("attempts") - 1)
        unit.release(why)
        self._drop(unit)
        if unit.job.batch_auto and unit.pk not in self.preferred:
            self.preferred.appendleft(unit.pk)  # a piece of an auto job keeps its place (no more urgent one waits)
        publish("unit_requeued", job_id=unit.job_id, unit=unit.pk, index=unit.index, reason=why)
        return True

    # --- outcomes ------------------------------------------------------------------------------
    def _drop(self, unit: Unit) -> None:
        previews.discard_preview(unit.pk)
        try:
            self.inflight.remove(unit)
        except ValueError:
            pass

    def _fail(self, unit: Unit, error: str, details: dict | None = None) -> None:
        log.warning("%s failed: %s", unit, error)
        unit.mark_failed(error, details)
        self._drop(unit)
        publish("unit_failed", job_id=unit.job_id, unit=unit.pk, index=unit.index, error=error,
                details=details or {})
        self._close_job(unit)

    def _cancelled(self, unit: Unit) -> None:
        unit.mark_cancelled()
        self._drop(unit)
        publish("unit_cancelled", job_id=unit.job_id, unit=unit.pk, index=unit.index)
        self._close_job(unit)

    def _resubmit(self, unit: Unit, why: str) -> None:
        attempts = Unit.objects.filter(pk=unit.pk).values_list("attempts", flat=True).first() or 0
        if attempts >= MAX_ATTEMPTS:
            self._fail(unit, f"gave up after {attempts} attempts; last error: {why}")
            return
        Unit.objects.filter(pk=unit.pk).update(attempts=F("attempts") + 1, error=why[:4000],
                                               status=Unit.Status.SUBMITTED, started_at=None)
        try:  # an old entry under the same prompt id would be taken for the new run's result
            self.client.delete_history([unit.prompt_id])
        except ComfyUIError:
            pass
        log.info("%s: %s", unit, why)
        publish("unit_resubmitted", job_id=unit.job_id, unit=unit.pk, index=unit.index, reason=why)
        if not self._submit(unit):
            return

    def _retry_or_fail(self, unit: Unit, why: str) -> None:
        try:
            self.client.interrupt(unit.prompt_id)
            self.client.delete_pending([unit.prompt_id])
        except ComfyUIError:
            pass
        self._fail(unit, why)

    def _close_job(self, unit: Unit) -> None:
        job = Job.objects.select_related("owner").get(pk=unit.job_id)
        job.refresh_counts()
        final = job.finish_if_complete()
        try:
            from batches.services.outputs import write_batch_info

            write_batch_info(job)
        except OSError as exc:
            log.warning("could not write batch_info.json for %s: %s", job, exc)
        if final:
            publish("job_finished", job_id=job.pk, status=final, images_done=job.images_done,
                    images_failed=job.images_failed, images_planned=job.images_planned)
        else:
            publish("job_progress", job_id=job.pk, images_done=job.images_done,
                    images_failed=job.images_failed, images_planned=job.images_planned)

    # --- ComfyUI health ------------------------------------------------------------------------
    def _unreachable(self, exc: Exception) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.node.mark_unreachable(str(exc)):
            log.warning("%s: ComfyUI at %s unreachable: %s", self.node_name, self.comfyui_url, exc)
            publish("comfyui_unreachable", job_id=self._current_job_id(), node=self.node_name,
                    url=self.comfyui_url, error=str(exc), since=self.node.unreachable_since.isoformat())

    def _comfy_back(self) -> bool:
        """ComfyUI answers: when it was away, say so and reconcile every unit in flight (True)."""
        self._backoff = 0.5
        if not self.node.comfyui_ok and self.node.mark_reachable():
            log.info("%s: ComfyUI at %s is back", self.node_name, self.comfyui_url)
            publish("comfyui_back", job_id=self._current_job_id(), node=self.node_name, url=self.comfyui_url)
            self._reconcile_inflight("ComfyUI came back without this prompt (it restarted); resubmitting")
            return True
        return False

    def _current_job_id(self) -> int | None:
        """The job whose page should hear about an outage (every page on the queue hears anyway)."""
        return self.inflight[0].job_id if self.inflight else None

    def _sleep_backoff(self) -> None:
        time.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _heartbeat(self) -> None:
        """Tell the other nodes we are alive and still own our units in flight (throttled)."""
        now = time.monotonic()
        if now - self._last_beat < 1.0:
            return
        self._last_beat = now
        self._disk_holds()  # a unit running when space runs out: the one sent ahead goes back
        fields = {}
        if now - self._last_vram > 10.0 and self.node.comfyui_ok:
            self._last_vram = now
            vram = auto_batch.read_vram(self.client)  # None when ComfyUI does not say
            if vram is not None:
                fields["vram_total"], fields["vram_free"] = vram.total, vram.free
                self._vram_seen = (vram.total, vram.for_comfyui)
        self.node.beat(**fields)
        ids = [u.pk for u in self.inflight]
        if ids:
            Unit.objects.filter(pk__in=ids, node=self.node_name).update(heartbeat_at=timezone.now())


def drain(*, node: str | None = None, comfyui_url: str | None = None, time_budget: float = 600.0) -> int:
    return GpuWorker(
        node=node or settings.GPU_NODE, comfyui_url=comfyui_url or settings.COMFYUI_URL,
        time_budget=time_budget,
    ).drain()
