"""Submission through the service: everything checked first, all problems listed, nothing written."""
from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model

from batches.models import Job, Unit
from batches.services.submission import SubmissionError, job_submit, parse_prompts_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("artist", password="pw")


def submit(owner, **params):
    base = {"prompts": ["pixel art warrior"], "count": 4, "client": None, "wake": False}
    return job_submit(owner=owner, **{**base, **params})


BAD_INPUTS = [
    # (parameters, field, words the message must contain)
    ({"prompts": []}, "prompts", "at least one prompt"),
    ({"prompts": None}, "prompts", "at least one prompt"),
    ({"prompts": [""]}, "prompts", "empty"),
    ({"prompts": ["   \t "]}, "prompts", "empty"),
    ({"prompts": ["ok", "  "]}, "prompts", "prompt 2 is empty"),
    ({"prompts": ["x" * 2001]}, "prompts", "limit is 2000"),
    ({"prompts": ["p"] * 5001}, "prompts", "limit is 5000"),
    ({"negative_prompt": "n" * 2001}, "negative_prompt", "limit is 2000"),
    ({"count": 0}, "count", "between 1 and 1000"),
    ({"count": -3}, "count", "between 1 and 1000"),
    ({"count": 1001}, "count", "between 1 and 1000"),
    ({"count": "ten"}, "count", "whole number"),
    ({"count": "2.5"}, "count", "whole number"),
    ({"count": ""}, "count", "how many images"),
    ({"count": True}, "count", "whole number"),
    ({"prompts": ["p"] * 200, "count": 600}, "count", "limit is 100,000"),
    ({"batch_size": 3}, "batch_size", "one of 1, 4, 8"),
    ({"batch_size": 16}, "batch_size", "one of 1, 4, 8"),
    ({"batch_size": "eight"}, "batch_size", "whole number"),
    ({"steps": 0}, "steps", "between 1 and 150"),
    ({"steps": 500}, "steps", "between 1 and 150"),
    ({"steps": "many"}, "steps", "whole number"),
    ({"cfg": -1}, "cfg", "between 0 and 30"),
    ({"cfg": 31}, "cfg", "between 0 and 30"),
    ({"cfg": "high"}, "cfg", "expected a number"),
    ({"cfg": "nan"}, "cfg", "between 0 and 30"),
    ({"width": 32}, "width", "between 64 and 4096"),
    ({"width": 5000}, "width", "between 64 and 4096"),
    ({"width": 100}, "width", "multiple of 8"),
    ({"height": "tall"}, "height", "whole number"),
    ({"height": 1001}, "height", "multiple of 8"),
    ({"seed": -1}, "seed", "between 0 and"),
    ({"seed": "lucky"}, "seed", "whole number"),
    ({"lora_strength": 11}, "lora_strength", "between -10 and 10"),
    ({"lora_strength": "strong"}, "lora_strength", "expected a number"),
    ({"denoise": 1.5}, "denoise", "between 0 and 1"),
    ({"profile": "fastest"}, "profile", "unknown profile 'fastest'"),
    ({"priority": "asap"}, "priority", "unknown priority 'asap'"),
    ({"priority": "URGENTLY"}, "priority", "choose urgent, high, normal or low"),
    ({"workflow": "no_such_workflow"}, "workflow", "no_such_workflow"),
    ({"sampler": "eulr"}, "sampler", "did you mean euler"),
    ({"scheduler": "karas"}, "scheduler", "did you mean karras"),
    ({"workflow": "../dgxpixels/settings"}, "workflow", "settings"),
]


@pytest.mark.parametrize("params, field, words", BAD_INPUTS, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD_INPUTS)])
def test_it_refuses_bad_input_naming_the_field_and_writes_nothing(owner, params, field, words):
    with pytest.raises(SubmissionError) as caught:
        submit(owner, **params)
    assert field in caught.value.errors, caught.value.errors
    assert any(words in msg for msg in caught.value.errors[field]), caught.value.errors[field]
    assert field in str(caught.value)
    assert Job.objects.count() == 0 and Unit.objects.count() == 0


def test_it_lists_every_problem_at_once(owner):
    with pytest.raises(SubmissionError) as caught:
        submit(owner, prompts=["ok", ""], count=0, batch_size=3, steps="x", cfg=99, priority="soon",
               profile="nope")
    assert set(caught.value.errors) >= {"prompts", "count", "batch_size", "steps", "cfg", "priority", "profile"}
    assert Job.objects.count() == 0


