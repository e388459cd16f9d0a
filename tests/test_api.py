"""The HTTP JSON API through a real daphne (one per module) on the test database, with requests:
token auth, submission and every error shape, ownership, paging, the verbs, comparisons, files,
the rate limit; and the ways to get a token (command, account page, admin)."""
from __future__ import annotations

import io
import os
import time

import pytest
import requests
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from batches.models import ApiToken, Comparison, Job, QueueControl, Unit
from tests.api_support import Api, errors_of, make_images, queue_job, start_api_server, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    proc, srv = start_api_server(tmp_path_factory.mktemp("api"), django_db_blocker, DGX_API_RATE_LIMIT="0")
    yield srv
    proc.stop()


@pytest.fixture(autouse=True)
def _same_outputs(server, settings):
    settings.OUTPUT_ROOT = server.output_root
    settings.COMFYUI_URL = server.comfyui_url


@pytest.fixture
def artist(django_user_model):
    return django_user_model.objects.create_user("artist", password="pw")


@pytest.fixture
def rival(django_user_model):
    return django_user_model.objects.create_user("rival", password="pw")


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser("boss", "", "pw")


@pytest.fixture
def api(server, artist) -> Api:
    return Api(server, token_for(artist))


@pytest.fixture
def rival_api(server, rival) -> Api:
    return Api(server, token_for(rival))


@pytest.fixture
def boss_api(server, boss) -> Api:
    return Api(server, token_for(boss))


SMALL = {"prompt": "pixel art slime", "count": 4, "batch_size": 4, "steps": 4, "width": 64, "height": 64}


# --- authentication ----------------------------------------------------------------------------

def test_no_token_a_wrong_one_a_revoked_one_or_an_inactive_user_is_401_json(server, artist):
    errors = errors_of(Api(server, None).get("/jobs/"), 401)
    assert "Bearer" in errors["authorization"][0]
    errors_of(Api(server, "dgx_not-a-token").get("/jobs/"), 401)
    row, token = ApiToken.issue(artist)
    assert Api(server, token).get("/jobs/").status_code == 200
    row.revoke()
    errors_of(Api(server, token).get("/jobs/"), 401)
    _, token = ApiToken.issue(artist)
    artist.is_active = False
    artist.save()
    response = Api(server, token).get("/jobs/")
    errors_of(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_session_cookie_does_not_authenticate_the_api_and_post_needs_no_csrf(server, session_cookie, api):
    _, cookie = session_cookie("artist")
    errors_of(requests.get(f"{server.url}/api/v1/jobs/", headers={"Cookie": cookie}, timeout=10), 401)
    errors_of(requests.post(f"{server.url}/api/v1/jobs/", json=SMALL, headers={"Cookie": cookie}, timeout=10), 401)
    assert api.post("/jobs/", SMALL).status_code == 201  # a token, no CSRF token: accepted
    row = ApiToken.objects.get(name="tests")
    assert row.last_used_at is not None


# --- submitting ----------------------------------------------------------------------------------

def test_submit_answers_201_with_the_job_document_and_get_returns_the_same_job(api, artist):
    response = api.post("/jobs/", {**SMALL, "cfg_scale": 7, "priority": "high", "name": "slimes"})
    assert response.status_code == 201, response.text
    doc = response.json()
    job = Job.objects.get(pk=doc["id"])
    assert job.owner == artist and job.cfg == 7 and job.name == "slimes"
    assert doc["status"] == "queued" and doc["priority"] == "high" and doc["images_planned"] == 4
    assert doc["images_done"] == 0 and doc["links"]["self"] == f"/api/v1/jobs/{job.pk}/"
    got = api.get(f"/jobs/{job.pk}/").json()
    assert got["id"] == job.pk and got["images_planned"] == 4 and got["prompts"] == ["pixel art slime"]
    units = api.get(f"/jobs/{job.pk}/units/").json()["items"]
    assert [u["index"] for u in units] == [0] and units[0]["status"] == "pending" and units[0]["batch_size"] == 4


def test_every_submission_error_names_its_field_and_nothing_is_queued(api):
    cases = [
        ({**SMALL, "count": "four"}, "count", "whole number"),
        ({**SMALL, "cfg_scale": True}, "cfg_scale", "number"),
        ({**SMALL, "colour": "red"}, "colour", "unknown field"),
        ({**SMALL, "prompts": ["a", "b"]}, "prompt", "not both"),
        ({**SMALL, "priority": "asap"}, "priority", "urgent"),
        ({**SMALL, "steps": 0}, "steps", ""),
    ]
    for body, field, words in cases:
        errors = errors_of(api.post("/jobs/", body), 400)
        assert field in errors, (body, errors)
        assert words in " ".join(errors[field]), errors
    errors = errors_of(api.post("/jobs/", data="{not json", headers={"Content-Type": "application/json"}), 400)
    assert "not valid JSON" in errors["body"][0]
    errors = errors_of(api.post("/jobs/", [SMALL]), 400)
    assert "JSON object" in errors["body"][0] and "a list" in errors["body"][0]
    errors_of(api.post("/jobs/", data=""), 400)
    assert Job.objects.count() == 0


def test_a_too_large_body_is_413_an_unknown_route_404_and_a_wrong_method_405_all_json(api, settings):
    big = b'{"prompt": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'
    errors = errors_of(api.post("/jobs/", data=big, headers={"Content-Type": "application/json"}), 413)
    assert "bytes" in errors["body"][0]
    errors = errors_of(api.get("/nothing/here/"), 404)
    assert "/api/v1/docs" in errors["__all__"][0]
    assert "trailing slash" in errors_of(api.get("/jobs"), 404)["__all__"][0]
    errors_of(api.post("/nothing/here/", {}), 404)  # a POST too: JSON, not Django's CSRF page
    response = api.request("DELETE", "/jobs/")
    errors_of(response, 405)
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]
    errors_of(api.get("/jobs/1/cancel/"), 405)
    errors_of(api.get("/jobs/99999999999999999999/"), 404)  # past any database id: 404, not a 500


