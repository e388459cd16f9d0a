"""Per-token rate limit: settings.API_RATE_LIMIT requests a minute (0: off), a fixed window.

Why a cache alias of its own and not Django's default cache or Ninja's throttles: the default cache
is per process (LocMem), and `run.sh` or a deployment may run several daphne processes, each of
which would then allow the full limit. The "api_rate" cache (settings.CACHES) is shared by every
process that serves the API:

- with REDIS_URL it is Redis, where `incr` is one atomic INCR;
- on the embedded default (SQLite) and PostgreSQL without Redis it is Django's DatabaseCache in
  the table `dgx_api_rate` (made by migration 0011; created here on first use too, for a database
  migrated before that cache existed).

A window is one key per token and minute (`api-rate:<token id>:<minute>`), expiring after two
minutes: one read and one write per request, no table scan, nothing to prune. The database
cache's incr is a read then a write, so two requests of one token at the same instant may both
count as one: the limit can be overshot by the number of simultaneous requests, never undercut.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError
from ninja.errors import Throttled

logger = logging.getLogger(__name__)
ALIAS = "api_rate"
WINDOW = 60


def _cache():
    return caches[ALIAS] if ALIAS in settings.CACHES else caches["default"]


def _count(key: str) -> int:
    cache = _cache()
    if cache.add(key, 1, timeout=2 * WINDOW):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=2 * WINDOW)
        return 1


def _create_table() -> None:
    from django.core.management import call_command

    logger.info("creating the API rate-limit cache table %r", settings.CACHES.get(ALIAS, {}).get("LOCATION"))
    try:
        call_command("createcachetable", verbosity=0)
    except DatabaseError:  # another process created it at the same moment
        pass


def check(token_id: int, *, now: float | None = None) -> None:
    """Count one request of the token; raise Throttled (429, Retry-After) once over the limit."""
    limit = settings.API_RATE_LIMIT
    if not limit:
        return
    now = time.time() if now is None else now
    minute = int(now // WINDOW)
    key = f"api-rate:{token_id}:{minute}"
    try:
        used = _count(key)
    except DatabaseError:  # the cache table does not exist yet
        _create_table()
        used = _count(key)
    if used > limit:
        raise Throttled(wait=max(1, int((minute + 1) * WINDOW - now + 0.999)))
