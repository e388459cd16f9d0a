"""The limits hold at every door: the service checks names, prompts and control characters for the
form, the CLI, the admin and the Python API alike; the CLI reads bounded files, prints stored text
escaped, and answers impossible numbers with its usage error.
"""
from __future__ import annotations

import io
import os
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from batches import cli
from batches.models import Job, Unit
from batches.services.submission import LIMITS, SubmissionError, job_submit
from tests.processes import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _dead_comfyui(settings):
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"


def submit(owner, **params) -> Job:
    base = {"prompts": ["pixel art warrior"], "count": 1, "batch_size": 1, "steps": 4, "width": 64, "height": 64,
            "client": None, "wake": False}
    return job_submit(owner=owner, **{**base, **params})


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def usage_error(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert caught.value.returncode == cli.EXIT_USAGE
    assert "\n" not in str(caught.value)
    return str(caught.value)


# --- the service: names, prompts, control characters ------------------------------------------------

REFUSED = [
    ({"name": "n" * 201}, "name", "limit is 200"),
    ({"name": "n" * 100_000}, "name", "limit is 200"),
    ({"name": "red\x1b[31malert"}, "name", "control character"),
    ({"prompts": ["pixel\x1b]0;pwned\x07 art"]}, "prompts", "control character"),
    ({"prompts": ["ok", "bell\x07"]}, "prompts", "prompt 2 contains a control character"),
    ({"prompts": ["nul\x00byte"]}, "prompts", "control character"),
    ({"prompts": ["csi\x9b2J"]}, "prompts", "control character"),
    ({"negative_prompt": "blurry\x08\x08"}, "negative_prompt", "control character"),
    ({"checkpoint": "model\x1b.safetensors"}, "checkpoint", "control character"),
]


@pytest.mark.parametrize("params, field, words", REFUSED, ids=[f"{i}-{r[1]}" for i, r in enumerate(REFUSED)])
def test_the_service_refuses_long_names_and_control_characters_naming_the_field(owner, params, field, words):
    with pytest.raises(SubmissionError) as caught:
        submit(owner, **params)
    assert any(words in message for message in caught.value.errors[field]), caught.value.errors
    assert not Job.objects.exists()


def test_tabs_and_newlines_are_text_and_a_windows_line_break_is_kept_as_one_newline(owner):
    job = submit(owner, prompts=["pixel\tart"], negative_prompt="blurry\r\nphoto", name="  forest tiles  ")
    assert job.prompts == ["pixel\tart"] and job.negative_prompt == "blurry\nphoto" and job.name == "forest tiles"


@pytest.mark.parametrize("workflow", ["../profiles/../workflows/batch_optimized", "batch_optimized.json",
                                      "./batch_optimized"])
def test_the_workflow_is_stored_by_its_name_in_the_workflows_folder(owner, workflow):
    assert submit(owner, workflow=workflow).workflow == "batch_optimized"


def test_the_form_shows_the_services_control_character_error_next_to_the_field(client, owner):
    client.force_login(owner)
    form = {"prompts": "pixel art knight\x1b[2J", "count": "1", "profile": "speed", "batch_size": "1",
            "steps": "4", "width": "64", "height": "64", "workflow": "batch_optimized", "priority": "normal",
            "negative_prompt": "", "name": ""}
    response = client.post(reverse("job-new"), form)
    assert response.status_code == 400
    assert any("control character" in e for e in response.context["form"].errors["prompts"])
    response = client.post(reverse("job-new"), {**form, "prompts": "pixel art knight", "count": "\u0663"})
    assert response.status_code == 400 and "whole number" in response.context["form"].errors["count"][0]
    assert not Job.objects.exists()


# --- batch_generate ------------------------------------------------------------------------------


def test_generate_refuses_a_job_name_past_the_forms_limit(owner):
    message = usage_error("batch_generate", "--prompt", "x", "--user", owner.username, "--name", "n" * 100_000)
    assert message.startswith("--name:") and "limit is 200" in message
    assert len(message) < 400  # the name is not echoed back
    assert not Job.objects.exists()


def test_generate_refuses_control_characters_in_a_prompt_naming_the_flag(owner):
    message = usage_error("batch_generate", "--prompt", "pixel\x1b[2J", "--user", owner.username)
    assert message.startswith("--prompt:") and "control character" in message and "\x1b" not in message


def test_generate_reads_at_most_the_limit_and_one_byte_of_a_prompts_file(owner, tmp_path):
    """A FIFO held open after more than the limit is written: reading to the end would never return."""
    fifo = tmp_path / "prompts"
    os.mkfifo(fifo)
    released = threading.Event()

    def writer():
        try:
            with open(fifo, "wb", buffering=0) as pipe:
                pipe.write(b"p\n" * (LIMITS["prompts_file_bytes"] // 2 + 1024))
                released.wait(20)  # kept open: no end of file until the command has answered
        except BrokenPipeError:  # the command stopped reading at the limit and closed its end
            pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        message = usage_error("batch_generate", "--prompts-file", str(fifo), "--user", owner.username)
    finally:
        released.set()
        thread.join(5)
    assert message.startswith("--prompts-file:") and "the limit is" in message
    assert time.monotonic() - started < 15
    assert not Job.objects.exists()


def test_generate_help_offers_only_names_in_the_workflows_folder(owner, tmp_path):
    from batches.management.commands.batch_generate import Command

    parser = Command().create_parser("manage.py", "batch_generate")
    help_text = " ".join(parser.format_help().split())
    assert "workflows/" in help_text and "a path to" not in help_text
    outside = tmp_path / "mine.json"
    outside.write_text("{}")
    message = usage_error("batch_generate", "--prompt", "x", "--user", owner.username, "--workflow", str(outside))
    assert message.startswith("--workflow:") and "outside the workflows folder" in message


# --- batch_status prints stored text escaped ------------------------------------------------------


def test_status_escapes_control_characters_in_names_prompts_and_errors(owner):
    job = submit(owner)
    Job.objects.filter(pk=job.pk).update(name="evil\x1b[2J", prompts=["bell\x07prompt"], error="note\x1b]0;t\x07",
                                         checkpoint="ck\x9bpt")
    Unit.objects.filter(job=job).update(status=Unit.Status.FAILED, error="ComfyUI said \x1b[31mno\x1b[0m")
    out = run("batch_status", str(job.pk))
    assert not any(ch in out for ch in "\x1b\x07\x9b")
    assert "evil\\x1b[2J" in out and "bell\\x07prompt" in out and "said \\x1b[31mno" in out
    assert "ck\\x9bpt" in out


def test_escaping_keeps_ordinary_text_and_shows_each_control_character():
    assert cli.printable("pixel art café 16-bit") == "pixel art café 16-bit"
    assert cli.printable("a\tb\nc\x1b\x7f\x9b") == "a\\tb\\nc\\x1b\\x7f\\x9b"


# --- batch_cleanup --older-than ---------------------------------------------------------------------


@pytest.mark.parametrize("value, words", [
    ("inf", "expected a number of days"),
    ("1e400", "expected a number of days"),
    ("nan", "expected a number of days"),
    ("\u0663", "expected a number of days"),
    ("1000000", "at most 36500 days"),
    ("36500.5", "at most 36500 days"),
])
def test_cleanup_refuses_an_age_no_calendar_holds_with_the_usage_error(value, words):
    message = usage_error("batch_cleanup", "--older-than", value)
    assert "--older-than:" in message and words in message


def test_cleanup_takes_a_hundred_years_and_fractions_of_a_day():
    assert "Removed 0 jobs" in run("batch_cleanup", "--older-than", "36500")
    assert "Removed 0 jobs" in run("batch_cleanup", "--older-than", "0.5")


@pytest.mark.parametrize("value", ["inf", "1e400", "86401"])
def test_status_refuses_a_watch_interval_no_clock_can_wait(owner, value):
    message = usage_error("batch_status", "--watch", "--interval", value, "--refreshes", "2")
    assert "--interval: must be at most 86400 seconds" in message
