"""Sheets, animations and tilesets: a job's exports and their files, its animation, the gallery's sheet."""
from django.urls import path

from batches.views import sheets

urlpatterns = [
    path("jobs/<int:job_id>/sheets/", sheets.job_sheets_export, name="job-sheets-export"),
    path("jobs/<int:job_id>/sheets/<int:export_id>/<str:name>", sheets.job_sheet_file, name="job-sheet-file"),
    path("jobs/<int:job_id>/animation/", sheets.job_animation, name="job-animation"),
    path("jobs/<int:job_id>/frames/", sheets.job_frames, name="job-frames"),
    path("images/sheet/", sheets.images_sheet, name="images-sheet"),
]
