"""The job history in a real browser: every job newest first with its thumbnails, searched,
filtered, paged, and a job opened from it. Screenshots go to test-output/screenshots/.
"""
from __future__ import annotations

import pytest

from batches.models import Job
from tests.browser.test_review_browser import images_loaded, submit, wait_finished
from tests.test_views_review import make_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_an_artist_finds_an_old_job_in_the_history_and_opens_it(signed_in_page, shot):
    page = signed_in_page
    real = wait_finished(submit(page.user, name="knights for the castle", count=2))
    for n in range(52):  # more than a page of older-looking rows, a few of them failed
        make_job(page.user, name=f"filler {n}", prompts=[f"pixel tree {n}"],
                 status=Job.Status.FAILED if n % 10 == 0 else Job.Status.COMPLETED)

    page.goto("/")
    page.locator("nav.mainnav a", has_text="History").click()
    page.wait_for_url("**/jobs/")
    assert page.locator('nav.mainnav a[aria-current="page"]').inner_text() == "History"
    rows = page.locator("#history tbody tr")
    assert rows.count() == 50
    assert rows.first.get_attribute("data-job") != str(real.pk)  # newest first: the fillers came later
    shot(page, "history")

    # Older: the second page ends with the real job, its four thumbnails drawn.
    page.locator('a[rel="next"]').click()
    page.wait_for_url("**before=*")
    last = page.locator(f"#history-job-{real.pk}")
    assert last.is_visible()
    assert last.locator(".history-thumbs img").count() == 4
    images_loaded(page, f"#history-job-{real.pk} .history-thumbs img")
    assert page.locator('a[rel="prev"]').is_visible()
    shot(page, "history-older")

    # Search by prompt text: only the real job's prompts mention a knight.
    page.fill("input[name=q]", "knight")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**q=knight*")
    assert [r.get_attribute("data-job") for r in page.locator("#history tbody tr").all()] == [str(real.pk)]

    # Filter by status (the select submits itself), keeping nothing else.
    page.goto("/jobs/")
    page.select_option("select[name=status]", "failed")
    page.wait_for_url("**status=failed*")
    statuses = page.locator("#history tbody .badge.status").all_inner_texts()
    assert len(statuses) == 6 and set(statuses) == {"failed"}
    shot(page, "history-failed")

    # Open a job from its row.
    page.goto("/jobs/?q=castle")
    page.locator(f"#history-job-{real.pk} a", has_text=f"#{real.pk}").click()
    page.wait_for_url(f"**/jobs/{real.pk}/")
    assert page.locator("h1").first.is_visible()
    shot(page, "history-job")