BAD_FILES = [
    (b"", "has no prompts"),
    (b"\n\n# only a comment\n   \n", "has no prompts"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary"),
    ("pixel art caf\u00e9\n".encode("latin-1"), "not UTF-8"),
    (b"p\n" * (1024 * 1024 + 1), "the limit is"),
]


@pytest.mark.parametrize("data, words", BAD_FILES, ids=["empty", "comments-only", "binary", "latin1", "too-big"])
def test_it_refuses_a_bad_prompts_file_with_its_name(data, words):
    with pytest.raises(ValueError) as caught:
        parse_prompts_file(data, name="sprites.txt")
    assert "sprites.txt" in str(caught.value) and words in str(caught.value)


def test_a_prompts_file_skips_blank_lines_and_comments():
    data = "\ufeff# heroes\npixel art warrior\n\n  pixel art mage  \n# end\n".encode()
    assert parse_prompts_file(data, name="p.txt") == ["pixel art warrior", "pixel art mage"]


def test_it_fills_in_the_profile_and_splits_the_job_into_units(owner):
    job = submit(owner, prompts=["a", "b"], count=10, profile="balanced", seed=100)
    assert (job.batch_size, job.steps, job.status) == (4, 20, Job.Status.QUEUED)
    units = list(job.units.order_by("index"))
    assert [u.batch_size for u in units] == [4, 4, 2, 4, 4, 2]
    assert [u.first_sequence for u in units] == [1, 5, 9, 11, 15, 19]
    assert [u.seed for u in units] == [100, 101, 102, 103, 104, 105]
    assert [u.prompt for u in units] == ["a"] * 3 + ["b"] * 3
    assert job.images_planned == 20
    assert len({u.comfy_prompt_id for u in units}) == 6


def test_without_a_seed_every_unit_gets_its_own_random_seed(owner):
    job = submit(owner, count=40, batch_size=1)
    seeds = list(job.units.values_list("seed", flat=True))
    assert len(set(seeds)) == 40


def test_explicit_values_override_the_profile(owner):
    job = submit(owner, profile="quality", batch_size=8, steps=12, cfg=5.5, width=512, height=256,
                 sampler="euler", scheduler="normal", priority="urgent")
    assert (job.batch_size, job.steps, job.cfg, job.width, job.height) == (8, 12, 5.5, 512, 256)
    assert (job.sampler, job.scheduler, job.priority_name) == ("euler", "normal", "urgent")


def test_a_job_of_1000_prompts_by_8_images_is_accepted_quickly(owner):
    started = time.perf_counter()
    job = submit(owner, prompts=[f"pixel art item {i}" for i in range(1000)], count=8, batch_size=8)
    elapsed = time.perf_counter() - started
    assert job.units.count() == 1000 and job.images_planned == 8000
    assert elapsed < 10  # generous: the benchmark reports the real figure; this only catches a blow-up


def test_unknown_checkpoint_and_lora_are_refused_when_comfyui_answers(owner, simulator):
    from batches.comfyui import ComfyUIClient

    client = ComfyUIClient(simulator)
    with pytest.raises(SubmissionError) as caught:
        submit(owner, checkpoint="nope.safetensors", lora="missing.safetensors", client=client)
    assert "nope.safetensors" in caught.value.errors["checkpoint"][0]
    assert "sd_xl_base_1.0.safetensors" in caught.value.errors["checkpoint"][0]
    assert "missing.safetensors" in caught.value.errors["lora"][0]
    job = submit(owner, checkpoint="sd_xl_base_1.0.safetensors", lora="pixel_art_lora.safetensors", client=client)
    assert job.lora == "pixel_art_lora.safetensors"


@pytest.mark.parametrize("content, words", [
    ('{"nodes": [], "links": [], "version": 0.4}', "UI-format"),
    ('{"3": {"class_type": "KSampler", "inputs": {}', "not valid JSON"),
    ('{"1": {"inputs": {}}}', "class_type"),
], ids=["ui-format", "broken-json", "no-class-type"])
def test_a_workflow_that_is_not_an_api_format_graph_is_refused(owner, settings, tmp_path, content, words):
    settings.WORKFLOWS_DIR = tmp_path
    (tmp_path / "mine.json").write_text(content)
    with pytest.raises(SubmissionError) as caught:
        submit(owner, workflow="mine")
    message = " ".join(caught.value.errors["workflow"])
    assert "mine.json" in message and words in message, message
    assert Job.objects.count() == 0


def test_the_python_api_follows_the_seed_examples(owner):
    from batches import api

    job = api.submit_job(owner=owner, prompts=["pixel art warrior", "pixel art mage"], batch_size=4,
                         priority="high", model="sd_xl_base_1.0.safetensors", steps=20, cfg_scale=8.0,
                         client=None, wake=False)
    assert (job.checkpoint, job.cfg, job.steps, job.priority_name) == ("sd_xl_base_1.0.safetensors", 8.0, 20, "high")
    assert api.get_job(job.pk).progress == 0.0
    assert api.get_progress(job.pk)["images_planned"] == 8
    stats = api.get_statistics()
    assert stats["queue_size"] == 2 and stats["active_jobs"] == 1 and stats["throughput_per_minute"] == 0.0
    assert api.cancel_job(job.pk, by="me")
    assert api.get_job(job.pk).status == Job.Status.CANCELLED
