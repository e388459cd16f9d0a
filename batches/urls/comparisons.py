"""Comparisons: the grid, its exports, cancelling, and blind judging (issue 14)."""
from django.urls import path

from batches.views import comparisons

urlpatterns = [
    path("comparisons/<int:comparison_id>/", comparisons.comparison_detail, name="comparison-detail"),
    path("comparisons/<int:comparison_id>/grid.png", comparisons.comparison_png, name="comparison-png"),
    path("comparisons/<int:comparison_id>/images.zip", comparisons.comparison_zip, name="comparison-zip"),
    path("comparisons/<int:comparison_id>/cancel/", comparisons.comparison_cancel, name="comparison-cancel"),
    path("comparisons/<int:comparison_id>/judge/", comparisons.comparison_judge, name="comparison-judge"),
    path("comparisons/<int:comparison_id>/vote/", comparisons.comparison_vote, name="comparison-vote"),
]
