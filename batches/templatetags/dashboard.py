"""Small display filters shared by the dashboard's pages: durations, percentages, rates."""
from __future__ import annotations

from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def duration(value) -> str:
    """A timedelta or seconds as "2h 05m", "3m 20s" or "12s"; "—" when unknown."""
    if value is None or value == "":
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@register.filter
def percent(fraction) -> str:
    """0.4567 -> "45.7" (for widths and labels)."""
    try:
        return f"{max(0.0, min(1.0, float(fraction))) * 100:.1f}"
    except (TypeError, ValueError):
        return "0.0"


@register.filter
def step_percent(unit) -> str:
    if not unit or not unit.steps_total:
        return "0.0"
    return percent(unit.steps_done / unit.steps_total)


@register.filter
def rate(value) -> str:
    """Images per minute, one decimal; "—" for none yet."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{value:.1f}" if value > 0 else "—"


@register.filter
def startswith(text, prefix) -> bool:
    return str(text).startswith(str(prefix))


@register.filter
def get_item(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def ago(value) -> str:
    """ "just now", "3 minutes ago", "2 hours, 5 minutes ago"."""
    if not value:
        return ""
    from django.utils import timezone
    from django.utils.timesince import timesince

    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value)} ago"


@register.filter
def preview_url(unit) -> str:
    """The running unit's latest live preview ("" before the first one)."""
    from batches.services.previews import current_url

    return current_url(unit) if unit else ""


@register.filter
def images_left(job) -> int:
    """Images a job has still to make (what cancelling it gives up)."""
    return max(0, job.images_planned - job.images_done - job.images_failed)


@register.filter
def minus(value, other) -> int:
    try:
        return max(0, int(value) - int(other))
    except (TypeError, ValueError):
        return 0
