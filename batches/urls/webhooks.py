"""The signed-in user's standing webhooks."""
from django.urls import path

from batches.views import webhooks

urlpatterns = [
    path("account/webhooks/", webhooks.account_webhooks, name="account-webhooks"),
    path("account/webhooks/<int:endpoint_id>/remove/", webhooks.account_webhook_remove, name="account-webhook-remove"),
    path("account/webhooks/<int:endpoint_id>/test/", webhooks.account_webhook_test, name="account-webhook-test"),
]
