"""The artist's workbench in a real browser (daphne, a real qcluster, the simulator with previews):
a live preview on the job page while a unit samples, and confirmations that say what they queue.

Screenshots go to test-output/screenshots/.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from batches.models import Job
from batches.services.submission import job_submit
from tests.processes import start_daphne, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stack(tmp_path, worker_env, simulator_factory, qcluster_factory):
    """As conftest's stack, with ComfyUI previews on and slow steps (a unit samples for ~2 s)."""
    _, comfyui_url = simulator_factory("--step-ms", "250", "--preview-method", "auto")
    qcluster_factory(comfyui_url)
    proc, base_url = start_daphne(tmp_path, {**worker_env, "COMFYUI_URL": comfyui_url})
    yield SimpleNamespace(base_url=base_url, comfyui_url=comfyui_url, daphne=proc)
    proc.stop()


def _overlaps(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_the_job_page_shows_the_running_units_live_preview(signed_in_page, shot):
    page = signed_in_page
    job = job_submit(owner=page.user, prompts=["pixel art dragon"], count=8, batch_size=4, steps=8, width=64,
                     height=64, client=None)
    page.goto(f"/jobs/{job.pk}/")
    page.wait_for_selector("#live-status[data-state='live']")
    page.evaluate("window.__notReloaded = true")
    # The preview appears while the unit samples, fetched by URL on a `preview` event.
    page.wait_for_function(
        "(() => { const img = document.querySelector('#job-state img[data-preview-unit]');"
        " return img && img.complete && img.naturalWidth > 0 && !img.closest('.live-preview').hidden; })()",
        timeout=30_000)
    first = page.locator("#job-state img[data-preview-unit]").get_attribute("src")
    assert f"/jobs/{job.pk}/units/" in first and "/preview.jpg?v=" in first
    shot(page, "job-preview")
    # It moves on with the sampler: a later step replaces it (the newest only, never a queue).
    page.wait_for_function(
        f"(() => {{ const img = document.querySelector('#job-state img[data-preview-unit]');"
        f" return img && img.getAttribute('src') !== {first!r}; }})()", timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    wait_until(lambda: Job.objects.get(pk=job.pk).status in Job.FINISHED, timeout=60, message="the job to finish")


def test_requeue_asks_with_the_image_count_and_cancelling_queues_nothing(signed_in_page, shot):
    page = signed_in_page
    job = job_submit(owner=page.user, prompts=["pixel art coin"], count=4, batch_size=4, steps=2, width=64,
                     height=64, client=None)
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.COMPLETED, timeout=60,
               message="the job to complete")
    page.goto(f"/jobs/{job.pk}/")
    page.wait_for_selector("#live-status[data-state='live']")
    requeue = page.get_by_role("button", name="Requeue…")
    assert "btn-primary" not in requeue.get_attribute("class")  # no longer a one-click primary button

    requeue.click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert "4 images" in dialog.inner_text() and f"job {job.pk}" in dialog.inner_text()
    shot(page, "requeue-confirm")
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    page.wait_for_timeout(500)
    assert Job.objects.count() == 1  # cancelling the dialog queued nothing

    requeue.click()
    dialog.wait_for(state="visible")
    dialog.get_by_role("button", name="Requeue 4 images").click()
    wait_until(lambda: Job.objects.count() == 2, timeout=10, message="the requeued job")
    page.wait_for_timeout(300)
    assert Job.objects.count() == 2  # exactly one job queued
    assert Job.objects.exclude(pk=job.pk).get().requeued_from_id == job.pk

    # The new job's page opens and a toast says so, without covering the Parameters panel.
    new = Job.objects.exclude(pk=job.pk).get()
    page.wait_for_url(f"**/jobs/{new.pk}/")
    toast = page.locator("#toasts .toast").first
    toast.wait_for(state="visible")
    assert f"requeued as job {new.pk}" in toast.inner_text()
    params = page.locator(".params-card")
    if params.count():
        assert not _overlaps(toast.bounding_box(), params.bounding_box())
    shot(page, "requeue-toast")


def test_cancelling_from_the_queue_asks_in_the_dialog_with_the_images_left(signed_in_page, shot):
    page = signed_in_page
    page.goto("/")
    page.wait_for_selector("#live-status[data-state='live']")
    job = job_submit(owner=page.user, prompts=["pixel art bat"], count=40, batch_size=4, steps=8, width=64,
                     height=64, client=None)
    page.wait_for_selector(f"#job-row-{job.pk}[data-status='running']", timeout=30_000)
    page.locator(f"#job-row-{job.pk}").get_by_role("button", name=f"Cancel job {job.pk}").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert "image" in dialog.inner_text() and "not yet made" in dialog.inner_text()
    shot(page, "cancel-confirm")
    dialog.get_by_role("button", name="Cancel job").click()
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED, timeout=20, message="the cancel")


def test_the_gallery_loads_older_tiles_as_you_scroll_and_remembers_the_tile_size(signed_in_page, shot):
    from batches.models import Unit
    from batches.services.review import PAGE_SIZE
    from tests.test_gallery_tiles import make_images

    page = signed_in_page
    job = make_images(page.user, PAGE_SIZE + 12)
    # Rows only: keep the worker off this job's units.
    Unit.objects.filter(job=job).update(status=Unit.Status.CANCELLED)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)
    page.goto("/gallery/")
    assert page.locator("#grid .gtile").count() == PAGE_SIZE
    tile = page.locator("#grid .gtile").first
    assert tile.locator(".gtile-prompt").get_attribute("title").startswith("pixel art knight with a very long cape")
    seed = tile.locator(".gtile-seed")
    assert seed.evaluate("el => el.scrollWidth <= el.clientWidth + 1")  # the seed is not cut off

    page.locator(".rv-pager").scroll_into_view_if_needed()
    page.wait_for_function(f"document.querySelectorAll('#grid .gtile').length === {PAGE_SIZE + 12}")
    assert page.url.endswith("/gallery/")  # appended in place, no navigation
    page.wait_for_selector("#older-link", state="detached")
    shot(page, "gallery-scrolled")

    page.get_by_role("button", name="L", exact=True).click()
    assert "tiles-l" in page.locator("#grid").get_attribute("class")
    page.reload()
    assert "tiles-l" in page.locator("#grid").get_attribute("class")
    assert page.get_by_role("button", name="L", exact=True).get_attribute("aria-pressed") == "true"
    shot(page, "gallery-large")
