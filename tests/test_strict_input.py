"""Ids and counts from outside are read one strict way: ASCII digits, within the database's range.

`str.isdigit()` accepts '²' and Arabic-Indic digits and `int()` accepts '٣', ' 3' and '1_0'; ids
past 2**63 - 1 cannot be stored. Every door answers such text as a mistake (400, 404, exit 64),
never with a traceback.
"""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from batches import cli
from batches.models import Image, Job
from batches.numbers import MAX_ID, NumberError, parse_count, parse_id, parse_id_list
from batches.services.submission import SubmissionError, job_submit
from tests.processes import free_port

pytestmark = pytest.mark.django_db

SUPERSCRIPT_TWO = "\u00b2"  # '²': isdigit() is True, int() refuses it
ARABIC_THREE = "\u0663"  # '٣': isdigit() is True and int() reads 3
TOO_BIG = "99999999999999999999"  # 20 digits, past 2**63 - 1
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


@pytest.fixture(autouse=True)
def _dead_comfyui(settings):
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"


def make_job(owner, **params) -> Job:
    base = {"prompts": ["pixel art slime"], "count": 1, "batch_size": 1, "steps": 4, "width": 64, "height": 64,
            "client": None, "wake": False}
    return job_submit(owner=owner, **{**base, **params})


def make_image(job: Job) -> Image:
    return Image.objects.create(job=job, unit=job.units.first(), sequence=1, batch_index=0, prompt="p", seed=1,
                                file_path="batches/x/images/a.png", width=1, height=1, metadata={})


# --- the parser ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, number", [("1", 1), ("42", 42), (" 7 ", 7), ("007", 7), (str(MAX_ID), MAX_ID),
                                          (5, 5)])
def test_an_id_is_ascii_digits_up_to_the_databases_largest_integer(text, number):
    assert parse_id(text) == number


@pytest.mark.parametrize("text", [SUPERSCRIPT_TWO, ARABIC_THREE, "1_0", "+1", "-1", "0", "1.0", "", "x",
                                  str(MAX_ID + 1), TOO_BIG, "9" * 5000, None, True, -1, 2**64])
def test_anything_else_is_not_an_id(text):
    with pytest.raises(NumberError) as caught:
        parse_id(text, what="a job id")
    assert "not a job id" in str(caught.value)


def test_an_id_list_takes_commas_and_repeats_keeps_order_and_drops_duplicates():
    assert parse_id_list(["3,1", "2", " 1 ,, 4"]) == [3, 1, 2, 4]
    with pytest.raises(NumberError):
        parse_id_list(["1", f"2,{TOO_BIG}"])


def test_a_count_is_a_whole_number_within_its_bounds():
    assert parse_count("12", minimum=1, maximum=100, field="count") == 12
    assert parse_count("-3", minimum=-5, maximum=5, field="x") == -3
    for text, words in ((ARABIC_THREE, "whole number"), ("1_000", "whole number"), ("2.5", "whole number"),
                        ("0", "between 1 and 100"), ("101", "between 1 and 100"), (TOO_BIG, "between 1 and 100")):
        with pytest.raises(NumberError) as caught:
            parse_count(text, minimum=1, maximum=100, field="count")
        assert words in str(caught.value) and caught.value.field == "count"


# --- the views ---------------------------------------------------------------------------------


def test_the_new_job_form_refuses_a_source_job_that_is_not_an_id(client, owner):
    client.force_login(owner)
    for value in (SUPERSCRIPT_TWO, ARABIC_THREE, TOO_BIG):
        assert client.get(reverse("job-new"), {"from": value}).status_code == 400


def test_the_job_pages_image_cursor_must_be_an_id(client, owner):
    job = make_job(owner)
    client.force_login(owner)
    url = reverse("job-detail", args=[job.pk])
    for value in (SUPERSCRIPT_TWO, ARABIC_THREE, TOO_BIG):
        assert client.get(url, {"partial": "images", "after": value}).status_code == 400
    assert client.get(url, {"partial": "images", "after": "0"}).status_code == 200