def test_a_bad_query_parameter_is_400_naming_it(api):
    assert "page_size" in errors_of(api.get("/jobs/?page_size=500"), 400)
    assert "page" in errors_of(api.get("/jobs/?page=zero"), 400)
    assert "priority" in errors_of(api.get("/jobs/?priority=asap"), 400)


# --- ownership -----------------------------------------------------------------------------------

def test_another_users_job_images_and_comparison_are_404_and_staff_see_all(api, rival_api, boss_api, artist, server):
    job = queue_job(artist)
    image = make_images(job, server.output_root, 1)[0]
    for path in (f"/jobs/{job.pk}/", f"/jobs/{job.pk}/units/", f"/jobs/{job.pk}/images/",
                 f"/images/{image.pk}/", f"/images/{image.pk}/png", f"/images/{image.pk}/metadata"):
        assert api.get(path).status_code == 200, path
        errors_of(rival_api.get(path), 404)
        assert boss_api.get(path).status_code == 200, path
    for verb in ("cancel", "stop", "retry", "requeue"):
        errors_of(rival_api.post(f"/jobs/{job.pk}/{verb}/"), 404)
    errors_of(rival_api.post(f"/jobs/{job.pk}/priority/", {"priority": "urgent"}), 404)
    assert rival_api.get("/jobs/").json()["count"] == 0
    assert rival_api.get("/jobs/?owner=artist").json()["count"] == 0
    assert boss_api.get("/jobs/?owner=artist").json()["count"] == 1
    assert boss_api.get("/jobs/?owner=rival").json()["count"] == 0
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED)  # unchanged by the refused verbs
    assert Job.objects.get(pk=job.pk).status == "queued"


def test_only_staff_pause_and_resume_the_queue(api, boss_api):
    assert "staff" in errors_of(api.post("/queue/pause/"), 403)["__all__"][0]
    assert not QueueControl.is_paused()
    assert boss_api.post("/queue/pause/").json() == {"paused": True}
    assert QueueControl.is_paused()
    assert boss_api.post("/queue/resume/").json() == {"paused": False}
    assert not QueueControl.is_paused()


def test_stats_and_nodes(api):
    stats = api.get("/stats/").json()
    assert {"queue_size", "active_jobs", "throughput_per_minute", "paused"} <= set(stats)
    assert api.get("/nodes/").json() == {"items": []}


# --- paging --------------------------------------------------------------------------------------

