"""The browser harness itself: a signed-in Chromium reaches the dashboard served by daphne."""
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_signed_in_artist_sees_the_dashboard(signed_in_page, shot):
    signed_in_page.goto("/")
    assert "DGX Pixels" in signed_in_page.title()
    assert signed_in_page.locator("text=artist").first.is_visible()
    assert shot(signed_in_page, "home").exists()


def test_an_anonymous_visitor_is_sent_to_sign_in(browser, stack, shot):
    context = browser.new_context(base_url=stack.base_url)
    page = context.new_page()
    page.goto("/")
    assert "/accounts/login/" in page.url
    shot(page, "login")
    context.close()
