"""Production mode in a real browser: daphne with DEBUG off serving the collected, hashed,
compressed static files; a signed-in page gets its stylesheet and scripts and looks as it should."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import open_signed_in
from tests.processes import start_daphne
from tests.production_support import collected_static  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_signed_in_page_gets_its_hashed_css_and_js_with_debug_off(
        browser, tmp_path, worker_env, session_cookie, collected_static):
    proc, base_url = start_daphne(tmp_path, {**worker_env, "DJANGO_DEBUG": "0",
                                             "DJANGO_STATIC_ROOT": str(collected_static)})
    try:
        context, page = open_signed_in(browser, base_url, session_cookie)
        static = []
        page.on("response", lambda r: static.append((r.url, r.status, r.headers.get("content-encoding")))
                if "/static/" in r.url else None)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("/")
        page.wait_for_load_state("networkidle")

        assert static and all(status == 200 for _, status, _ in static), static
        assert all(re.search(r"\.[0-9a-f]{12}\.(css|js)$", url) for url, _, _ in static), static
        assert any(enc == "gzip" for url, _, enc in static if url.endswith(".css")), static  # Chromium asks for it
        # app.css applied: the dark page and the flex navigation bar it draws.
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(14, 16, 20)"
        assert page.locator("nav.mainnav").evaluate("el => getComputedStyle(el).display") == "flex"
        assert page.evaluate("typeof window.DGX") == "object"  # dashboard.js (hashed name) ran
        assert not errors, errors
        context.close()
    finally:
        proc.discard()
