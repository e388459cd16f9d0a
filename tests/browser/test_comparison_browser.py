"""A comparison in a real browser, against daphne, a real qcluster and the simulator (60 ms/step).

Submit a 2x2 comparison from the form, watch its grid fill in without reloading, judge it blind
row by row, then reveal which cell was which and read the tallies. Pages go to
test-output/screenshots/.
"""
from __future__ import annotations

import re

import pytest

from batches.models import Comparison, Vote

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_artist_submits_a_comparison_watches_it_fill_and_judges_it_blind(signed_in_page, stack, shot):
    page = signed_in_page
    page.goto("/jobs/new/")
    page.get_by_label("Prompts", exact=True).fill("pixel art slime, idle")
    page.get_by_label("Profile").select_option("speed")
    page.get_by_label("Images per prompt").fill("2")
    page.get_by_label("Batch size").select_option("1")
    page.get_by_label("Width").fill("64")
    page.get_by_label("Height").fill("64")
    page.get_by_label("Axis 1").select_option("cfg")
    page.get_by_label("Values 1").fill("6, 8")
    page.get_by_label("Axis 2").select_option("steps")
    page.get_by_label("Values 2").fill("4, 6")
    summary = page.locator("#compare-summary").inner_text()
    assert "4 cells" in summary and "8 images" in summary, summary
    assert page.locator("#submit-job").inner_text() == "Queue comparison"
    shot(page, "form")
    page.locator("#submit-job").click()

    page.wait_for_url(re.compile(r".*/comparisons/\d+/$"))
    comparison = Comparison.objects.get()
    assert comparison.cells.count() == 4
    page.wait_for_selector("#live-status[data-state='live']")
    page.evaluate("window.__notReloaded = true")
    # The grid fills in over the socket: images appear in their cells with no reload.
    page.wait_for_function("document.querySelectorAll('#cmp-grid .cmp-img').length >= 1", timeout=45_000)
    shot(page, "grid-filling")
    page.wait_for_function("document.querySelectorAll('#cmp-grid .cmp-img').length === 8", timeout=60_000)
    page.wait_for_function("document.getElementById('cmp-grid').dataset.done === '1'", timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True
    img = page.locator("#cmp-grid .cmp-img").first
    assert img.evaluate("el => getComputedStyle(el).imageRendering") == "pixelated"
    assert page.locator("#cmp-grid .cmp-colhead").nth(1).inner_text().strip() == "cfg=6"
    # Rows and columns are chosen from the axes; 2x is a whole zoom shared by every cell.
    page.locator("#grid-rows").select_option("steps")
    page.wait_for_function("document.querySelector('#cmp-grid .cgrid-rowhead').textContent.trim() === 'steps=4'")
    page.locator("#cmp-toolbar [data-zoom='2']").click()
    assert page.locator("#cmp-grid").get_attribute("data-zoom") == "2"
    assert "rows=steps" in page.locator("#export-png").get_attribute("href")
    shot(page, "grid-done")

    page.locator("#judge-link").click()
    page.wait_for_url(re.compile(r".*/judge/$"))
    for slot in (0, 1):
        page.wait_for_selector(f"#judge-round[data-slot='{slot}']")
        assert page.locator(".judge-option").count() == 4
        assert "cfg=" not in page.locator("#judge-round").inner_text()  # blind
        if slot == 0:
            shot(page, "judge")
            page.locator(".judge-option[data-key='1']").click()
        else:
            page.keyboard.press("2")
    page.wait_for_selector("#judge-results")
    assert Vote.objects.filter(comparison=comparison, user=page.user).count() == 2
    assert page.locator("[data-revealed]").count() == 0
    tally = page.locator("[data-tally='mine']").inner_text()
    assert "cfg" in tally and "/ 2" in tally
    page.locator("#reveal").click()
    page.wait_for_selector("[data-revealed]")
    labels = page.locator("[data-revealed]").all_inner_texts()
    assert len(labels) == 2 and all(re.match(r"cfg=\d\.0, steps=\d", label) for label in labels), labels
    wins = sum(int(t.split("/")[0]) for t in page.locator("[data-tally='team'] [data-wins]").all_inner_texts())
    assert wins == 4  # each of 2 votes counts once per axis
    shot(page, "revealed")
