"""Comparisons: one submission across models, LoRAs and settings; each cell is a job (issue 14)."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Comparison(models.Model):
    """The grid: its axes (each a list of values) and the blind votes cast on it.

    Every cell is a Job (Job.comparison, Job.cell) with the same prompts and seeds, so the axis
    values are the only difference between the cells' images.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="comparisons")
    name = models.CharField(max_length=200, blank=True)
    axes = models.JSONField(help_text='[{"axis": "cfg", "values": [6, 8]}, ...] in the order given.')
    base_seed = models.BigIntegerField(help_text="Every cell uses these seeds.")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"comparison {self.pk}" + (f" ({self.name})" if self.name else "")

    @property
    def axis_names(self) -> list[str]:
        return [a["axis"] for a in self.axes]


class Vote(models.Model):
    """One user's blind pick of the best cell for one prompt/seed (a row of the grid)."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    slot = models.PositiveIntegerField(help_text="The unit index shared by every cell: one prompt/seed.")
    winner = models.ForeignKey("batches.Job", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comparison", "user", "slot"], name="vote_once_per_slot")]
