"""The webhook worker's loop: tail events into deliveries, send what is due, sleep a little.

A CPU process of its own (`manage.py webhook_worker`), never the GPU worker's: receivers may be
slow or down, and only this loop waits for them. More than one may run (claims are
compare-and-set); one is plenty.
"""
from __future__ import annotations

import logging
import time

from django.db import close_old_connections

from batches.services.webhooks.delivery import deliver_due, reclaim_after
from batches.services.webhooks.events import CATCH_UP, EventTail
from batches.services.webhooks.signing import secret_is_derived

log = logging.getLogger("batches.webhooks")

SLEEP = 0.3
ERROR_PAUSE = 5.0


def run(*, stop=lambda: False, once: bool = False, say=None, interval: float = SLEEP,
        reclaim: float | None = None, catch_up=CATCH_UP) -> int:
    """Until `stop()` (or, with `once`, until nothing is due now): returns the attempts made."""
    say = say or log.info
    if secret_is_derived():
        say("webhook worker: WARNING: DGX_WEBHOOK_SECRET is empty; signing with a key derived from "
            "SECRET_KEY (receivers need it: manage.py webhook_worker --show-secret). Set DGX_WEBHOOK_SECRET.")
    reclaim = reclaim_after() if reclaim is None else reclaim
    tail = EventTail(catch_up=catch_up)
    made = 0
    while not stop():
        try:
            while tail.poll() and not stop():
                pass
            made += deliver_due(say=say, stop=stop, reclaim=reclaim)
        except Exception:  # a database hiccup, a bad row: say so, and try again after a pause
            if once:
                raise
            log.exception("webhook worker: pass failed; retrying in %.0f s", ERROR_PAUSE)
            close_old_connections()
            _sleep(ERROR_PAUSE, stop)
            continue
        if once:
            break
        _sleep(interval, stop)
    return made


def _sleep(seconds: float, stop) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop():
        time.sleep(min(0.05, seconds))
