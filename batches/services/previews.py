"""Live previews: the running unit's latest sampler preview, kept small and cheap for the worker.

ComfyUI sends a JPEG after every sampler step (with --preview-method). The worker keeps at most
one every PREVIEW_EVERY seconds per unit, downscaled, in one cache file per unit under
OUTPUT_ROOT/.previews (replaced atomically, never fsynced: a lost preview costs nothing), and
publishes a `preview` event carrying the URL to fetch. A page that cannot keep up fetches the
latest file; there is never a queue of frames.
"""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from django.conf import settings
from django.urls import reverse

log = logging.getLogger("batches.previews")

PREVIEW_EVERY = 0.5  # seconds: at most two previews a second per unit
PREVIEW_MAX_SIDE = 256  # pixels: a live preview is a glance, not the image


def preview_dir() -> Path:
    return Path(settings.OUTPUT_ROOT) / ".previews"


def preview_path(unit_id: int) -> Path:
    return preview_dir() / f"unit-{unit_id}.jpg"


def preview_url(*, job_id: int, unit_id: int, seq: int) -> str:
    """The URL a page fetches; `v` changes with every preview so no cached copy is shown."""
    return reverse("unit-preview", args=[job_id, unit_id]) + f"?v={seq}"


def shrink(image: bytes) -> bytes:
    """The preview as a JPEG no larger than PREVIEW_MAX_SIDE; small JPEGs pass through untouched."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(image)) as picture:
        if picture.format == "JPEG" and max(picture.size) <= PREVIEW_MAX_SIDE:
            return image
        picture = picture.convert("RGB")
        picture.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=80)
        return out.getvalue()


def store_preview(*, unit_id: int, image: bytes) -> bool:
    """Replace the unit's preview with `image`; False (and a debug line) when it cannot be read or written."""
    try:
        data = shrink(image)
        path = preview_path(unit_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)  # no fsync: the worker loop must not wait on the disk for a glance
        os.replace(tmp, path)
        return True
    except Exception as exc:  # a truncated frame, a full disk: the next step brings another
        log.debug("could not keep the preview of unit %s: %s", unit_id, exc)
        return False


def current_url(unit) -> str:
    """The URL of the unit's latest preview for a server render, or "" when it has none yet."""
    try:
        seq = preview_path(unit.pk).stat().st_mtime_ns
    except OSError:
        return ""
    return preview_url(job_id=unit.job_id, unit_id=unit.pk, seq=seq)


def latest_preview(unit_id: int) -> bytes | None:
    try:
        return preview_path(unit_id).read_bytes()
    except OSError:
        return None


def discard_preview(unit_id: int) -> None:
    try:
        preview_path(unit_id).unlink()
    except OSError:
        pass


class PreviewThrottle:
    """Keeps one preview per unit every PREVIEW_EVERY seconds; the worker asks it for each frame."""

    def __init__(self, every: float = PREVIEW_EVERY):
        self.every = every
        self.last: dict[int, float] = {}
        self.seq = 0

    def take(self, unit_id: int, now: float) -> bool:
        if now - self.last.get(unit_id, float("-inf")) < self.every:
            return False
        self.last = {unit_id: now}  # only the running unit matters; forget the others
        self.seq += 1
        return True