def test_jobs_are_paged_newest_first_and_filtered(api, artist):
    jobs = [queue_job(artist, count=4, priority="high" if i % 2 else "normal") for i in range(5)]
    first = api.get("/jobs/?page_size=2").json()
    assert first["count"] == 5 and first["page"] == 1 and first["previous"] is None
    assert [j["id"] for j in first["items"]] == [jobs[4].pk, jobs[3].pk]
    third = api.get(first["next"].replace("page=2", "page=3")).json()
    assert [j["id"] for j in third["items"]] == [jobs[0].pk] and third["next"] is None
    second = api.get(first["next"]).json()
    assert [j["id"] for j in second["items"]] == [jobs[2].pk, jobs[1].pk] and "page=1" in second["previous"]
    assert api.get("/jobs/?priority=high").json()["count"] == 2
    assert api.get("/jobs/?status=queued&profile=nope").json()["count"] == 0
    assert api.get("/jobs/?page=9").json()["items"] == []


def test_images_are_paged_in_order_with_their_file_urls(api, artist, server):
    job = queue_job(artist, count=8)
    images = make_images(job, server.output_root, 5)
    page = api.get(f"/jobs/{job.pk}/images/?page_size=3").json()
    assert page["count"] == 5 and [i["sequence"] for i in page["items"]] == [1, 2, 3]
    item = page["items"][0]
    assert item["id"] == images[0].pk and item["seed"] == 1000 and item["prompt"] == "pixel art slime"
    assert item["review"] == "unreviewed" and item["urls"]["sprite"] is None
    png = api.get(item["urls"]["png"])
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert api.get(item["urls"]["metadata"]).json() == {"seed": 1000, "sequence": 1}
    assert api.get(item["urls"]["thumb"]).status_code == 200
    assert "no sprite" in errors_of(api.get(f"/images/{images[0].pk}/sprite.png"), 404)["__all__"][0]
    rest = api.get(page["next"]).json()
    assert [i["sequence"] for i in rest["items"]] == [4, 5] and rest["next"] is None
    assert Api(server, None).get(item["urls"]["png"]).status_code == 401


def test_image_files_keep_to_the_output_folder(api, artist, server, tmp_path):
    job = queue_job(artist)
    image = make_images(job, server.output_root, 1, sprite=True)[0]
    assert api.get(f"/images/{image.pk}/sprite.png").status_code == 200
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    link = server.output_root / "batches" / f"job{job.pk}" / "images" / "link.png"
    link.symlink_to(secret)
    type(image).objects.filter(pk=image.pk).update(file_path=str(link.relative_to(server.output_root)))
    errors_of(api.get(f"/images/{image.pk}/png"), 404)
    type(image).objects.filter(pk=image.pk).update(file_path="batches/gone.png")
    errors_of(api.get(f"/images/{image.pk}/png"), 404)


# --- verbs ---------------------------------------------------------------------------------------

def test_cancel_stop_and_priority(api, artist):
    job = queue_job(artist, count=8)
    answer = api.post(f"/jobs/{job.pk}/priority/", {"priority": "urgent"}).json()
    assert answer["job"]["priority"] == "urgent" and Job.objects.get(pk=job.pk).priority_name == "urgent"
    assert "priority" in errors_of(api.post(f"/jobs/{job.pk}/priority/", {"priority": "asap"}), 400)
    assert "priority" in errors_of(api.post(f"/jobs/{job.pk}/priority/", {}), 400)
    errors_of(api.post(f"/jobs/{job.pk}/priority/", data="urgent", headers={"Content-Type": "application/json"}), 400)
    stopped = api.post(f"/jobs/{job.pk}/stop/").json()
    assert stopped["units_stopped"] == 2
    assert set(Unit.objects.filter(job=job).values_list("status", flat=True)) == {"cancelled"}
    other = queue_job(artist)
    answer = api.post(f"/jobs/{other.pk}/cancel/").json()
    assert answer["cancelled"] is True and answer["job"]["status"] == "cancelled"
    assert api.post(f"/jobs/{other.pk}/cancel/").json()["cancelled"] is False
    assert "already finished" in errors_of(api.post(f"/jobs/{other.pk}/priority/", {"priority": "low"}),
                                           409)["__all__"][0]


