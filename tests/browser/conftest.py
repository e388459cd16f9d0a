"""Real browser tests: Debian's Chromium driven by Playwright, against daphne, a real qcluster and
the ComfyUI simulator, all started as subprocesses on the test database.

Screenshots go to test-output/screenshots/ (one per page visited by a test that calls `shot`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.processes import ROOT, start_daphne

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make are safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage"]


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("REQUIRE_SERVICES") == "1" or os.environ.get("CI"):
            pytest.fail(f"Chromium is missing at {CHROMIUM}: apt-get install chromium")
        pytest.skip(f"Chromium is missing at {CHROMIUM}: apt-get install chromium (./scripts/test.sh does it as root)")


@pytest.fixture
def stack(tmp_path, worker_env, simulator_factory, qcluster_factory):
    """Simulator + GPU worker + daphne, sharing the test database and output folder."""
    _, comfyui_url = simulator_factory("--step-ms", "60")
    qcluster_factory(comfyui_url)
    proc, base_url = start_daphne(tmp_path, {**worker_env, "COMFYUI_URL": comfyui_url})
    yield SimpleNamespace(base_url=base_url, comfyui_url=comfyui_url, daphne=proc)
    proc.discard()


@pytest.fixture
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def open_signed_in(browser, base_url: str, session_cookie, *, height: int = 900):
    """A page of a new browser context signed in as `artist`; returns (context, page)."""
    user, cookie = session_cookie("artist")
    context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": height})
    name, value = cookie.split("=", 1)
    context.add_cookies([{"name": name, "value": value, "url": base_url}])
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.user = user
    return context, page


@pytest.fixture
def signed_in_page(browser, stack, session_cookie):
    """A page signed in as `artist` on the full stack (daphne, qcluster, simulator)."""
    context, page = open_signed_in(browser, stack.base_url, session_cookie)
    yield page
    context.close()


@pytest.fixture
def shot(request):
    """shot(page, "queue") saves test-output/screenshots/<test>-queue.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
