"""Images, one row per PNG a unit made, with the sprite finished from it."""
from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

from batches.models.jobs import Job, Unit


class Image(models.Model):
    class Review(models.TextChoices):
        UNREVIEWED = "unreviewed"
        APPROVED = "approved"
        REJECTED = "rejected"

    class Sprite(models.TextChoices):
        NONE = "", "no sprite"
        WAITING = "waiting", "waiting for the batch"  # its job's palette comes from every image
        PENDING = "pending", "finishing"
        RUNNING = "running", "finishing"
        DONE = "done", "sprite ready"
        FAILED = "failed", "finishing failed"

    SPRITE_OPEN = (Sprite.WAITING, Sprite.PENDING, Sprite.RUNNING)

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="images")
    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="images")
    sequence = models.PositiveIntegerField(help_text="1-based number in the job: sprite_0001.")
    batch_index = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    seed = models.BigIntegerField()
    file_path = models.CharField(max_length=500, help_text="Relative to OUTPUT_ROOT.")
    thumb_path = models.CharField(max_length=500, blank=True)
    metadata_path = models.CharField(max_length=500, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    file_size = models.PositiveIntegerField(default=0)
    generation_time = models.FloatField(default=0.0, help_text="Seconds per image.")
    node = models.CharField(max_length=64, blank=True)
    review = models.CharField(max_length=16, choices=Review.choices, default=Review.UNREVIEWED)
    starred = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    # The sprite finished from this image (the original is never altered): its own small queue,
    # worked by `manage.py sprite_worker`, off the GPU worker's path.
    sprite_state = models.CharField(max_length=8, choices=Sprite.choices, default=Sprite.NONE, blank=True)
    sprite_path = models.CharField(max_length=500, blank=True, help_text="Relative to OUTPUT_ROOT.")
    sprite_finish = models.JSONField(null=True, blank=True, help_text="Settings of the next (or last) run.")
    sprite_info = models.JSONField(null=True, blank=True, help_text="What the last run detected and made.")
    sprite_error = models.TextField(blank=True)
    sprite_run = models.PositiveIntegerField(default=0, help_text="Bumped by each re-finish.")
    sprite_claimed_at = models.DateTimeField(null=True, blank=True)
    # As a frame of its job's animation: its place (null: by sequence) and whether it was dropped.
    frame_order = models.PositiveIntegerField(null=True, blank=True)
    frame_dropped = models.BooleanField(default=False)
    # As a tile: how visible the seams are when it repeats (0 = seamless); tileset jobs only.
    seam_score = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            # Exactly once: a unit's batch index can be recorded one time only.
            models.UniqueConstraint(fields=["unit", "batch_index"], name="image_once_per_batch_index"),
            models.UniqueConstraint(fields=["job", "sequence"], name="image_unique_sequence"),
        ]
        indexes = [
            models.Index(fields=["-id"], name="image_newest"),
            models.Index(fields=["job", "sequence"], name="image_job_order"),
            models.Index(fields=["review", "-id"], name="image_review_newest"),
            models.Index(fields=["job", "-id"], name="image_job_newest"),  # gallery filtered by job
            models.Index(fields=["sprite_state", "id"], name="image_sprite_queue"),
            models.Index(fields=["seam_score", "id"], name="image_seam_order"),  # the gallery's seam sort
        ]

    def __str__(self) -> str:
        return f"sprite_{self.sequence:04d}_{self.seed}"

    def set_review(self, review: str) -> None:
        Image.objects.filter(pk=self.pk).update(review=review)
        self.review = review

    def toggle_star(self) -> None:
        self.starred = not self.starred
        Image.objects.filter(pk=self.pk).update(starred=self.starred)

    # --- the sprite's small queue: guarded updates, as the units' -----------------------------
    @classmethod
    def claim_sprite(cls, *, stale_after: float = 120.0) -> "Image | None":
        """The oldest image waiting for its sprite (or one whose finisher died), claimed for this process."""
        now = timezone.now()
        stale = now - timedelta(seconds=stale_after)
        candidates = list(cls.objects.filter(sprite_state=cls.Sprite.PENDING).order_by("id")
                          .values_list("pk", "sprite_state", "sprite_run")[:20])
        candidates += list(cls.objects.filter(sprite_state=cls.Sprite.RUNNING, sprite_claimed_at__lt=stale)
                           .order_by("id").values_list("pk", "sprite_state", "sprite_run")[:5])
        for pk, state, run in candidates:
            rows = cls.objects.filter(pk=pk, sprite_run=run, sprite_state=state)
            if state == cls.Sprite.RUNNING:
                rows = rows.filter(sprite_claimed_at__lt=stale)
            if rows.update(sprite_state=cls.Sprite.RUNNING, sprite_claimed_at=now):
                return cls.objects.select_related("job").get(pk=pk)
        return None

    def sprite_done(self, *, path: str, info: dict) -> bool:
        """Record the finished sprite, unless a re-finish was asked for meanwhile (then it runs again)."""
        return Image.objects.filter(pk=self.pk, sprite_run=self.sprite_run, sprite_state=self.Sprite.RUNNING).update(
            sprite_state=self.Sprite.DONE, sprite_path=path, sprite_info=info, sprite_error="") == 1

    def sprite_failed(self, error: str) -> bool:
        return Image.objects.filter(pk=self.pk, sprite_run=self.sprite_run, sprite_state=self.Sprite.RUNNING).update(
            sprite_state=self.Sprite.FAILED, sprite_error=error[:4000]) == 1
