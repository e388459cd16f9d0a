"""Sheets, animations and tilesets exported into a job's sheets/ folder."""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from batches.models.jobs import Job


class SheetExport(models.Model):
    """A sheet written into a job's sheets/ folder: its files, and how it was asked for."""

    class Kind(models.TextChoices):
        SHEET = "sheet"
        ANIMATION = "animation"
        TILESET = "tileset"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="sheets")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SHEET)
    name = models.CharField(max_length=100, help_text="The files' common stem in sheets/.")
    files = models.JSONField(default=list, help_text="Paths relative to OUTPUT_ROOT.")
    options = models.JSONField(default=dict)
    frames = models.PositiveIntegerField(default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="sheet_once_per_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.frames} frames, {self.width}x{self.height})"
