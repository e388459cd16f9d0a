"""Review in a real browser: new sprites arrive in the gallery live, two finished jobs are compared
side by side, an image is approved and zoomed with the keyboard. Screenshots of each page go to
test-output/screenshots/.
"""
from __future__ import annotations

import pytest

from batches.models import Image, Job
from batches.services.submission import job_submit
from tests.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PROMPTS = ["pixel art knight with a blue shield", "pixel art green slime"]


def submit(user, **params):
    defaults = {"prompts": PROMPTS, "count": 2, "profile": "speed", "batch_size": 1, "width": 64, "height": 64,
                "steps": 4, "seed": 4242, "cfg": 7.0, "client": None}
    return job_submit(owner=user, **{**defaults, **params})


def wait_finished(job: Job, timeout: float = 45.0) -> Job:
    wait_until(lambda: Job.objects.filter(pk=job.pk, status__in=Job.FINISHED).exists(), timeout=timeout,
               message=f"job {job.pk} to finish")
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED, job.error
    return job


def images_loaded(page, selector: str) -> None:
    page.wait_for_function(
        "s => { const a = [...document.querySelectorAll(s)]; return a.length && a.every(i => i.complete && i.naturalWidth > 0); }",
        arg=selector)


def test_an_artist_compares_two_jobs_and_approves_an_image_with_the_keyboard(signed_in_page, shot):
    page = signed_in_page
    first = wait_finished(submit(page.user, name="cfg 7"))

    # The gallery is open when the second job runs: its sprites appear at the top without a reload.
    page.goto("/gallery/")
    tiles = page.locator("#grid .gtile")
    assert tiles.count() == 4
    second = submit(page.user, name="cfg 11 dpmpp", cfg=11.0, sampler="dpmpp_2m")
    page.wait_for_function("() => document.querySelectorAll('#grid .gtile').length === 8", timeout=30_000)
    second = wait_finished(second)
    newest = Image.objects.filter(job=second).order_by("-id").first()
    assert tiles.first.get_attribute("data-id") == str(newest.pk)

    # Compare: two columns, rows on the same seeds, the differing parameters highlighted.
    page.goto(f"/compare/?jobs={first.pk},{second.pk}")
    assert page.locator(".cmp-colhead[data-job]").count() == 2
    assert page.locator("tr.differs[data-param=cfg]").is_visible()
    assert page.locator("tr.differs[data-param=sampler]").is_visible()
    assert page.locator("tr.same[data-param=steps]").count() == 1
    assert page.locator(".cmp-label").first.inner_text().startswith("seed 4242")
    assert page.locator(".cmp-img").count() == 8 and page.locator(".cmp-empty").count() == 0
    images_loaded(page, ".cmp-img")
    page.keyboard.press("4")  # one zoom for every column
    page.wait_for_function("() => [...document.querySelectorAll('.cmp-img')].every(i => i.getBoundingClientRect().width === 256)")
    page.keyboard.press("g")
    page.wait_for_function(
        "() => document.querySelectorAll('.cmp-frame .pixel-grid:not([hidden])').length === 8", timeout=5_000)
    shot(page, "compare-4x")
    page.keyboard.press("f")
    shot(page, "compare")

    # Gallery viewer: approve with "a", zoom with "4".
    page.goto("/gallery/")
    images_loaded(page, "#grid .gtile img")
    shot(page, "gallery")
    target = page.locator("#grid .gtile").nth(2)
    image_id = int(target.get_attribute("data-id"))
    target.locator(".gtile-open").click()
    viewer = page.locator("#viewer")
    assert viewer.is_visible()
    images_loaded(page, "#viewer-img")
    page.keyboard.press("a")
    page.wait_for_selector("#viewer[data-review=approved] .rv-state-approved")
    wait_until(lambda: Image.objects.get(pk=image_id).review == Image.Review.APPROVED, timeout=10,
               message="the approval to reach the database")
    assert "review-approved" in target.get_attribute("class")
    page.keyboard.press("4")
    size = page.evaluate("() => { const i = document.getElementById('viewer-img');"
                         " return [i.getBoundingClientRect().width, i.naturalWidth]; }")
    assert size == [256, 64]
    page.keyboard.press("g")
    assert page.locator("#viewer-grid").is_visible()
    shot(page, "viewer")
    page.keyboard.press("Escape")
    assert viewer.is_hidden()

    # Bulk: select the next two tiles with the keyboard, reject them in one go.
    for key in ("j", "x", "j", "x"):
        page.keyboard.press(key)
    assert page.locator("#selbar [data-sel-count]").inner_text() == "2"
    chosen = [int(page.locator("#grid .gtile").nth(i).get_attribute("data-id")) for i in (3, 4)]
    page.locator("#selbar button[value=reject]").click()
    page.wait_for_function("() => document.querySelectorAll('#grid .gtile.review-rejected').length === 2")
    assert sorted(Image.objects.filter(review=Image.Review.REJECTED).values_list("pk", flat=True)) == sorted(chosen)
    shot(page, "gallery-reviewed")

    # After a reload the approval is still shown (the page is drawn from the rows).
    page.goto("/gallery/?review=approved")
    assert [t.get_attribute("data-id") for t in page.locator("#grid .gtile").all()] == [str(image_id)]

    page.goto(f"/gallery/?job={second.pk}")
    assert page.locator("#grid .gtile").count() == 4
    assert page.locator(f".rv-jobbar a[href='/jobs/{second.pk}/images.zip']").is_visible()
    shot(page, "gallery-job")

    page.goto("/stats/")
    assert page.locator(".st-bar").count() >= 1
    assert page.locator("#profile-table tr[data-profile=speed][data-batch='1']").is_visible()
    shot(page, "stats")
