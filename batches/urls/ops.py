"""For monitors: health (no sign-in) and Prometheus metrics (token or allowed address)."""
from django.urls import path

from batches.views import ops

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("metrics", ops.metrics_view, name="metrics"),
]
