"""The GPU worker's stop request, shared by every process of one qcluster.

The qcluster leader creates the flag before it forks the django-q sentinel, so the sentinel and
the worker it forks inherit the same shared byte. A lock-free byte on purpose: django-q2's own
stop event is a multiprocessing Event, and a process killed while holding its lock hangs the
others (STACK-NOTES). Set from a signal handler, read by the worker loop between slices.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import time

_flag = None  # multiprocessing RawValue(c_bool), or None outside a qcluster (tests, the shell)
_noticed_at: float | None = None


def prepare() -> None:
    """Create the shared flag; call in the qcluster leader before it forks anything."""
    global _flag, _noticed_at
    _flag = multiprocessing.RawValue(ctypes.c_bool, False)
    _noticed_at = None


def request() -> None:
    """Ask every process of this qcluster to stop: claim nothing new, finish or hand back the unit."""
    if _flag is not None:
        _flag.value = True


def requested() -> bool:
    return bool(_flag is not None and _flag.value)


def seconds_since_noticed() -> float:
    """How long this process has known of the stop request (0 the first time it asks)."""
    global _noticed_at
    if not requested():
        return 0.0
    now = time.monotonic()
    if _noticed_at is None:
        _noticed_at = now
    return now - _noticed_at
