"""What the pages' scripts need to know about an image's sprite, written as data- attributes once
for the gallery tiles, the job page's tiles and the compare cells."""
from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html_join

from batches.models import Image

register = template.Library()

ERROR_SHOWN = 300  # characters of a finishing error carried in a tile's title


def sprite_url(image: Image) -> str:
    """The sprite's URL, versioned by its run: a re-finish writes the same file name again."""
    if not image.sprite_path:
        return ""
    return f"{reverse('image-sprite', args=[image.pk])}?v={image.sprite_run}"


def sprite_attributes(image: Image) -> list[tuple[str, str]]:
    info = image.sprite_info or {}
    attrs = [("data-sprite-state", image.sprite_state or "none")]
    url = sprite_url(image)
    if url:
        attrs.append(("data-sprite", url))
        size = info.get("size") or []
        if len(size) == 2:
            attrs += [("data-sprite-w", str(size[0])), ("data-sprite-h", str(size[1]))]
        if info.get("pixel_size"):
            attrs.append(("data-pixel-size", f"{float(info['pixel_size']):g}"))
            phase = info.get("phase") or [0, 0]
            attrs.append(("data-phase", ",".join(f"{float(p):g}" for p in phase[:2])))
        if info.get("palette"):
            attrs.append(("data-palette", ",".join(info["palette"])))
    if image.sprite_state == Image.Sprite.FAILED and image.sprite_error:
        attrs.append(("data-sprite-error", image.sprite_error[:ERROR_SHOWN]))
    return attrs


@register.simple_tag
def sprite_data(image: Image) -> str:
    """` data-sprite-state="done" data-sprite="/images/7/sprite.png?v=1" data-sprite-w="48" ...`"""
    return format_html_join("", ' {}="{}"', sprite_attributes(image))


@register.filter
def sprite_open(image: Image) -> bool:
    """Its sprite is still to be made (waiting, pending or running)."""
    return image.sprite_state in Image.SPRITE_OPEN
