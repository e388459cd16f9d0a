"""Sprites in a real browser: a job's images become sprites (a real `manage.py sprite_worker`), the
gallery viewer switches between sprite and original, and the job is re-finished from its page with
the Game Boy palette. Screenshots go to test-output/screenshots/.
"""
from __future__ import annotations

import pytest
from PIL import Image as PILImage

from batches.models import Image, Job
from batches.services import outputs
from batches.services.submission import job_submit
from batches.sprites import load_palette
from tests.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SIZE = 256


def sprites_made(job: Job, run: int) -> bool:
    rows = list(job.images.values_list("sprite_state", "sprite_run"))
    return bool(rows) and all(state == Image.Sprite.DONE and r == run for state, r in rows)


def sprite_colors(image: Image) -> set[tuple[int, int, int]]:
    with PILImage.open(outputs.resolve(image.sprite_path)) as sprite:
        return {c[:3] for _, c in sprite.convert("RGBA").getcolors(1 << 16) if c[3] > 0}


def shown(page) -> dict:
    return page.evaluate("""() => { const i = document.getElementById('viewer-img');
        return {src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight, shownW: i.getBoundingClientRect().width,
                complete: i.complete, view: document.getElementById('viewer').dataset.view}; }""")


def wait_shown(page, part: str) -> dict:
    page.wait_for_function(
        "p => { const i = document.getElementById('viewer-img');"
        " return i.complete && i.naturalWidth > 0 && i.getAttribute('src').includes(p); }", arg=part)
    return shown(page)


def test_the_form_switches_finishing_defaults_with_the_profile(signed_in_page, shot):
    page = signed_in_page
    page.goto("/jobs/new/")
    assert page.get_by_label("Make sprites").is_checked()
    page.get_by_label("Profile").select_option("animation")
    assert page.get_by_label("One palette for the job").is_checked()  # animation frames share colours
    assert page.get_by_label("Cell").input_value() == "64x64" and page.get_by_label("Colours").input_value() == "16"
    page.get_by_label("Profile").select_option("tileset")
    assert page.get_by_label("Background").input_value() == "keep"
    assert not page.get_by_label("One palette for the job").is_checked()
    assert page.locator("#palette-upload").is_hidden()
    page.get_by_label("Palette", exact=True).select_option("upload")
    assert page.locator("#palette-upload").is_visible() and page.get_by_label("Colours").is_disabled()
    shot(page, "form-finishing")


