"""The one pixel viewer in a real browser: the gallery's viewer zooms at the cursor and pans by
dragging, the job page opens the same viewer, "New job like this" keeps the seeds so compare lines
the two jobs up seed by seed with the baseline first, and compare's panes zoom and pan as one.
Screenshots go to test-output/screenshots/.
"""
from __future__ import annotations

import pytest

from batches.models import Image, Job, Unit
from batches.services.submission import job_submit
from tests.browser.test_review_browser import images_loaded, wait_finished
from tests.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PROMPTS = ["pixel art knight with a blue shield", "pixel art green slime"]


def submit(user, **params) -> Job:
    defaults = {"prompts": PROMPTS, "count": 2, "profile": "speed", "batch_size": 1, "width": 64, "height": 64,
                "steps": 4, "cfg": 7.0, "client": None, "finish": False}
    return job_submit(owner=user, **{**defaults, **params})


def view_of(page, stage: str) -> dict:
    """Where the picture is: the stage's translate and zoom (pixelview.js) and the image's box."""
    return page.evaluate("""s => { const st = document.querySelector(s), img = st.querySelector('img');
        const r = st.getBoundingClientRect(), i = img.getBoundingClientRect();
        return {z: Number(st.dataset.shownZoom), tx: Number(st.dataset.tx), ty: Number(st.dataset.ty),
                left: r.left, top: r.top, imgLeft: i.left, imgTop: i.top, imgW: i.width,
                transform: img.closest('.pv-canvas').style.transform}; }""", stage)


def pixel_under(view: dict, x: float, y: float) -> tuple[float, float]:
    """The picture pixel under the screen point (x, y), from the translate and the zoom."""
    return (x - view["left"] - view["tx"]) / view["z"], (y - view["top"] - view["ty"]) / view["z"]


def test_the_gallery_viewer_zooms_at_the_cursor_and_pans_by_dragging(signed_in_page, shot):
    page = signed_in_page
    wait_finished(submit(page.user, seed=4242))
    page.goto("/gallery/")
    page.locator("#grid .gtile").first.locator(".gtile-open").click()
    images_loaded(page, "#viewer-img")
    page.keyboard.press("2")
    before = view_of(page, "#viewer-stage")
    assert before["z"] == 2 and before["imgW"] == 128
    # The transform is where the picture is drawn.
    assert before["transform"] == f"translate({before['tx']:g}px, {before['ty']:g}px)"
    assert abs(before["imgLeft"] - (before["left"] + before["tx"])) < 0.01

    x, y = before["imgLeft"] + 37.0, before["imgTop"] + 91.0  # over picture pixel (18.5, 45.5)
    px, py = pixel_under(before, x, y)
    page.mouse.move(x, y)
    page.mouse.wheel(0, -120)
    page.wait_for_function("() => document.getElementById('viewer-stage').dataset.shownZoom === '3'")
    after = view_of(page, "#viewer-stage")
    qx, qy = pixel_under(after, x, y)
    assert int(qx) == int(px) and int(qy) == int(py)  # the same pixel under the cursor
    assert abs(qx - px) <= 0.5 / 3 + 1e-9 and abs(qy - py) <= 0.5 / 3 + 1e-9  # within the whole-pixel rounding

    page.keyboard.press("+")  # the keyboard zooms at the cursor too
    page.wait_for_function("() => document.getElementById('viewer-stage').dataset.shownZoom === '4'")
    four = view_of(page, "#viewer-stage")
    rx, ry = pixel_under(four, x, y)
    assert int(rx) == int(px) and int(ry) == int(py)
    assert four["imgW"] == 256

    # Dragging moves the picture by the drag's distance, and does not close the viewer.
    page.mouse.down()
    page.mouse.move(x + 60, y + 35, steps=6)
    page.mouse.up()
    dragged = view_of(page, "#viewer-stage")
    assert (dragged["tx"] - four["tx"], dragged["ty"] - four["ty"]) == (60, 35)
    assert abs(dragged["imgLeft"] - four["imgLeft"] - 60) < 0.01 and dragged["z"] == 4
    assert page.locator("#viewer").is_visible()

    page.keyboard.press("g")
    assert page.locator("#viewer-grid").is_visible()
    page.keyboard.press("b")
    assert page.locator("#viewer-stage").get_attribute("data-bg") == "solid"
    assert "pv-solid" in page.locator("#viewer-canvas").get_attribute("class")
    shot(page, "viewer-zoomed-solid")
    page.keyboard.press("b")
    page.keyboard.press("0")  # fit: the largest whole zoom that fits (originals stop at 8x)
    fit = view_of(page, "#viewer-stage")
    assert fit["z"] == 8 and fit["imgW"] == 512
    page.keyboard.press("Escape")
    assert page.locator("#viewer").is_hidden()


