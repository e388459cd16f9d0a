"""The GPU nodes and the queue's pause switch in the admin."""
from __future__ import annotations


from django.contrib import admin

from batches.services.rates import rate_for
from batches.models import QueueControl, WorkerNode
from batches.services import control

INLINE_ROWS = 200  # units and images shown inline on a job page; the dashboard's job page pages the rest
from batches.admin.common import _actor, _short

# --- GPU nodes and the queue switch ----------------------------------------------------------


@admin.register(WorkerNode)
class WorkerNodeAdmin(admin.ModelAdmin):
    list_display = ("name", "comfyui_url", "comfyui_ok", "heartbeat_at", "unreachable_since", "vram_free_gb",
                    "current_unit", "images_per_minute", "images_made", "error_short")
    list_filter = ("comfyui_ok",)
    search_fields = ("name", "comfyui_url")
    ordering = ("name",)

    def get_readonly_fields(self, request, obj=None):
        return tuple(f.name for f in WorkerNode._meta.fields if f.name != "id")

    def has_add_permission(self, request) -> bool:
        return False  # a node registers itself when its worker starts

    @admin.display(description="images/min (10 min)")
    def images_per_minute(self, node: WorkerNode) -> str:
        rate = rate_for(node=node.name)
        return f"{rate.images_per_minute:.1f} (based on {rate.based_on})"

    @admin.display(description="VRAM free")
    def vram_free_gb(self, node: WorkerNode) -> str:
        if node.vram_free is None:
            return "-"
        total = f" of {node.vram_total / 1024 ** 3:.0f}" if node.vram_total else ""
        return f"{node.vram_free / 1024 ** 3:.1f}{total} GB"

    @admin.display(description="last error")
    def error_short(self, node: WorkerNode) -> str:
        return _short(node.last_error, 80)


@admin.register(QueueControl)
class QueueControlAdmin(admin.ModelAdmin):
    list_display = ("queue", "paused", "paused_at", "paused_by")
    actions = ["pause_queue", "resume_queue"]

    def get_readonly_fields(self, request, obj=None):
        return ("paused", "paused_at", "paused_by")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        QueueControl.get()  # the one row exists, so the actions have something to select
        return super().changelist_view(request, extra_context)

    @admin.display(description="queue")
    def queue(self, row: QueueControl) -> str:
        return "paused: running units finish, nothing new starts" if row.paused else "running"

    @admin.action(description="Pause the queue (running units finish)", permissions=["change"])
    def pause_queue(self, request, queryset):
        control.queue_pause(by=_actor(request))
        self.message_user(request, "The queue is paused.")

    @admin.action(description="Resume the queue", permissions=["change"])
    def resume_queue(self, request, queryset):
        control.queue_resume(by=_actor(request))
        self.message_user(request, "The queue is running.")
