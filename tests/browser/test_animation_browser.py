"""An animation in a real browser: a job of the animation profile with five frames (images and
sprites written by the test), its frames reordered on the job page by keyboard and by drag and
drop, one dropped, the order saved, and "Export animation" pressed; the exported atlas and GIF are
then read from disk. Only daphne runs (no GPU worker, no ComfyUI: nothing here generates images).
Screenshots go to test-output/screenshots/.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image as PILImage

from batches.models import Image, Job, SheetExport
from batches.services import outputs, sheets
from tests.browser.conftest import open_signed_in
from tests.processes import start_daphne, wait_until
from tests.test_views_review import add_images, make_job, simple_specs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

FRAMES = 5
SPRITE = (16, 16)


@pytest.fixture
def site(tmp_path, worker_env):
    proc, base_url = start_daphne(tmp_path, worker_env)
    yield SimpleNamespace(base_url=base_url)
    proc.stop()


@pytest.fixture
def page(browser, site, session_cookie):
    context, page = open_signed_in(browser, site.base_url, session_cookie, height=1000)
    yield page
    context.close()


def walking_sprites(images: list[Image]) -> list[Image]:
    """A little figure on a transparent ground, one step further right in each frame (the worker's
    rows and files, written directly): the onion skin shows the step before."""
    for n, image in enumerate(images):
        picture = PILImage.new("RGBA", SPRITE, (0, 0, 0, 0))
        x = 2 + 2 * n
        for px in range(x, x + 5):
            for py in range(5, 14):
                picture.putpixel((px, py), (240, 180, 80, 255) if py < 9 else (70, 120, 220, 255))
        picture.putpixel((x + 1 + n % 3, 14), (40, 40, 40, 255))  # the feet move
        relative = f"batches/{image.job.output_dir}/sprites/{outputs.image_name(image.sequence, image.seed)}"
        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        outputs.atomic_write(outputs.output_root() / relative, buf.getvalue())
        Image.objects.filter(pk=image.pk).update(sprite_state=Image.Sprite.DONE, sprite_path=relative, sprite_run=1,
                                                 sprite_info={"size": list(SPRITE), "palette": ["#f0b450", "#4678dc"]})
        image.refresh_from_db()
    return images


def strip(page) -> list[int]:
    return [int(i) for i in page.eval_on_selector_all("#frame-strip li[data-id]", "els => els.map(e => e.dataset.id)")]


def frame(page, image_id: int):
    return page.locator(f'#frame-strip li[data-id="{image_id}"]')


def test_an_artist_arranges_frames_by_keyboard_and_drag_and_exports_the_animation(page, shot):
    job = make_job(page.user, profile="animation", status=Job.Status.COMPLETED)
    images = walking_sprites(add_images(job, simple_specs(FRAMES), write=True))
    a, b, c, d, e = (i.pk for i in images)

    page.goto(f"/jobs/{job.pk}/")
    assert page.locator("#animation").get_attribute("open") is not None  # the animation profile: open
    assert strip(page) == [a, b, c, d, e]
    page.wait_for_function("() => document.getElementById('animation').dataset.frameId !== undefined"
                           " && document.getElementById('anim-canvas').width > 0")

    # Keyboard: a moves two places later.
    frame(page, a).click()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert strip(page) == [b, c, a, d, e]
    assert page.evaluate("() => document.activeElement.dataset.id") == str(a)  # it keeps the focus

    # Drag and drop: e in front of b (the left edge of b).
    frame(page, e).drag_to(frame(page, b), target_position={"x": 4, "y": 30})
    assert strip(page) == [e, b, c, a, d]

    # Drop c with x: greyed, at the end. The page's own x (cancel the job) never hears it.
    page.evaluate("() => document.addEventListener('keydown', e => { if (e.key === 'x') window.pageHeardX = true; })")
    frame(page, c).click()
    page.keyboard.press("x")
    assert page.evaluate("() => window.pageHeardX") is None
    assert strip(page) == [e, b, a, d, c]
    assert frame(page, c).get_attribute("data-dropped") == "1" and "is-dropped" in frame(page, c).get_attribute("class")
    assert page.locator("#frame-strip").get_attribute("data-kept") == "4"

    page.locator("[data-frames-save]").click()
    page.wait_for_selector(".toast-success:has-text('Frame order saved: 4 frames play.')")
    assert [i.pk for i in sheets.frames_in_order(job)] == [e, b, a, d]

    # The player: onion skin on, playing at the job's fps, at a whole zoom.
    page.locator("#anim-onion").check()
    page.locator("[data-anim=play]").click()
    seen = set()
    for _ in range(40):
        seen.add(page.evaluate("() => document.getElementById('animation').dataset.frameId"))
        if len(seen) == 4:
            break
        page.wait_for_timeout(60)
    assert seen == {str(e), str(b), str(a), str(d)}  # every kept frame plays, the dropped one never
    width = page.evaluate("() => document.getElementById('anim-canvas').width")
    assert width % SPRITE[0] == 0 and width >= 4 * SPRITE[0]
    page.locator("[data-anim=play]").click()  # pause
    page.wait_for_function("() => document.getElementById('animation').dataset.playing === '0'")
    page.locator("[data-anim=next]").click()  # a frame with one before it: the onion skin shows
    page.locator("#animation").scroll_into_view_if_needed()
    player = Path(shot(page, "job-page"))
    page.locator("#animation").screenshot(path=str(player.with_name(player.name.replace("job-page", "player"))))

    page.locator("#anim-export-button").click()
    page.wait_for_selector(".toast-success:has-text('Exported animation_grid')")
    page.wait_for_selector("#job-sheets tr[data-kind=animation]")  # the Sheets card drew itself again
    export = wait_until(lambda: SheetExport.objects.filter(job=job, kind="animation").first(), timeout=10,
                        message="the animation export")
    files = {Path(f).name: outputs.resolve(f) for f in export.files}
    assert set(files) == {"animation_grid.png", "animation_grid.json", "animation_grid.gif", "animation_grid.apng.png"}
    atlas = json.loads(files["animation_grid.json"].read_text())
    by_id = {i.pk: Path(i.file_path).name for i in images}
    assert [f["filename"] for f in atlas["frames"]] == [by_id[i] for i in (e, b, a, d)]
    with PILImage.open(files["animation_grid.gif"]) as gif:
        assert gif.n_frames == 4
    link = page.locator(f'#job-sheets a[href$="/{export.pk}/animation_grid.gif"]')
    assert link.count() == 1
    shot(page, "job-page-exported")


def test_a_tileset_is_sorted_by_seam_score_previewed_3x3_and_its_selection_downloaded_as_a_sheet(page, shot):
    job = make_job(page.user, profile="tileset", status=Job.Status.COMPLETED)
    images = walking_sprites(add_images(job, simple_specs(3), write=True))
    for image, score in zip(images, (0.3, 0.0, 0.12)):
        Image.objects.filter(pk=image.pk).update(seam_score=score)
    best, middle, worst = images[1], images[2], images[0]

    page.goto(f"/gallery/?job={job.pk}&sort=seam")
    ids = [int(i) for i in page.eval_on_selector_all("#grid .gtile", "els => els.map(e => e.dataset.id)")]
    assert ids == [best.pk, middle.pk, worst.pk]
    assert "most seamless first" in page.locator("#sort-note").inner_text()
    assert page.locator(f"#img-{middle.pk} .gtile-seam").inner_text() == "seam 0.12"

    page.locator(f"#img-{best.pk} .gtile-open").click()
    page.wait_for_function("() => { const i = document.getElementById('viewer-img'); return i.complete && i.naturalWidth > 0; }")
    assert "Seam score" in page.locator("#viewer-meta").inner_text()
    page.keyboard.press("t")
    tile = page.evaluate("""() => { const t = document.getElementById('viewer-tile'), s = getComputedStyle(t);
        return {hidden: t.hidden, w: t.getBoundingClientRect().width, h: t.getBoundingClientRect().height,
                image: s.backgroundImage, size: s.backgroundSize, repeat: s.backgroundRepeat,
                zoom: Number(document.getElementById('viewer').dataset.shownZoom)}; }""")
    assert not tile["hidden"] and "sprite.png" in tile["image"] and tile["repeat"] == "repeat"
    assert tile["zoom"] >= 1 and tile["w"] == 3 * SPRITE[0] * tile["zoom"] and tile["h"] == 3 * SPRITE[1] * tile["zoom"]
    assert tile["size"] == f"{SPRITE[0] * tile['zoom']}px {SPRITE[1] * tile['zoom']}px"
    assert page.locator("#viewer-img").is_hidden()
    shot(page, "viewer-tile-3x3")
    page.keyboard.press("t")
    assert page.locator("#viewer-img").is_visible() and page.locator("#viewer-tile").is_hidden()
    page.keyboard.press("Escape")

    for image in (best, worst):
        page.locator(f"#img-{image.pk} .gtile-check").check()
    with page.expect_download() as download:
        page.locator("#selbar [data-sheet]").click()
    path = download.value.path()
    with zipfile.ZipFile(path) as archive:
        atlas = json.loads(archive.read(f"{job.output_dir}/sheets/selection_2.json"))
    assert [f["filename"] for f in atlas["frames"]] == [Path(i.file_path).name for i in (worst, best)]  # by sequence
    assert SheetExport.objects.filter(job=job, name="selection_2").exists()  # their own job: kept on it too
