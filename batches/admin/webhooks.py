"""Webhooks in the admin: users' standing endpoints, and the delivery log.

The log is written by the webhook worker; it is read-only here. "Redeliver" queues a new row (a
new delivery id and attempt series) rather than resetting the old one, so the log keeps what
happened to each try. "Send test" queues a `ping` to an endpoint.
"""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from batches.admin.common import _short
from batches.models import WebhookDelivery, WebhookEndpoint
from batches.services.webhooks import queue_ping, redeliver
from batches.services.webhooks.targets import url_problem


class WebhookEndpointForm(forms.ModelForm):
    url = forms.CharField(label="URL", max_length=500, widget=forms.URLInput(attrs={"size": 60}),
                          help_text="http(s); loopback and private addresses only if DGX_WEBHOOK_ALLOW lists the host.")

    class Meta:
        model = WebhookEndpoint
        fields = ("owner", "url", "progress", "active")

    def clean_url(self):
        url = (self.cleaned_data.get("url") or "").strip()
        if problem := url_problem(url):
            raise forms.ValidationError(f"This URL {problem}.")
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "owner", "progress", "active", "created_at", "last_delivery")
    list_filter = ("active", "progress")
    search_fields = ("url", "owner__username")
    actions = ["send_test"]

    @admin.display(description="last delivery")
    def last_delivery(self, endpoint: WebhookEndpoint) -> str:
        row = endpoint.deliveries.order_by("-id").first()
        return f"{row.event}: {row.status}" if row else "-"

    @admin.action(description="Send test (queue a ping)")
    def send_test(self, request, queryset):
        count = 0
        for endpoint in queryset:
            queue_ping(endpoint)
            count += 1
        self.message_user(request, f"Queued a ping to {count} endpoint(s); the webhook worker sends it.",
                          messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "event", "job_link", "url", "status", "attempts", "last_status_code", "created_at",
                    "delivered_at", "error_short")
    list_filter = ("status", "event")
    search_fields = ("url", "job__id", "last_error")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    list_select_related = ("job",)
    actions = ["redeliver_selected"]
    readonly_fields = ("event", "job", "endpoint", "url", "status", "attempts", "event_id", "next_attempt_at",
                       "claimed_at", "last_status_code", "last_error", "delivered_at", "created_at",
                       "payload_pretty")
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False  # rows come from job events, "Send test" and "Redeliver"

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the log is the worker's: read-only (the actions still run for staff)

    @admin.display(description="job", ordering="job")
    def job_link(self, delivery: WebhookDelivery) -> str:
        return f"#{delivery.job_id}" if delivery.job_id else "-"

    @admin.display(description="last error")
    def error_short(self, delivery: WebhookDelivery) -> str:
        return _short(delivery.last_error, 80)

    @admin.display(description="payload")
    def payload_pretty(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>",
                           json.dumps(delivery.payload, indent=2, ensure_ascii=False, default=str))

    @admin.action(description="Redeliver (queue again as a new delivery)", permissions=["view"])
    def redeliver_selected(self, request, queryset):
        made = [redeliver(delivery).pk for delivery in queryset]
        self.message_user(request, f"Queued {len(made)} redelivery(ies): "
                                   f"{', '.join('#' + str(pk) for pk in made)}.", messages.SUCCESS)
