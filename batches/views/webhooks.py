"""/account/webhooks/: the signed-in user's standing webhooks (every job of theirs reports here).

Add (the URL is checked like a job's webhook_url), remove, and "send test" (queues a ping the
webhook worker sends). Thin: the rows and the checks are the models' and services.webhooks'.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from batches.models import WebhookEndpoint
from batches.services.webhooks import queue_ping
from batches.services.webhooks.delivery import remove_endpoint
from batches.services.webhooks.targets import url_problem

MAX_ENDPOINTS = 20  # per user: a standing webhook is sent every job's end


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", max_length=500, widget=forms.URLInput(
        attrs={"placeholder": "https://ci.example.com/hooks/dgx", "spellcheck": "false"}))
    progress = forms.BooleanField(label="Also send progress (job.progress)", required=False)

    def clean_url(self):
        url = self.cleaned_data["url"].strip()
        if problem := url_problem(url):
            raise forms.ValidationError(f"This URL {problem}.")
        return url


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_webhooks(request: HttpRequest) -> HttpResponse:
    endpoints = WebhookEndpoint.objects.filter(owner=request.user).order_by("id")
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if endpoints.count() >= MAX_ENDPOINTS:
            form.add_error(None, f"You have {MAX_ENDPOINTS} webhooks, the limit: remove one first.")
        else:
            WebhookEndpoint.objects.create(owner=request.user, url=form.cleaned_data["url"],
                                           progress=form.cleaned_data["progress"])
            messages.success(request, "Webhook added: your jobs report to it from now on.")
            return redirect("account-webhooks")
    rows = [(e, e.deliveries.order_by("-id").first()) for e in endpoints]
    return render(request, "batches/account_webhooks.html", {"form": form, "rows": rows},
                  status=400 if request.method == "POST" else 200)


@login_required
@require_POST
def account_webhook_remove(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id, owner=request.user)
    remove_endpoint(endpoint)  # its log rows stay (endpoint set to null): the admin's log keeps them
    messages.success(request, f"Webhook {endpoint.url} removed.")
    return redirect("account-webhooks")


@login_required
@require_POST
def account_webhook_test(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id, owner=request.user)
    delivery = queue_ping(endpoint)
    messages.success(request, f"Test queued (delivery {delivery.pk}): the webhook worker sends a ping.")
    return redirect("account-webhooks")
