"""Jobs and their work units: the queue itself."""
from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Count, F, Sum
from django.utils import timezone


class Priority(models.IntegerChoices):
    URGENT = 40, "urgent"
    HIGH = 30, "high"
    NORMAL = 20, "normal"
    LOW = 10, "low"

    @classmethod
    def from_name(cls, name: str) -> "Priority":
        for member in cls:
            if member.label == str(name).strip().lower():
                return member
        raise ValueError(name)


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        PARTIAL = "partial"  # finished, some units failed
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.COMPLETED, Status.PARTIAL, Status.FAILED, Status.CANCELLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200, blank=True)
    prompts = models.JSONField(help_text="List of prompt texts.")
    count = models.PositiveIntegerField(help_text="Images per prompt.")
    negative_prompt = models.TextField(blank=True)
    profile = models.CharField(max_length=50)
    workflow = models.CharField(max_length=200)
    checkpoint = models.CharField(max_length=255, blank=True)
    lora = models.CharField(max_length=255, blank=True)
    lora_strength_model = models.FloatField(default=1.0)
    lora_strength_clip = models.FloatField(default=1.0)
    steps = models.PositiveIntegerField()
    cfg = models.FloatField()
    sampler = models.CharField(max_length=64)
    scheduler = models.CharField(max_length=64)
    denoise = models.FloatField(default=1.0)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    batch_size = models.PositiveSmallIntegerField()
    # Batch size "auto": units are planned at the largest size (batch_size) and each is cut down at
    # its unit boundary to what the GPU's free VRAM allows (services/auto_batch.py).
    batch_auto = models.BooleanField(default=False)
    base_seed = models.BigIntegerField(null=True, blank=True, help_text="Empty: random seeds.")
    priority = models.IntegerField(choices=Priority.choices, default=Priority.NORMAL)
    requeued_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    images_planned = models.PositiveIntegerField(default=0)
    images_done = models.PositiveIntegerField(default=0)
    images_failed = models.PositiveIntegerField(default=0)
    output_dir = models.CharField(max_length=255, blank=True, help_text="Relative to OUTPUT_ROOT.")
    # Finishing (services/finishing): the settings each new image is turned into a sprite with
    # (null: no sprites), and the palette locked for the whole job when they ask for one.
    finish = models.JSONField(null=True, blank=True)
    finish_palette = models.JSONField(null=True, blank=True, help_text="#rrggbb colours shared by every sprite.")
    # How its frames play as an animation (services/sheets): {"fps": 10, "loop": "loop"|"pingpong"|"once"}.
    animation = models.JSONField(null=True, blank=True)
    # A cell of a comparison: the comparison and this cell's axis values ({"cfg": 8, ...}).
    comparison = models.ForeignKey("batches.Comparison", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="cells")
    cell = models.JSONField(null=True, blank=True)
    # Told when the job ends (services/webhooks), besides the owner's standing webhooks.
    webhook_url = models.URLField(max_length=500, blank=True)
    error = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-priority", "id"], name="job_queue_order"),
            models.Index(fields=["-created_at"], name="job_newest"),
            # The queue page's "recently finished" (cancelling jobs, not finished yet, on top).
            models.Index(fields=["-finished_at", "-id"], name="job_recently_finished"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.get_status_display()})"

    @property
    def priority_name(self) -> str:
        return Priority(self.priority).label

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress(self) -> float:
        """Fraction of planned images that are finished (made or failed), 0.0-1.0."""
        if not self.images_planned:
            return 0.0
        return min(1.0, (self.images_done + self.images_failed) / self.images_planned)

    def touch(self) -> None:
        Job.objects.filter(pk=self.pk).update(updated_at=timezone.now())

    def mark_started(self) -> bool:
        now = timezone.now()
        changed = Job.objects.filter(pk=self.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=now, updated_at=now
        )
        return changed == 1

    def refresh_counts(self) -> None:
        """Recount images from the rows (never drifts, even after a crash between two writes)."""
        done = self.images.count()
        failed = (
            self.units.filter(status=Unit.Status.FAILED).aggregate(n=Sum("batch_size"))["n"] or 0
        )
        Job.objects.filter(pk=self.pk).update(
            images_done=done, images_failed=failed, updated_at=timezone.now()
        )
        self.images_done, self.images_failed = done, failed

    def finish_if_complete(self) -> str | None:
        """Close the job once no unit is pending or in flight; returns the final status or None."""
        open_units = self.units.filter(status__in=Unit.OPEN).exists()
        if open_units:
            return None
        self.refresh_counts()
        counts = dict(self.units.values_list("status").annotate(n=Count("id")))
        if self.status == Job.Status.CANCELLED or counts.get(Unit.Status.CANCELLED):
            final = Job.Status.CANCELLED
        elif counts.get(Unit.Status.FAILED) and counts.get(Unit.Status.DONE):
            final = Job.Status.PARTIAL
        elif counts.get(Unit.Status.FAILED):
            final = Job.Status.FAILED
        else:
            final = Job.Status.COMPLETED
        now = timezone.now()
        changed = Job.objects.filter(pk=self.pk, status__in=[*Job.ACTIVE, Job.Status.CANCELLED]).filter(
            finished_at__isnull=True
        ).update(status=final, finished_at=now, updated_at=now)
        if changed:
            self.status, self.finished_at = final, now
            return final
        return None

    def images_per_minute(self) -> float:
        if not self.started_at or not self.images_done:
            return 0.0
        end = self.finished_at or timezone.now()
        seconds = max((end - self.started_at).total_seconds(), 1e-6)
        return self.images_done * 60.0 / seconds

    def eta(self) -> timedelta | None:
        rate = self.images_per_minute()
        if not self.is_active or rate <= 0:
            return None
        remaining = self.images_planned - self.images_done - self.images_failed
        return timedelta(minutes=remaining / rate)