def test_new_job_like_this_keeps_the_seeds_and_compare_shows_them_side_by_side(signed_in_page, shot):
    page = signed_in_page
    first = wait_finished(submit(page.user, name="baseline"))  # random seeds: one per unit
    first_seeds = list(Unit.objects.filter(job=first).order_by("index").values_list("seed", flat=True))
    assert first.base_seed is None and len(set(first_seeds)) == 4

    # The job page opens its images in the same viewer.
    page.goto(f"/jobs/{first.pk}/")
    page.locator("#job-images .tile").first.click()
    page.wait_for_selector("#viewer:not([hidden])")
    images_loaded(page, "#viewer-img")
    page.keyboard.press("4")
    assert page.evaluate("() => document.getElementById('viewer-img').getBoundingClientRect().width") == 256
    page.keyboard.press("x")  # the page's "cancel" key does nothing behind the viewer
    shot(page, "job-viewer")
    page.keyboard.press("Escape")
    assert page.locator("#viewer").is_hidden()
    assert Job.objects.get(pk=first.pk).status == Job.Status.COMPLETED

    page.get_by_role("link", name="New job like this").click()
    page.wait_for_url("**/jobs/new/?from=*")
    assert page.get_by_label("Seed", exact=True).input_value() == str(first_seeds[0])
    assert page.get_by_label("Same seeds").is_checked()
    page.get_by_label("CFG").fill("11")
    page.get_by_label("Name").fill("cfg 11")
    shot(page, "form-same-seeds")
    page.locator("#submit-job").click()
    page.wait_for_url("**/jobs/*/")
    second = Job.objects.exclude(pk=first.pk).get()
    assert second.cfg == 11.0
    assert list(Unit.objects.filter(job=second).order_by("index").values_list("seed", flat=True)) == first_seeds
    wait_finished(second)

    # Asked newest first, compare still puts the baseline in the first column.
    page.goto(f"/compare/?jobs={second.pk},{first.pk}")
    heads = page.locator(".cmp-colhead[data-job]")
    assert [heads.nth(i).get_attribute("data-job") for i in range(2)] == [str(first.pk), str(second.pk)]
    assert heads.first.locator(".cmp-baseline").is_visible()
    assert page.locator("tr.differs[data-param=cfg]").is_visible()
    assert page.locator(".cmp-empty").count() == 0 and page.locator(".cmp-img").count() == 8
    labels = [page.locator(".cmp-label").nth(i).inner_text() for i in range(4)]
    assert all(label.startswith("seed ") for label in labels)
    assert {int(label.split()[1]) for label in labels} == set(first_seeds)
    for row in range(4):  # the same seed in both columns of every row
        cells = page.locator(f'.cmp-cell[data-row="{row}"]')
        assert cells.nth(0).get_attribute("data-seed") == cells.nth(1).get_attribute("data-seed")
    images_loaded(page, ".cmp-img")
    shot(page, "compare-same-seeds")

    # A prompt heading scrolled to lands below the sticky top bar, toolbar and column heads.
    page.evaluate("() => document.querySelectorAll('.cmp-prompt')[1].scrollIntoView()")
    covered = page.evaluate("""() => { const h = document.querySelectorAll('.cmp-prompt')[1].getBoundingClientRect();
        const head = document.querySelector('.cmp-colhead[data-job]').getBoundingClientRect();
        return h.top < head.bottom; }""")
    assert not covered

    # Approve from compare: the gallery's endpoint, the cell follows.
    cell = page.locator('.cmp-cell[data-row="0"]').nth(1)
    image_id = int(cell.get_attribute("data-id"))
    cell.locator("button[data-review=approved]").click()
    page.wait_for_function(f"() => document.querySelector('.cmp-cell[data-id=\"{image_id}\"]').dataset.review === 'approved'")
    assert Image.objects.get(pk=image_id).review == Image.Review.APPROVED
    cell.locator("button[data-star]").click()
    wait_until(lambda: Image.objects.get(pk=image_id).starred, timeout=10, message="the star to be saved")


def test_compare_panes_zoom_and_pan_together(signed_in_page, shot):
    page = signed_in_page
    first = wait_finished(submit(page.user, seed=77, name="cfg 7"))
    second = wait_finished(submit(page.user, seed=77, cfg=10.0, name="cfg 10"))
    page.goto(f"/compare/?jobs={first.pk},{second.pk}")
    page.locator(".view-switch [data-view=original]").click()
    images_loaded(page, ".cmp-img")
    page.keyboard.press("2")
    frames = page.locator(".cmp-frame")
    assert frames.count() == 8

    def panes(row: str = "0") -> list[dict]:
        return page.evaluate("""row => [...document.querySelectorAll('.cmp-cell[data-row="' + row + '"] .cmp-frame')].map(f =>
                ({z: Number(f.dataset.shownZoom), tx: Number(f.dataset.tx), ty: Number(f.dataset.ty),
                  w: f.querySelector('img').getBoundingClientRect().width}))""", row)

    start = panes()
    assert [p["z"] for p in start] == [2, 2] and start[0]["w"] == 128

    # The wheel over the second pane zooms every pane, at the same place.
    frames.nth(1).evaluate("f => f.scrollIntoView({block: 'center'})")
    box = frames.nth(1).bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
    page.mouse.wheel(0, -120)
    page.wait_for_function("() => [...document.querySelectorAll('.cmp-frame')].every(f => f.dataset.shownZoom === '3')")
    zoomed = panes()
    assert zoomed[0] == zoomed[1] and zoomed[0]["w"] == 192
    assert panes("3")[0] == zoomed[0]  # every row, not only the one under the cursor

    # Dragging one pane pans them all by the same distance.
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 40, y + 25, steps=5)
    page.mouse.up()
    dragged = panes()
    assert dragged[0] == dragged[1]
    assert (dragged[1]["tx"] - zoomed[1]["tx"], dragged[1]["ty"] - zoomed[1]["ty"]) == (-40, 25)
    page.keyboard.press("g")
    page.wait_for_function("() => document.querySelectorAll('.cmp-frame .pixel-grid:not([hidden])').length === 8")
    shot(page, "compare-panes-together")
    page.keyboard.press("f")
    fitted = panes()
    assert fitted[0] == fitted[1] and fitted[0]["z"] >= 1