def test_an_artist_views_sprites_and_refinishes_a_job_with_the_game_boy_palette(signed_in_page, sprite_worker, shot):
    page = signed_in_page
    job = job_submit(owner=page.user, prompts=["pixel art knight with a blue shield"], count=4, profile="speed",
                     batch_size=4, width=SIZE, height=SIZE, steps=4, seed=4242, client=None)
    assert job.finish["colors"] == 32
    wait_until(lambda: Job.objects.filter(pk=job.pk, status=Job.Status.COMPLETED).exists(), timeout=45,
               message="the job to complete")
    page.goto(f"/gallery/?job={job.pk}")  # open before the sprites exist: they arrive live
    page.wait_for_selector("#live-status[data-state='live']")
    assert page.locator("#grid .gtile").count() == 4
    assert page.locator(".gtile[data-sprite-state=pending] .sprite-badge").first.is_visible()  # "finishing…"

    sprite_worker()
    wait_until(lambda: sprites_made(job, 0), timeout=45, message="every sprite made")  # the first run is 0
    # sprite_ready swapped every tile to its sprite without a reload, at a whole scale.
    page.wait_for_function("() => [...document.querySelectorAll('#grid .gtile')].every(t =>"
                           " t.classList.contains('is-sprite') && t.querySelector('img').src.includes('sprite.png')"
                           " && t.dataset.palette)", timeout=20_000)
    page.wait_for_function("() => [...document.querySelectorAll('#grid .gtile img')].every(i => i.complete && i.naturalWidth > 0)")
    scales = page.evaluate("() => [...document.querySelectorAll('#grid .gtile')].map(t => {"
                           " const i = t.querySelector('img'); return [i.getBoundingClientRect().width, i.naturalWidth]; })")
    assert all(shown_w % natural == 0 and shown_w >= natural for shown_w, natural in scales), scales
    assert page.locator(".gtile .sprite-badge:visible").count() == 0
    shot(page, "gallery-sprites")

    first = page.locator("#grid .gtile").first
    image = Image.objects.get(pk=int(first.get_attribute("data-id")))
    first.locator(".gtile-open").click()
    sprite = wait_shown(page, "sprite.png")
    assert sprite["view"] == "sprite" and sprite["w"] == image.sprite_info["size"][0]
    assert sprite["w"] <= SIZE // 4 and sprite["h"] <= SIZE // 4  # one pixel per art pixel: much smaller
    assert sprite["shownW"] % sprite["w"] == 0 and sprite["shownW"] >= 4 * sprite["w"]  # fitted at a whole zoom
    swatches = page.locator("#viewer-swatches .swatch")
    assert swatches.count() == len(image.sprite_info["palette"]) and swatches.count() <= 32
    assert swatches.first.get_attribute("title").startswith(image.sprite_info["palette"][0])
    page.keyboard.press("-")
    smaller = shown(page)
    assert smaller["shownW"] == sprite["shownW"] - sprite["w"]  # one whole step down (fit may be at 16x already)
    page.keyboard.press("f")
    shot(page, "viewer-sprite")

    page.keyboard.press("o")  # the original: 256 px, with the art-pixel grid the sprite was read from
    original = wait_shown(page, f"/images/{image.pk}/")
    assert original["view"] == "original" and (original["w"], original["h"]) == (SIZE, SIZE)
    page.keyboard.press("g")
    step = page.evaluate("() => parseFloat(getComputedStyle(document.getElementById('viewer-grid')).backgroundSize)")
    zoom = original["shownW"] / SIZE
    assert abs(step - image.sprite_info["pixel_size"] * zoom) < 0.01
    assert page.evaluate("() => localStorage.getItem('dgx.view')") == "original"
    shot(page, "viewer-original-grid")
    page.keyboard.press("g")
    page.keyboard.press("Escape")
    assert page.locator("#grid .gtile img[src*='sprite.png']").count() == 0  # the tiles follow the switch
    page.locator(".view-switch [data-view=sprite]").click()
    assert page.locator("#grid .gtile img[src*='sprite.png']").count() == 4

    # Re-finish from the job page: another palette, no GPU; the finish card follows live.
    page.goto(f"/jobs/{job.pk}/")
    page.wait_for_selector("#live-status[data-state='live']")
    assert "32 colours" in page.locator(".finish-plan").inner_text()
    page.locator("#refinish summary").click()
    page.locator("#refinish-form select[name=palette]").select_option("gameboy")
    assert page.locator("#refinish-form input[name=colors]").is_disabled()
    page.locator("#refinish-submit").click()
    page.locator("#confirm-dialog [data-confirm-ok]").click()  # re-finishing asks first (DGX.confirm)
    page.wait_for_selector(".toast-success:has-text('Re-finishing job')")
    wait_until(lambda: sprites_made(job, 1), timeout=45, message="the sprites made again")
    # The card before the re-finish also read "0 open, 4 done": wait for the new plan's card.
    page.wait_for_function("() => { const h = document.querySelector('[data-partial=finish] [data-open]');"
                           " const plan = document.querySelector('.finish-plan');"
                           " return h && h.dataset.open === '0' && h.dataset.done === '4'"
                           " && plan && plan.textContent.includes('palette gameboy'); }", timeout=20_000)
    assert page.locator("#job-finishing").is_hidden()
    gameboy = set(load_palette("gameboy"))
    for each in Image.objects.filter(job=job):
        colors = sprite_colors(each)
        assert colors and colors <= gameboy, colors
        assert set(each.sprite_info["palette"]) <= {"#%02x%02x%02x" % c for c in gameboy}
    shot(page, "job-refinished")

    # Back in the gallery, the viewer shows the rebuilt sprite (a new run, a new URL) and its swatches.
    page.goto(f"/gallery/?job={job.pk}#image-{image.pk}")
    rebuilt = wait_shown(page, "sprite.png?v=1")
    assert rebuilt["view"] == "sprite"
    hexes = {page.locator("#viewer-swatches .swatch").nth(i).get_attribute("data-hex")
             for i in range(page.locator("#viewer-swatches .swatch").count())}
    assert hexes and hexes <= {"#%02x%02x%02x" % c for c in gameboy}
    shot(page, "viewer-gameboy")
