"""What the pages show of a job's finishing: its settings in words, how far its sprites are, and
why the ones that failed did. One call per page render (the job page's finish card and its
live refresh)."""
from __future__ import annotations

from dataclasses import dataclass, field

from batches.models import Image, Job
from batches.services.finishing import describe, sprite_counts

FAILURES_SHOWN = 20


@dataclass
class FinishSummary:
    plan: str                       # describe(job.finish): "32 colours, background auto"
    enabled: bool                   # the job makes sprites at all
    done: int = 0
    open: int = 0                   # waiting, pending or running
    failed: int = 0
    palette: list[str] = field(default_factory=list)  # the job's locked palette, once computed
    failures: list[dict] = field(default_factory=list)  # pk, sequence, seed, sprite_error

    @property
    def total(self) -> int:
        return self.done + self.open + self.failed

    @property
    def finishing(self) -> bool:
        """Shown as "finishing" until every sprite exists (or failed)."""
        return self.open > 0

    @property
    def percent_done(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0

    @property
    def percent_failed(self) -> float:
        return 100.0 * self.failed / self.total if self.total else 0.0


def job_summary(job: Job) -> FinishSummary:
    counts = sprite_counts([job.pk]).get(job.pk, {"done": 0, "open": 0, "failed": 0})
    summary = FinishSummary(plan=describe(job.finish), enabled=bool(job.finish), palette=list(job.finish_palette or []),
                            **counts)
    if summary.failed:
        summary.failures = list(job.images.filter(sprite_state=Image.Sprite.FAILED).order_by("sequence")
                                .values("pk", "sequence", "seed", "sprite_error")[:FAILURES_SHOWN])
    return summary
