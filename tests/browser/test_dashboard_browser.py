"""The dashboard in a real browser, against daphne, a real qcluster and the simulator (60 ms/step).

Sign in with a typed password, submit a job through the form, watch it fill in without reloading,
and cancel a running job from the queue page. Each page is saved in test-output/screenshots/.
"""
from __future__ import annotations

import re
import time

import pytest

from batches.models import Job
from batches.services.submission import job_submit
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _watch(page, expression: str, until: str, *, timeout: float = 45.0) -> list:
    """Sample `expression` in the page until `until` is true; return the distinct values seen."""
    seen: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if not seen or seen[-1] != value:
            seen.append(value)
        if page.evaluate(until):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {until!r}; saw {seen}")


def test_an_artist_signs_in_submits_a_job_and_watches_it_fill_in(browser, stack, shot, settings,
                                                                 django_user_model):
    # daphne checks passwords with the default hashers, not the fast test one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    django_user_model.objects.create_user("mira", password="sprites-all-day")
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)

    page.goto("/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("mira")
    page.get_by_label("Password").fill("sprites-all-day")
    shot(page, "login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(stack.base_url + "/")
    assert page.locator(".who").inner_text().startswith("mira")
    page.wait_for_selector("#live-status[data-state='live']")
    shot(page, "queue-empty")

    page.keyboard.press("n")  # the queue page's shortcut for a new job
    page.wait_for_url("**/jobs/new/")
    page.get_by_label("Prompts", exact=True).fill("pixel art knight, side view\npixel art slime, idle")
    page.get_by_label("Profile").select_option("speed")
    assert page.get_by_label("Batch size").input_value() == "8"  # the profile filled in its defaults
    page.get_by_label("Images per prompt").fill("6")
    page.get_by_label("Batch size").select_option("1")  # ... which stay editable
    page.get_by_label("Steps").fill("0")
    page.get_by_label("Width").fill("100")
    page.get_by_label("Priority").select_option("high")
    page.get_by_role("button", name="Queue job").click()
    # Both mistakes come back at once, each next to its field, and nothing was queued.
    page.wait_for_selector("#form-errors")
    assert "between 1 and 150" in page.locator("#field-steps .field-errors").inner_text()
    assert "multiple of 8" in page.locator("#field-width .field-errors").inner_text()
    assert page.get_by_label("Prompts", exact=True).input_value().startswith("pixel art knight")
    assert not Job.objects.exists()
    shot(page, "form-errors")
    page.get_by_label("Steps").fill("8")
    page.get_by_label("Width").fill("64")
    page.get_by_label("Height").fill("64")
    assert "12 images" in page.locator("#job-summary").inner_text()
    shot(page, "form")
    page.keyboard.press("Control+Enter")

    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    job = Job.objects.get()
    assert page.url.endswith(f"/jobs/{job.pk}/") and job.priority_name == "high" and job.images_planned == 12
    page.evaluate("window.__notReloaded = true")
    # The bar and the running unit's step counter, watched together (one after the other, a slow
    # machine could see the first six units go by before looking at the steps).
    seen = _watch(page, "[Number(document.getElementById('job-progress').dataset.done), "
                        "(document.querySelector('[data-step-unit] [data-field=step]') || {}).textContent || '']",
                  "document.querySelectorAll('#job-images .tile').length >= 6")
    counts = [done for i, (done, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != done]
    steps = [step for _, step in seen]
    shot(page, "job-running")
    _watch(page, "document.querySelectorAll('#job-images .tile').length",
           "document.querySelector('#job-state .status').textContent.trim() === 'completed'")
    assert page.evaluate("window.__notReloaded") is True  # all of it arrived live
    assert len(set(counts)) >= 3 and counts == sorted(counts), counts  # the bar advanced in steps
    assert any(s not in ("", "0") for s in steps), steps  # the running unit's steps moved
    # The status changes at once; the last tiles come by a fetch the page debounces (150 ms).
    page.wait_for_function("document.querySelectorAll('#job-images .tile').length === 12", timeout=5_000)
    assert page.locator("#job-progress [data-bar=done]").evaluate("el => el.style.width") == "100%"
    thumb = page.locator("#job-images .tile img").first
    assert thumb.evaluate("el => getComputedStyle(el).imageRendering") == "pixelated"
    assert thumb.evaluate("el => el.naturalWidth") == 64
    shot(page, "job-done")

    page.goto("/")
    assert page.locator(f"#recent-rows [data-job='{job.pk}'] .status").inner_text() == "completed"
    shot(page, "queue-after")
    context.close()


def test_an_artist_cancels_a_running_job_and_sees_it_cancelled(signed_in_page, stack, shot):
    page = signed_in_page
    page.goto("/")
    page.wait_for_selector("#live-status[data-state='live']")
    job = job_submit(owner=page.user, prompts=["pixel art dragon"], count=40, batch_size=1, steps=10, width=64,
                     height=64, client=None)
    waiting = job_submit(owner=page.user, prompts=["pixel art coin"], count=4, batch_size=4, steps=4, width=64,
                         height=64, priority="low", client=None)
    row = page.locator(f"#job-row-{job.pk}")
    # The new job appears and starts running with no reload.
    page.wait_for_selector(f"#job-row-{job.pk}[data-status='running']")
    page.wait_for_function(f"Number(document.querySelector('#job-row-{job.pk}').dataset.done) >= 2")
    assert page.locator(f"#job-row-{waiting.pk}").is_visible()
    assert row.locator("[data-step-unit]").count() == 1
    shot(page, "queue-running")

    row.get_by_role("button", name=f"Cancel job {job.pk}").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Cancel job").click()  # DGX.confirm's dialog
    page.wait_for_selector(f"#recent-rows [data-job='{job.pk}'] .status-cancelled")
    # The running rows and the finished rows are two partials refreshed side by side.
    page.wait_for_selector(f"#job-row-{job.pk}", state="detached", timeout=5_000)
    wait_until(lambda: Job.objects.get(pk=job.pk).finished_at, timeout=20, message="the cancel to finish")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and 0 < job.images_done < 40
    shot(page, "queue-cancelled")

    page.goto(f"/jobs/{job.pk}/")
    assert page.locator("#job-state .status").inner_text() == "cancelled"
    assert page.locator("#job-images .tile").count() == job.images_done
    shot(page, "job-cancelled")