def test_a_job_or_image_id_in_the_path_past_the_databases_range_is_not_found(client, owner):
    client.force_login(owner)
    assert client.get(f"/jobs/{TOO_BIG}/").status_code == 404
    assert client.get(f"/images/{TOO_BIG}/").status_code == 404
    assert client.post(f"/images/{TOO_BIG}/star/").status_code == 404


@pytest.mark.parametrize("param", ["job", "before", "after"])
def test_the_gallery_refuses_ids_that_are_not_ids(client, owner, param):
    client.force_login(owner)
    for value in (SUPERSCRIPT_TWO, TOO_BIG):
        assert client.get(reverse("gallery"), {param: value}).status_code == 400
    assert client.get(reverse("gallery"), {"partial": "1", "after": TOO_BIG}).status_code == 400


@pytest.mark.parametrize("jobs", [SUPERSCRIPT_TWO, f"1,{TOO_BIG}", f"1,{ARABIC_THREE}"])
def test_compare_refuses_job_ids_that_are_not_ids(client, owner, jobs):
    client.force_login(owner)
    response = client.get(reverse("compare"), {"jobs": jobs})
    assert response.status_code == 400 and "not a job id" in response.content.decode()


@pytest.mark.parametrize("name", ["images-bulk", "images-zip"])
@pytest.mark.parametrize("ids", [SUPERSCRIPT_TWO, TOO_BIG, f"1,{ARABIC_THREE}"])
def test_a_selection_of_ids_that_are_not_ids_is_refused(client, owner, name, ids):
    image = make_image(make_job(owner))
    client.force_login(owner)
    response = client.post(reverse(name), {"ids": f"{image.pk},{ids}", "action": "approve"}, **FETCH)
    assert response.status_code == 400 and "not an image id" in response.content.decode()
    assert Image.objects.get(pk=image.pk).review == Image.Review.UNREVIEWED


@pytest.mark.parametrize("url", ["/admin/batches/job/", "/admin/batches/unit/", "/admin/batches/image/"])
def test_the_admin_search_reads_only_ascii_ids(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_superuser("root", "", "pw"))
    for term in (SUPERSCRIPT_TWO, TOO_BIG):
        assert client.get(url, {"q": term}).status_code == 200


# --- the service, the form and the commands -------------------------------------------------------


@pytest.mark.parametrize("field", ["count", "steps", "width", "seed", "batch_size"])
def test_the_service_refuses_unicode_digits_for_every_number(owner, field):
    with pytest.raises(SubmissionError) as caught:
        make_job(owner, **{field: ARABIC_THREE})
    assert "whole number" in " ".join(caught.value.errors[field])
    assert not Job.objects.exists()


def usage_error(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == cli.EXIT_USAGE
    assert "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("flag", ["--count", "--steps", "--width", "--height", "--seed"])
def test_generate_refuses_unicode_digits_as_a_number_naming_the_flag(owner, flag):
    message = usage_error("batch_generate", "--prompt", "x", "--user", owner.username, flag, ARABIC_THREE)
    assert flag in message and "whole number" in message
    assert not Job.objects.exists()


@pytest.mark.parametrize("command, args", [
    ("batch_status", [ARABIC_THREE]), ("batch_status", [TOO_BIG]), ("batch_cancel", [ARABIC_THREE]),
    ("batch_cancel", [TOO_BIG]), ("batch_queue", ["--retry-failed", ARABIC_THREE]),
    ("batch_queue", ["--requeue", TOO_BIG]), ("batch_queue", ["--priority", TOO_BIG, "high"]),
    ("batch_status", ["--limit", ARABIC_THREE]), ("batch_status", ["--refreshes", "1_0"]),
])
def test_commands_refuse_job_ids_and_numbers_that_are_not_ascii_digits(owner, command, args):
    job = make_job(owner)
    message = usage_error(command, *args)
    assert "not a job id" in message or "whole number" in message
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
