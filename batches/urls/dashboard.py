"""Submitting and watching jobs, the queue's controls, and the image files."""
from django.urls import path

from batches.views import history, images, jobs, queue

urlpatterns = [
    path("", queue.queue_page, name="queue"),
    path("queue/pause/", queue.queue_pause, name="queue-pause"),
    path("queue/resume/", queue.queue_resume, name="queue-resume"),
    path("queue/cancel-queued/", queue.queue_cancel_queued, name="queue-cancel-queued"),
    path("jobs/", history.job_history, name="job-history"),
    path("jobs/new/", jobs.job_new, name="job-new"),
    path("jobs/<int:job_id>/", jobs.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/cancel/", jobs.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/stop/", jobs.job_stop, name="job-stop"),
    path("jobs/<int:job_id>/retry/", jobs.job_retry, name="job-retry"),
    path("jobs/<int:job_id>/requeue/", jobs.job_requeue, name="job-requeue"),
    path("jobs/<int:job_id>/priority/", jobs.job_priority, name="job-priority"),
    path("jobs/<int:job_id>/refinish/", jobs.job_refinish, name="job-refinish"),
    path("jobs/<int:job_id>/units/<int:unit_id>/preview.jpg", jobs.unit_preview, name="unit-preview"),
    path("images/<int:image_id>/", images.image_file, name="image-file"),
    path("images/<int:image_id>/thumb/", images.image_thumb, name="image-thumb"),
    path("images/<int:image_id>/sprite.png", images.image_sprite, name="image-sprite"),
    path("images/<int:image_id>/metadata/", images.image_metadata, name="image-metadata"),
]
