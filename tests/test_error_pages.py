"""The friendly 404 and 500 pages, drawn as production draws them (DEBUG off)."""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import include, path

pytestmark = pytest.mark.django_db


def _explode(request):
    raise RuntimeError("a bug in a view")


# This module doubles as a URLconf: the real site plus one view that fails.
urlpatterns = [path("boom/", _explode), path("", include("dgxpixels.urls"))]


def test_a_missing_page_says_what_to_do_in_the_apps_look(client, owner, settings):
    settings.DEBUG = False
    client.force_login(owner)
    response = client.get("/no/such/page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "Nothing here" in html and "/no/such/page/" in html
    assert 'href="/jobs/"' in html and "batches/css/app.css" in html and 'class="mainnav"' in html
    assert "Traceback" not in html


def test_a_missing_job_answers_the_same_friendly_page(client, owner, settings):
    settings.DEBUG = False
    client.force_login(owner)
    response = client.get("/jobs/999999/")
    assert response.status_code == 404 and "Nothing here" in response.content.decode()


def test_a_server_error_says_what_to_do_without_leaking_the_error(owner, settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    response = client.get("/boom/")
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in html and "Reload in a moment" in html
    assert "batches/css/app.css" in html and 'href="/"' in html
    assert "a bug in a view" not in html and "RuntimeError" not in html
