"""Gallery tiles: prompt, seed and batch index on each tile; the next keyset page for continuous loading."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from batches.models import Image, Job
from batches.services.review import PAGE_SIZE
from batches.services.submission import job_submit

pytestmark = pytest.mark.django_db

LONG_PROMPT = "pixel art knight with a very long cape, side view, idle animation frame, 16 colours, outline"


def make_images(owner, n: int) -> Job:
    """`n` image rows of one job, eight to a unit (the files need not exist for the grid)."""
    job = job_submit(owner=owner, prompts=[LONG_PROMPT], count=max(8, n - n % 8 + 8), batch_size=8, steps=4,
                     width=64, height=64, client=None, wake=False)
    units = list(job.units.order_by("index"))
    Image.objects.bulk_create([
        Image(job=job, unit=units[i // 8], sequence=i + 1, batch_index=i % 8, prompt=LONG_PROMPT,
              seed=9_000_000_000 + i, file_path=f"batches/x/images/{i}.png", width=64, height=64)
        for i in range(n)
    ])
    return job


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_tile_shows_its_prompt_its_own_seed_and_batch_index(owner):
    make_images(owner, 3)
    html = signed_in(owner).get("/gallery/").content.decode()
    image = Image.objects.order_by("-id").first()
    assert f'<span class="gtile-prompt" title="{LONG_PROMPT}">{LONG_PROMPT}</span>' in html
    assert f">seed {image.seed}</span>" in html  # whole, never cut
    assert f">b{image.batch_index}</span>" in html
    assert 'data-tile-size="l"' in html


def test_the_next_keyset_page_comes_as_tiles_with_the_cursor_after_it(owner):
    make_images(owner, PAGE_SIZE + 10)
    client = signed_in(owner)
    html = client.get("/gallery/").content.decode()
    older = re.search(r'id="older-link" href="\?before=(\d+)"', html).group(1)
    assert html.count('class="gtile ') == PAGE_SIZE

    response = client.get(f"/gallery/?partial=1&before={older}")
    assert response.status_code == 200 and response["X-Older"] == ""
    ids = [int(i) for i in re.findall(r'data-id="(\d+)"', response.content.decode())]
    assert len(ids) == 10 and max(ids) < int(older)


def test_a_bad_cursor_is_a_400(owner):
    assert signed_in(owner).get("/gallery/?partial=1&before=x").status_code == 400
