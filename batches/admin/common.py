"""Small helpers the admin pages share: links, thumbnails, who acted."""
from __future__ import annotations

import json

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from batches.models import Image

INLINE_ROWS = 200  # units and images shown inline on a job page; the dashboard's job page pages the rest


def _url(name: str, pk: int) -> str | None:
    """A URL of the dashboard's image views, or None where they are not installed."""
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:
        return None


def _thumb(image: Image, size: int = 64) -> str:
    url = _url("image-thumb", image.pk)
    if not url:
        return ""
    return format_html(
        '<img src="{}" alt="{}" width="{}" height="{}" loading="lazy" '
        'style="image-rendering: pixelated; object-fit: contain; background: #222;">',
        url, str(image), size, size,
    )


def _sprite_thumb(image: Image, size: int = 64) -> str:
    """The finished sprite, scaled without smoothing; "-" until there is one."""
    url = _url("image-sprite", image.pk) if image.sprite_path else None
    if not url:
        return "-"
    return format_html(
        '<img src="{}?v={}" alt="sprite of {}" width="{}" height="{}" loading="lazy" '
        'style="image-rendering: pixelated; object-fit: contain; background: #222;">',
        url, image.sprite_run, str(image), size, size,
    )


def _pretty_json(value) -> str:
    if value in (None, "", {}, []):
        return "-"
    return format_html("<pre style='max-height: 24em; overflow: auto; margin: 0'>{}</pre>",
                       json.dumps(value, indent=2, ensure_ascii=False))


def _swatches(colors) -> str:
    if not colors:
        return "-"
    return format_html_join(
        "", '<span title="{0}" style="display: inline-block; width: 16px; height: 16px; margin-right: 2px; '
            'background: {0}; border: 1px solid #888; vertical-align: middle"></span>', ((c,) for c in colors))


def _short(text: str, length: int = 60) -> str:
    return Truncator(" ".join((text or "").split())).chars(length)


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"

def _file_links(image: Image) -> str:
    links = [(url, label) for url, label in ((_url("image-file", image.pk), "image"),
                                             (_url("image-metadata", image.pk), "metadata")) if url]
    if not links:
        return image.file_path
    return format_html_join(" · ", '<a href="{}" target="_blank" rel="noopener">{}</a>', links)


def prompt_id_short(unit) -> str:
    """The ComfyUI prompt id's first 8 characters, the whole id on hover: a full UUID wraps a
    narrow column over four lines."""
    if not unit.comfy_prompt_id:
        return "-"
    full = str(unit.comfy_prompt_id)
    return format_html('<code title="{}">{}</code>', full, full[:8])
