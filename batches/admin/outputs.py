"""Units and images in the admin: what ran where, and review actions on images."""
from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from batches.models import Image, Unit
from batches.numbers import id_or_none
from batches.services import review

INLINE_ROWS = 200  # units and images shown inline on a job page; the dashboard's job page pages the rest
from batches.admin.common import (_file_links, _plural, _pretty_json, _short, _sprite_thumb, _swatches, _thumb,
                                  prompt_id_short)
from batches.services import finishing

# --- Units -----------------------------------------------------------------------------------


@admin.register(Unit)
class UnitAdmin(admin.ModelAdmin):
    # Readable at 1400 px: the prompt id is shortened, the error cut, one time column.
    list_display = ("id", "job_link", "index", "status", "batch_size", "attempts", "error_short",
                    "prompt_id", "node", "finished_at")
    list_filter = ("status", "node", "batch_size")
    search_fields = ("prompt",)
    search_help_text = "Prompt text; a number finds units of that job; a UUID finds the ComfyUI prompt id."
    list_select_related = ("job",)
    ordering = ("-id",)
    exclude = ("graph",)
    readonly_fields = ("graph_pretty",)

    def get_readonly_fields(self, request, obj=None):
        return (*(f.name for f in Unit._meta.fields if f.name not in ("id", "graph")), "graph_pretty")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # every field is the worker's

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="job", ordering="job")
    def job_link(self, unit: Unit) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:batches_job_change", args=[unit.job_id]),
                           unit.job_id)

    @admin.display(description="error")
    def error_short(self, unit: Unit) -> str:
        return _short(unit.error, 60)

    @admin.display(description="ComfyUI id", ordering="comfy_prompt_id")
    def prompt_id(self, unit: Unit) -> str:
        return prompt_id_short(unit)

    @admin.display(description="workflow sent to ComfyUI")
    def graph_pretty(self, unit: Unit) -> str:
        import json

        if not unit.graph:
            return "-"
        return format_html("<pre style='max-height: 30em; overflow: auto'>{}</pre>", json.dumps(unit.graph, indent=2))

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        job_id = id_or_none(term)
        if job_id is not None:
            results = results | queryset.filter(job_id=job_id)
        else:
            try:
                results = results | queryset.filter(comfy_prompt_id=uuid.UUID(term))
            except ValueError:
                pass
        return results, may_have_duplicates


# --- Images ----------------------------------------------------------------------------------


def _review_action(action: str, description: str):
    @admin.action(description=description, permissions=["change"])
    def run(modeladmin, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        changed = review.images_bulk_update(user=request.user, ids=ids, action=action) if ids else []
        modeladmin.message_user(request, f"{description}: {_plural(len(changed), 'image')}.")

    run.__name__ = f"review_{action}"
    return run


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "sprite_thumbnail", "name", "job_link", "sequence", "seed", "review", "starred",
                    "dimensions", "sprite_state", "node", "created_at")
    list_display_links = ("thumbnail", "name")
    list_filter = ("review", "starred", "sprite_state", "job__profile", "job__checkpoint")
    search_fields = ("prompt",)
    search_help_text = "Prompt text; a number finds the images of that job."
    list_select_related = ("job",)
    ordering = ("-id",)
    list_per_page = 60
    actions = [_review_action("approve", "Approve"), _review_action("reject", "Reject"),
               _review_action("unreview", "Mark unreviewed"), _review_action("star", "Star"),
               _review_action("unstar", "Unstar"), "refinish_sprites"]
    fieldsets = (
        (None, {"fields": ("preview", "files", "job", "unit", "sequence", "batch_index", "prompt", "seed",
                           ("width", "height"), "file_size", "generation_time", "node", "review", "starred",
                           "file_path", "thumb_path", "metadata_path", "metadata", "created_at")}),
        ("Sprite", {"fields": ("sprite_preview", ("sprite_state", "sprite_run"), "sprite_path", "sprite_palette",
                               "sprite_info_pretty", "sprite_finish_pretty", "sprite_error", "sprite_claimed_at")}),
        ("Frame and tile", {"fields": (("frame_order", "frame_dropped"), "seam_score"),
                            "description": "Its place in the job's animation (set on the job page) and, for "
                                           "tileset jobs, how well its sprite repeats (0 is seamless)."}),
    )

    def get_readonly_fields(self, request, obj=None):
        return (*(f.name for f in Image._meta.fields if f.name not in ("id", "review", "starred")), "preview", "files",
                "sprite_preview", "sprite_palette", "sprite_info_pretty", "sprite_finish_pretty")

    def has_add_permission(self, request) -> bool:
        return False  # images come from the GPU worker

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a job's images go with the job (batch_cleanup); reject instead

    def save_model(self, request, obj: Image, form, change: bool) -> None:
        if "review" in form.changed_data:
            review.image_review(image=obj, review=obj.review)
        if "starred" in form.changed_data:
            review.image_star(image=obj, starred=obj.starred)

    @admin.display(description="preview")
    def thumbnail(self, image: Image) -> str:
        return _thumb(image, 64)

    @admin.display(description="preview")
    def preview(self, image: Image) -> str:
        return _thumb(image, 256)

    @admin.display(description="files")
    def files(self, image: Image) -> str:
        return _file_links(image)

    @admin.display(description="sprite")
    def sprite_thumbnail(self, image: Image) -> str:
        return _sprite_thumb(image, 64)

    @admin.display(description="sprite")
    def sprite_preview(self, image: Image) -> str:
        return _sprite_thumb(image, 256)

    @admin.display(description="palette")
    def sprite_palette(self, image: Image) -> str:
        return _swatches((image.sprite_info or {}).get("palette"))

    @admin.display(description="what the last run found and made (sprite info)")
    def sprite_info_pretty(self, image: Image) -> str:
        return _pretty_json(image.sprite_info)

    @admin.display(description="settings of the next (or last) run")
    def sprite_finish_pretty(self, image: Image) -> str:
        return _pretty_json(image.sprite_finish)

    @admin.action(description="Re-finish sprites", permissions=["change"])
    def refinish_sprites(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        try:
            queued = finishing.images_refinish(user=request.user, ids=ids, finish=None)
        except finishing.FinishError as exc:
            self.message_user(request, f"Cannot re-finish: {exc}", messages.ERROR)
            return
        self.message_user(request, f"{_plural(queued, 'sprite')} queued to be made again.")

    @admin.display(description="image", ordering="sequence")
    def name(self, image: Image) -> str:
        return str(image)

    @admin.display(description="size")
    def dimensions(self, image: Image) -> str:
        return f"{image.width}×{image.height}"

    @admin.display(description="job", ordering="job")
    def job_link(self, image: Image) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:batches_job_change", args=[image.job_id]),
                           image.job_id)

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        job_id = id_or_none(search_term)
        if job_id is not None:
            results = results | queryset.filter(job_id=job_id)
        return results, may_have_duplicates
