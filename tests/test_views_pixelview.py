"""The artist's workbench, server side: "New job like this" keeps the seeds, compare puts the
baseline first and offers review, the pages load the one pixel viewer.

A fixed cast: `owner` made the jobs, `other` is another artist.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from batches.models import Job, Unit
from batches.services import compare
from batches.services.submission import job_submit
from tests.test_views_review import add_images, make_job, signed_in

pytestmark = pytest.mark.django_db

FORM = {"prompts": "pixel art knight\npixel art mage", "count": "2", "profile": "speed", "batch_size": "1",
        "steps": "4", "cfg": "7", "sampler": "euler", "scheduler": "karras", "width": "64", "height": "64",
        "seed": "", "checkpoint": "", "lora": "", "lora_strength": "1.0", "lora_strength_clip": "",
        "negative_prompt": "", "workflow": "batch_optimized", "priority": "normal", "name": "again"}


def submitted(owner, **params) -> Job:
    base = {"prompts": ["pixel art knight", "pixel art mage"], "count": 2, "batch_size": 1, "steps": 4,
            "width": 64, "height": 64, "client": None, "wake": False}
    return job_submit(owner=owner, **{**base, **params})


def seeds(job: Job) -> list[int]:
    return list(Unit.objects.filter(job=job).order_by("index").values_list("seed", flat=True))


def like_this(client, owner, source: Job, **changes) -> tuple[dict, Job]:
    """GET /jobs/new/?from=<source>, then send the form back with `changes`."""
    form = signed_in(client, owner).get(reverse("job-new"), {"from": source.pk}).context["form"]
    initial = form.initial
    data = {**FORM, "seed": initial["seed"], "seeds_from": initial["seeds_from"], "same_seeds": "on", **changes}
    if data.get("same_seeds") is None:
        del data["same_seeds"]
    response = client.post(reverse("job-new"), data)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    return initial, Job.objects.exclude(pk=source.pk).latest("id")


def test_new_job_like_this_keeps_a_fixed_base_seed(client, owner):
    source = submitted(owner, seed=4242)
    initial, job = like_this(client, owner, source, cfg="9")
    assert initial["seed"] == "4242" and initial["same_seeds"] is True
    assert job.base_seed == 4242 and job.cfg == 9.0
    assert seeds(job) == seeds(source)


def test_new_job_like_this_carries_random_seeds_unit_by_unit(client, owner):
    source = submitted(owner)  # random seeds: no base seed, one random seed per unit
    assert source.base_seed is None
    initial, job = like_this(client, owner, source, cfg="11")
    assert initial["seed"] == str(seeds(source)[0])
    assert seeds(job) == seeds(source)


def test_unticking_same_seeds_draws_new_random_seeds(client, owner):
    source = submitted(owner, seed=4242)
    _, job = like_this(client, owner, source, same_seeds=None)
    assert job.base_seed is None and seeds(job) != seeds(source)


def test_a_seed_typed_over_the_carried_one_wins(client, owner):
    source = submitted(owner)
    _, job = like_this(client, owner, source, seed="500")
    assert job.base_seed == 500 and seeds(job) == [500, 501, 502, 503]
    _, unticked = like_this(client, owner, source, seed="900", same_seeds=None)
    assert unticked.base_seed == 900


def test_the_form_offers_same_seeds_only_when_repeating_a_job(client, owner):
    source = submitted(owner, seed=7)
    html = signed_in(client, owner).get(reverse("job-new"), {"from": source.pk}).content.decode()
    assert 'name="same_seeds"' in html and "checked" in html[html.index('name="same_seeds"') - 80:]
    assert f'name="seeds_from" value="{source.pk}"' in html
    assert 'name="same_seeds"' not in client.get(reverse("job-new")).content.decode()


def test_compare_puts_the_oldest_job_first_whatever_the_order_asked(client, owner, other):
    now = timezone.now()
    old = make_job(owner, cfg=7.0, created_at=now - timedelta(hours=2))
    new = make_job(owner, cfg=9.0, created_at=now)
    add_images(old, [("pixel knight", 100, 0)])
    add_images(new, [("pixel knight", 100, 0)])
    assert [j.pk for j in compare.jobs_for_compare([new.pk, old.pk])] == [old.pk, new.pk]
    response = signed_in(client, other).get(reverse("compare"), {"jobs": f"{new.pk},{old.pk}"})
    assert [j.pk for j in response.context["comparison"].jobs] == [old.pk, new.pk]
    html = response.content.decode()
    assert html.index(f'data-job="{old.pk}"') < html.index(f'data-job="{new.pk}"')
    assert "cmp-baseline" in html


def test_compare_offers_review_buttons_only_on_jobs_the_user_may_change(client, owner, other):
    mine = make_job(owner)
    theirs = make_job(other)
    [a] = add_images(mine, [("pixel knight", 100, 0)])
    [b] = add_images(theirs, [("pixel knight", 100, 0)])
    html = signed_in(client, owner).get(reverse("compare"), {"jobs": f"{mine.pk},{theirs.pk}"}).content.decode()
    assert f'data-url="{reverse("image-review", args=[a.pk])}"' in html
    assert f'data-url="{reverse("image-star", args=[a.pk])}"' in html
    assert f'data-url="{reverse("image-review", args=[b.pk])}"' not in html


def test_the_review_pages_load_the_one_pixel_viewer(client, owner):
    a, b = make_job(owner), make_job(owner, cfg=9.0)
    add_images(a, [("pixel knight", 100, 0)])
    add_images(b, [("pixel knight", 100, 0)])
    signed_in(client, owner)
    for url in (reverse("gallery"), reverse("compare") + f"?jobs={a.pk},{b.pk}", reverse("job-detail", args=[a.pk])):
        html = client.get(url).content.decode()
        assert "batches/js/pixelview.js" in html, url