class Unit(models.Model):
    """One ComfyUI prompt: up to `batch_size` images of one prompt text with one seed."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUBMITTED = "submitted"  # handed to ComfyUI, waiting in its queue
        RUNNING = "running"  # ComfyUI said execution_start
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"
        SPLIT = "split"  # ran out of memory; its images were handed to smaller units

    IN_FLIGHT = (Status.SUBMITTED, Status.RUNNING)
    OPEN = (Status.PENDING, Status.SUBMITTED, Status.RUNNING)

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="units")
    index = models.PositiveIntegerField(help_text="0-based position in the job.")
    prompt_index = models.PositiveIntegerField()
    prompt = models.TextField()
    seed = models.BigIntegerField()
    batch_size = models.PositiveSmallIntegerField()
    first_sequence = models.PositiveIntegerField(help_text="1-based number of its first image in the job.")
    # Denormalised from the job so the claim is one index scan.
    priority = models.IntegerField(choices=Priority.choices, default=Priority.NORMAL)
    checkpoint = models.CharField(max_length=255, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    comfy_prompt_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    node = models.CharField(max_length=64, blank=True, help_text="GPU node that claimed it.")
    comfyui_url = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    graph = models.JSONField(null=True, blank=True, help_text="The workflow after injection.")
    downgraded_from = models.PositiveSmallIntegerField(null=True, blank=True)
    # Batch size "auto": the size chosen at this unit's boundary and the VRAM ComfyUI reported then
    # (bytes; null when it did not say, and the profile's size was used).
    batch_size_chosen = models.PositiveSmallIntegerField(null=True, blank=True)
    vram_free = models.BigIntegerField(null=True, blank=True)
    vram_total = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_details = models.JSONField(null=True, blank=True)
    passed_over = models.PositiveIntegerField(default=0, help_text="Times model affinity let another unit go first.")
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)

    claimed_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-priority", "id"], name="unit_claim_order"),
            models.Index(fields=["node", "status"], name="unit_node_inflight"),
            models.Index(fields=["status", "priority", "checkpoint", "id"], name="unit_affinity"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="unit_unique_index_in_job"),
        ]

    def __str__(self) -> str:
        return f"unit {self.job_id}.{self.index} ({self.status})"

    @property
    def prompt_id(self) -> str:
        """Our ComfyUI prompt id: the same on every attempt, so a resubmission is recognisable."""
        return str(self.comfy_prompt_id)

    @property
    def sequences(self) -> range:
        return range(self.first_sequence, self.first_sequence + self.batch_size)

    @classmethod
    def claim_next(cls, *, node: str, comfyui_url: str, prefer_checkpoint: str = "",
                   max_skips: int = 0) -> "Unit | None":
        """Claim the most urgent pending unit (FIFO within a priority) for `node`.

        A compare-and-set update: two nodes racing for one unit cannot both win, on SQLite or
        PostgreSQL. Units of a cancelled job are never claimed. Model affinity: with
        `prefer_checkpoint` and `max_skips` > 0, a unit of the same priority that uses the
        checkpoint already loaded may go first (no model swap on the GPU), but the unit whose FIFO
        turn it is can be passed over at most `max_skips` times.
        """
        pending = cls.objects.filter(status=cls.Status.PENDING).exclude(job__status=Job.Status.CANCELLED)
        for _ in range(20):
            head = pending.order_by("-priority", "id").values("pk", "priority", "checkpoint", "passed_over").first()
            if head is None:
                return None
            candidate = head["pk"]
            if (prefer_checkpoint and max_skips > 0 and head["checkpoint"] != prefer_checkpoint
                    and head["passed_over"] < max_skips):
                same_model = pending.filter(priority=head["priority"], checkpoint=prefer_checkpoint).order_by(
                    "id").values_list("pk", flat=True).first()
                if same_model is not None:
                    candidate = same_model
            now = timezone.now()
            won = cls.objects.filter(pk=candidate, status=cls.Status.PENDING).update(
                status=cls.Status.SUBMITTED, node=node, comfyui_url=comfyui_url, claimed_at=now,
                heartbeat_at=now, attempts=F("attempts") + 1, error="",
            )
            if won:
                if candidate != head["pk"]:
                    cls.objects.filter(pk=head["pk"]).update(passed_over=F("passed_over") + 1)
                return cls.objects.select_related("job").get(pk=candidate)
        return None

    @classmethod
    def work_left(cls, *, node: str) -> bool:
        """Anything still to claim, or still in flight on `node` (which only that node finishes)."""
        claimable = cls.objects.filter(status=cls.Status.PENDING).exclude(job__status=Job.Status.CANCELLED)
        return claimable.exists() or cls.objects.filter(node=node, status__in=cls.IN_FLIGHT).exists()

    def _guarded(self, from_statuses, **changes) -> bool:
        changed = Unit.objects.filter(pk=self.pk, status__in=list(from_statuses)).update(**changes)
        if changed:
            for key, value in changes.items():
                if not hasattr(value, "resolve_expression"):
                    setattr(self, key, value)
        return changed == 1

    def mark_submitted(self, graph: dict) -> bool:
        return self._guarded(self.IN_FLIGHT, graph=graph, submitted_at=timezone.now())

    def mark_running(self) -> bool:
        now = timezone.now()
        return self._guarded(
            [self.Status.SUBMITTED], status=self.Status.RUNNING, started_at=now, heartbeat_at=now
        )

    def mark_progress(self, value: int, maximum: int) -> None:
        Unit.objects.filter(pk=self.pk, status__in=self.IN_FLIGHT).update(
            steps_done=value, steps_total=maximum, heartbeat_at=timezone.now()
        )
        self.steps_done, self.steps_total = value, maximum

    def mark_done(self) -> bool:
        return self._guarded(self.IN_FLIGHT, status=self.Status.DONE, finished_at=timezone.now())

    def mark_failed(self, error: str, details: dict | None = None) -> bool:
        return self._guarded(
            self.OPEN, status=self.Status.FAILED, error=error[:4000], error_details=details,
            finished_at=timezone.now(),
        )

    def mark_cancelled(self) -> bool:
        return self._guarded(self.OPEN, status=self.Status.CANCELLED, finished_at=timezone.now())

    def release(self, error: str = "") -> bool:
        """Put an in-flight unit back in the queue (it will be claimed again, maybe elsewhere)."""
        return self._guarded(
            self.IN_FLIGHT, status=self.Status.PENDING, node="", error=error[:4000], started_at=None,
            steps_done=0,
        )