def test_retry_and_requeue(api, artist):
    job = queue_job(artist, count=4, seed=42)
    for unit in job.units.all():
        unit.mark_failed("ComfyUI refused the workflow")
    job.refresh_counts()
    job.finish_if_complete()
    retried = api.post(f"/jobs/{job.pk}/retry/", headers={"Idempotency-Key": "k1"}).json()
    assert retried["units_retried"] == 1 and retried["job"]["status"] == "queued"
    assert api.post(f"/jobs/{job.pk}/retry/", headers={"Idempotency-Key": "k1"}).json()["units_retried"] == 1
    response = api.post(f"/jobs/{job.pk}/requeue/", headers={"Idempotency-Key": "r1"})
    assert response.status_code == 201
    new = response.json()
    assert new["requeued_from"] == job.pk and new["job"]["id"] != job.pk
    again = api.post(f"/jobs/{job.pk}/requeue/", headers={"Idempotency-Key": "r1"}).json()
    assert again["job"]["id"] == new["job"]["id"] and Job.objects.count() == 2


# --- comparisons ---------------------------------------------------------------------------------

def test_a_compare_key_queues_a_comparison(api, rival_api, artist):
    response = api.post("/jobs/", {**SMALL, "count": 1, "batch_size": 1, "compare": {"cfg": [5, 8]}})
    assert response.status_code == 201, response.text
    doc = response.json()
    assert doc["kind"] == "comparison" and len(doc["cells"]) == 2 and doc["images_planned"] == 2
    comparison = Comparison.objects.get(pk=doc["id"])
    assert comparison.owner == artist
    assert api.get(f"/comparisons/{comparison.pk}/").json()["id"] == comparison.pk
    errors_of(rival_api.get(f"/comparisons/{comparison.pk}/"), 404)
    errors_of(rival_api.post(f"/comparisons/{comparison.pk}/cancel/"), 404)
    cancelled = api.post(f"/comparisons/{comparison.pk}/cancel/").json()
    assert cancelled["cells_cancelled"] == 2 and all(c["status"] == "cancelled" for c in cancelled["cells"])
    assert "compare" in errors_of(api.post("/jobs/", {**SMALL, "compare": {"colour": [1]}}), 400)


# --- the schema and the docs ---------------------------------------------------------------------

