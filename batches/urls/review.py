"""Reviewing: the gallery and its actions, compare and statistics."""
from django.urls import path

from batches.views import compare, gallery, stats_page

urlpatterns = [
    path("gallery/", gallery.gallery, name="gallery"),
    path("images/<int:image_id>/review/", gallery.image_review, name="image-review"),
    path("images/<int:image_id>/star/", gallery.image_star, name="image-star"),
    path("images/bulk/", gallery.images_bulk, name="images-bulk"),
    path("images/zip/", gallery.images_zip, name="images-zip"),
    path("images/refinish/", gallery.images_refinish, name="images-refinish"),
    path("jobs/<int:job_id>/images.zip", gallery.job_zip, name="job-zip"),
    path("compare/", compare.compare, name="compare"),
    path("stats/", stats_page.stats, name="stats"),
]
