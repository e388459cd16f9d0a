"""The disk guard: below DGX_DISK_MIN_FREE_GB free at OUTPUT_ROOT the GPU worker claims no new unit.

One os.statvfs() call (microseconds), asked at every claim and every few seconds while holding.
The unit on the GPU always finishes and is recorded (its files are small and written atomically:
services/outputs.atomic_write); nothing new starts until space is freed, then work resumes by
itself. The worker writes what it saw on its WorkerNode row (`disk_free`, `hold_reason`), so the
pages, `batch_status`, /healthz and /metrics all show the same reason.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

GB = 1024 ** 3


@dataclass(frozen=True)
class DiskState:
    free: int | None  # bytes free to this process at OUTPUT_ROOT; None when it cannot be read
    minimum: int  # bytes: DGX_DISK_MIN_FREE_GB
    error: str = ""

    @property
    def low(self) -> bool:
        return self.free is not None and self.free < self.minimum

    @property
    def reason(self) -> str:
        """Why the worker holds (blank when it need not): the numbers, the variable and the fix."""
        if not self.low:
            return ""
        return (f"{self.free / GB:.1f} GB free at OUTPUT_ROOT, below DGX_DISK_MIN_FREE_GB="
                f"{settings.DISK_MIN_FREE_GB:g}: free space (./dgx batch_cleanup) or lower the limit")


def _existing(path: Path) -> Path:
    """OUTPUT_ROOT, or its nearest existing parent when it is not created yet (same filesystem)."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path | None = None) -> int:
    """Bytes an unprivileged process may still write at `path` (default OUTPUT_ROOT)."""
    stat = os.statvfs(_existing(path or settings.OUTPUT_ROOT))
    return stat.f_bavail * stat.f_frsize


def check(path: Path | None = None) -> DiskState:
    minimum = int(settings.DISK_MIN_FREE_GB * GB)
    try:
        return DiskState(free_bytes(path), minimum)
    except OSError as exc:  # cannot tell: never hold the queue on a guess
        return DiskState(None, minimum, error=str(exc))
