"""The job history page (/jobs/): search, filters, keyset pages, thumbnails, and what it costs.

Same cast as the review tests: `owner` made most jobs, `other` is another artist.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from batches.models import Job
from batches.services import history
from tests.test_views_review import add_images, make_job, signed_in, simple_specs

pytestmark = pytest.mark.django_db


def ids_of(response) -> list[int]:
    return [job["id"] for job in response.context["jobs"]]


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("job-history"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_history_only_answers_reads(client, owner):
    assert signed_in(client, owner).post(reverse("job-history")).status_code == 405


def test_every_signed_in_artist_sees_every_job_newest_first(client, owner, other):
    a = make_job(owner, name="knights")
    b = make_job(other, name="slimes", status=Job.Status.FAILED)
    c = make_job(owner, name="trees", status=Job.Status.RUNNING)
    response = signed_in(client, other).get(reverse("job-history"))
    assert response.status_code == 200
    assert ids_of(response) == [c.pk, b.pk, a.pk]
    html = response.content.decode()
    assert reverse("job-detail", args=[a.pk]) in html and "slimes" in html and "status-failed" in html


def test_each_row_shows_the_jobs_first_four_thumbnails(client, owner):
    job = make_job(owner)
    images = add_images(job, simple_specs(6))
    empty = make_job(owner)
    response = signed_in(client, owner).get(reverse("job-history"))
    rows = {row["id"]: row for row in response.context["jobs"]}
    assert [t["id"] for t in rows[job.pk]["thumbs"]] == [i.pk for i in images[:4]]
    assert rows[empty.pk]["thumbs"] == []
    html = response.content.decode()
    assert reverse("image-thumb", args=[images[3].pk]) in html
    assert reverse("image-thumb", args=[images[4].pk]) not in html
    assert "no images" in html


def test_the_search_looks_in_names_and_prompts(client, owner):
    named = make_job(owner, name="Castle walls", prompts=["stone"])
    prompted = make_job(owner, name="", prompts=["pixel dragon, red", "pixel castle"])
    make_job(owner, name="trees", prompts=["oak"])
    signed_in(client, owner)
    assert ids_of(client.get(reverse("job-history"), {"q": "castle"})) == [prompted.pk, named.pk]
    assert ids_of(client.get(reverse("job-history"), {"q": "DRAGON"})) == [prompted.pk]
    assert ids_of(client.get(reverse("job-history"), {"q": "nothing like it"})) == []


def test_it_filters_by_owner_status_profile_model_and_date(client, owner, other):
    now = timezone.now()
    old = make_job(owner, created_at=now - timedelta(days=10), profile="quality")
    mine = make_job(owner, status=Job.Status.FAILED, checkpoint="pixel_art_xl.safetensors")
    theirs = make_job(other)
    signed_in(client, owner)

    def found(**params):
        response = client.get(reverse("job-history"), params)
        assert response.status_code == 200, response.content
        return ids_of(response)

    assert found(owner=other.pk) == [theirs.pk]
    assert found(status="failed") == [mine.pk]
    assert found(profile="quality") == [old.pk]
    assert found(model="pixel_art_xl.safetensors") == [mine.pk]
    day = (now - timedelta(days=10)).date().isoformat()
    assert found(**{"from": day, "to": day}) == [old.pk]
    assert found(**{"from": (now - timedelta(days=1)).date().isoformat()}) == [theirs.pk, mine.pk]
    assert found(owner=owner.pk, status="completed") == [old.pk]
    html = client.get(reverse("job-history"), {"status": "failed"}).content.decode()
    assert 'value="failed"' in html or "<option selected>failed</option>" in html


def test_keyset_pages_cover_every_job_once_in_order(client, owner):
    jobs = [make_job(owner, name=f"job {n}") for n in range(7)]
    newest_first = [j.pk for j in reversed(jobs)]
    signed_in(client, owner)
    seen, cursor, pages = [], None, 0
    while True:
        page = history.history_page(history.HistoryFilters(), before=cursor, size=3)
        seen += [row["id"] for row in page.jobs]
        pages += 1
        if page.older is None:
            break
        cursor = page.older
    assert seen == newest_first and pages == 3
    second = history.history_page(history.HistoryFilters(), before=newest_first[2], size=3)
    assert [r["id"] for r in second.jobs] == newest_first[3:6] and second.newer == newest_first[3]
    back = history.history_page(history.HistoryFilters(), after=second.newer, size=3)
    assert [r["id"] for r in back.jobs] == newest_first[:3] and back.is_first
    response = client.get(reverse("job-history"), {"before": newest_first[0]})
    assert ids_of(response) == newest_first[1:]
    assert f"after={newest_first[1]}" in response.content.decode()


def test_the_pager_keeps_the_filters(client, owner, monkeypatch):
    monkeypatch.setattr(history, "PAGE_SIZE", 2)
    for n in range(3):
        make_job(owner, name=f"knight {n}")
    make_job(owner, name="slime")
    html = signed_in(client, owner).get(reverse("job-history"), {"q": "knight"}).content.decode()
    assert "q=knight&amp;before=" in html


@pytest.mark.parametrize("params", [
    {"before": "abc"}, {"after": "-1"}, {"before": "9" * 40}, {"before": "²"}, {"owner": "x"},
    {"status": "exploded"}, {"from": "yesterday"}, {"to": "2026-13-40"},
])
def test_a_cursor_or_filter_that_means_nothing_is_a_400(client, owner, params):
    response = signed_in(client, owner).get(reverse("job-history"), params)
    assert response.status_code == 400 and response["Content-Type"].startswith("text/plain")


def _history_queries(client, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("job-history"), params or {})
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_the_history_costs_the_same_queries_for_3_or_60_jobs(client, owner, other):
    signed_in(client, owner)
    for n in range(3):
        add_images(make_job(owner if n % 2 else other), simple_specs(5))
    small = _history_queries(client)
    small_filtered = _history_queries(client, {"q": "pixel", "status": "completed", "before": 10**6})
    for n in range(57):
        add_images(make_job(owner if n % 2 else other, name=f"job {n}"), simple_specs(5, seed=1000 + n))
    big = _history_queries(client)
    big_filtered = _history_queries(client, {"q": "pixel", "status": "completed", "before": 10**6})
    assert small == big and small_filtered == big_filtered and big <= 8
    cursor = Job.objects.order_by("-id")[20].pk
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("job-history"), {"before": cursor})
    sql = " ".join(q["sql"].upper() for q in ctx.captured_queries)
    assert "COUNT(" not in sql and "OFFSET" not in sql, sql


def test_the_navigation_links_to_the_history(client, owner):
    html = signed_in(client, owner).get(reverse("queue")).content.decode()
    assert f'href="{reverse("job-history")}"' in html
    page = client.get(reverse("job-history")).content.decode()
    assert f'<a href="{reverse("job-history")}" aria-current="page">History</a>' in page


def test_a_filter_that_finds_nothing_says_so(client, owner):
    make_job(owner)
    html = signed_in(client, owner).get(reverse("job-history"), {"q": "zzz"}).content.decode()
    assert "No job matches these filters" in html