def test_the_schema_documents_the_job_request_and_the_docs_load_without_the_internet(server):
    schema = requests.get(f"{server.url}/api/v1/schema", timeout=10).json()
    assert schema["openapi"].startswith("3.")
    body = schema["paths"]["/api/v1/jobs/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"prompt", "prompts", "count", "cfg_scale", "compare", "priority"} <= set(body["properties"])
    docs = requests.get(f"{server.url}/api/v1/docs", timeout=10)
    assert docs.status_code == 200 and "/static/ninja/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert requests.get(f"{server.url}/static/ninja/{asset}", timeout=10).status_code == 200, asset


# --- the rate limit ------------------------------------------------------------------------------

def test_the_rate_limit_counts_each_token_across_processes(django_db_blocker, artist, rival, tmp_path):
    first, srv = start_api_server(tmp_path / "a", django_db_blocker, DGX_API_RATE_LIMIT="3")
    second = None
    try:
        from tests.processes import start_daphne

        second, url2 = start_daphne(tmp_path / "b", {**_env(first)})
        token = token_for(artist)
        if time.time() % 60 > 54:  # four requests must fall in one minute's window
            time.sleep(61 - time.time() % 60)
        one, two = Api(srv, token), Api(srv, token)
        two.server = type(srv)(url2, srv.output_root, srv.comfyui_url)
        answers = [one.get("/stats/").status_code, two.get("/stats/").status_code, one.get("/stats/").status_code]
        assert answers == [200, 200, 200]
        response = two.get("/stats/")
        errors = errors_of(response, 429)
        assert 1 <= int(response.headers["Retry-After"]) <= 60 and "3 requests a minute" in errors["__all__"][0]
        assert Api(srv, token_for(rival)).get("/stats/").status_code == 200  # each token on its own
    finally:
        first.stop()
        if second is not None:
            second.stop()


def _env(proc) -> dict:
    return {k: v for k, v in proc.env.items() if k in ("DATABASE_URL", "OUTPUT_ROOT", "COMFYUI_URL", "GPU_NODE",
                                                        "DGX_API_RATE_LIMIT")}


# --- getting a token -----------------------------------------------------------------------------

def _command(*args) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("api_token", *args, stdout=out, stderr=err)
    return out.getvalue().splitlines()


def test_the_api_token_command_issues_lists_and_revokes(api, artist, server):
    token = _command("artist", "--name", "build")[-1]
    assert token.startswith("dgx_") and ApiToken.find(token).name == "build"
    assert Api(server, token).get("/jobs/").status_code == 200
    second = _command("artist")[-1]
    listing = "\n".join(_command("artist", "--list"))
    assert token[:12] in listing and second[:12] in listing and "build" in listing
    assert _command("artist", "--revoke", token[:12]) == ["Revoked 1 token of artist."]
    assert ApiToken.find(token) is None and ApiToken.find(second) is not None
    assert _command("artist", "--revoke")[-1].startswith("Revoked 2 tokens")  # the fixture's and the second
    assert ApiToken.find(second) is None
    with pytest.raises(CommandError, match="USER"):
        _command("nobody")
    with pytest.raises(CommandError, match="--revoke"):
        _command("artist", "--revoke", "dgx_nomatch")


def test_the_command_prints_the_token_as_the_last_line_of_stdout(artist, tmp_path):
    import subprocess
    import sys

    from tests.api_support import database_url

    env = {**os.environ, "DATABASE_URL": database_url()}
    done = subprocess.run([sys.executable, "manage.py", "api_token", "artist"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ApiToken.find(done.stdout.splitlines()[-1]) is not None


def test_the_account_page_creates_shows_once_lists_and_revokes(server, artist, rival):
    client = Client()
    client.force_login(artist)
    assert client.get("/account/tokens/").status_code == 200
    page = client.post("/account/tokens/", {"action": "create", "name": "ci"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    token = page.context["new_token"]
    assert token in page.content.decode() and Api(server, token).get("/jobs/").status_code == 200
    listing = client.get("/account/tokens/").content.decode()
    assert token[:12] in listing and token not in listing  # the token itself is shown once
    assert "data-confirm=" in listing
    row = ApiToken.objects.get(name="ci")
    theirs, _ = ApiToken.issue(rival)
    assert client.post("/account/tokens/", {"action": "revoke", "token": theirs.pk}).status_code == 404
    assert client.post("/account/tokens/", {"action": "revoke", "token": row.pk}).status_code == 302
    assert ApiToken.find(token) is None and ApiToken.objects.get(pk=theirs.pk).revoked_at is None
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(artist)
    assert strict.post("/account/tokens/", {"action": "create"}).status_code == 403
    assert Client().get("/account/tokens/").status_code == 302  # signed-in users only


def test_the_admin_issues_a_token_once_and_revokes_selected_ones(boss, artist):
    client = Client()
    client.force_login(boss)
    assert client.get("/admin/batches/apitoken/add/").status_code == 200
    response = client.post("/admin/batches/apitoken/add/", {"user": artist.pk, "name": "from admin"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"] if "dgx_" in str(m)]
    token = shown[0].split("API token for artist: ")[1].split(" ")[0]
    row = ApiToken.find(token)
    assert row.user == artist and row.name == "from admin"
    listing = client.get("/admin/batches/apitoken/").content.decode()
    assert row.prefix in listing and token not in listing
    client.post("/admin/batches/apitoken/", {"action": "revoke_tokens", ACTION_CHECKBOX_NAME: [row.pk]})
    assert ApiToken.find(token) is None
    assert client.get(f"/admin/batches/apitoken/{row.pk}/change/").status_code == 200


def test_the_window_is_a_calendar_minute_and_retry_after_counts_to_its_end(settings):
    from ninja.errors import Throttled

    from batches.http_api import throttle

    settings.API_RATE_LIMIT = 2
    start = (time.time() // 60) * 60 + 0.5  # half a second into this minute
    throttle.check(987654, now=start)
    throttle.check(987654, now=start + 1)
    with pytest.raises(Throttled) as caught:
        throttle.check(987654, now=start + 10)
    assert caught.value.wait == 50
    throttle.check(987654, now=start + 60)  # the next minute starts afresh
    settings.API_RATE_LIMIT = 0
    for _ in range(5):
        throttle.check(987654, now=start + 1)  # off: nothing is counted or refused
