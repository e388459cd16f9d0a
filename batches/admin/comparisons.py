"""Comparisons and their blind votes in the admin: read-only records the pages and services write."""
from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from batches.admin.common import _pretty_json
from batches.models import Comparison, Job, Vote


class CellInline(admin.TabularInline):
    """The comparison's cells (its jobs), read-only: a cell is changed on its job's page."""

    model = Job
    fk_name = "comparison"
    verbose_name = "cell"
    verbose_name_plural = "cells"
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    fields = ("cell", "status", "checkpoint", "lora", "steps", "cfg", "sampler", "images_done", "images_planned")
    readonly_fields = fields
    ordering = ("id",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "axes_short", "cell_count", "vote_count", "created_at")
    list_filter = ("owner",)
    search_fields = ("name",)
    readonly_fields = ("owner", "axes_pretty", "base_seed", "created_at", "page_link")
    fields = ("name", "owner", "axes_pretty", "base_seed", "created_at", "page_link")
    inlines = [CellInline]

    def has_add_permission(self, request) -> bool:
        return False  # the form, the CLI and the API submit comparisons (comparison_submit)

    @admin.display(description="axes")
    def axes_short(self, obj: Comparison) -> str:
        return " × ".join(f"{a['axis']} ({len(a['values'])})" for a in obj.axes or [])

    @admin.display(description="axes")
    def axes_pretty(self, obj: Comparison) -> str:
        return _pretty_json(obj.axes)

    @admin.display(description="cells")
    def cell_count(self, obj: Comparison) -> int:
        return obj.cells.count()

    @admin.display(description="votes")
    def vote_count(self, obj: Comparison) -> int:
        return obj.votes.count()

    @admin.display(description="page")
    def page_link(self, obj: Comparison) -> str:
        return format_html('<a href="{}">the grid</a>', reverse("comparison-detail", args=[obj.pk]))


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ("id", "comparison", "user", "slot", "winner", "winner_cell", "created_at")
    list_filter = ("comparison", "user")
    readonly_fields = ("comparison", "user", "slot", "winner", "created_at")
    ordering = ("comparison", "user", "slot")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="winner's cell")
    def winner_cell(self, obj: Vote) -> str:
        from batches.services.comparisons import label

        return label(obj.winner.cell or {})
