"""Review pages: the gallery (filters, keyset pages, review and star, bulk, zips), compare, statistics.

A fixed cast: `owner` made the jobs, `other` is another artist, `staff` may change anything.
Rows are built directly; PNGs are written under the test's OUTPUT_ROOT where a test reads files.
"""
from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image as PILImage

from batches.models import Event, Image, Job, Unit
from batches.services import outputs
from batches.services import compare, stats
from batches.services import review as reviews

pytestmark = pytest.mark.django_db

FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


# --- the cast and the rows ----------------------------------------------------------------------

def signed_in(client, user):
    client.force_login(user)
    return client


def make_job(owner, **fields) -> Job:
    defaults = dict(
        prompts=["pixel knight", "pixel slime"], count=2, profile="speed", workflow="batch_optimized",
        checkpoint="sd_xl_base_1.0.safetensors", lora="", steps=15, cfg=7.0, sampler="euler_ancestral",
        scheduler="karras", width=64, height=64, batch_size=1, base_seed=100, status=Job.Status.COMPLETED,
        finished_at=timezone.now(),
    )
    defaults.update(fields)
    job = Job.objects.create(owner=owner, **defaults)
    job.output_dir = outputs.job_dir_name(job)
    job.save(update_fields=["output_dir"])
    return job


def add_images(job, specs, *, write=False, created_at=None) -> list[Image]:
    """specs: (prompt, seed, batch_index) per image, in sequence order. One unit per (prompt, seed)."""
    units: dict[tuple, Unit] = {}
    images = []
    start = job.images.count()
    for n, (prompt, seed, batch_index) in enumerate(specs, start=start + 1):
        unit = units.get((prompt, seed))
        if unit is None:
            size = sum(1 for p, s, _ in specs if (p, s) == (prompt, seed))
            unit = units[(prompt, seed)] = Unit.objects.create(
                job=job, index=Unit.objects.filter(job=job).count(), prompt_index=0, prompt=prompt, seed=seed,
                batch_size=size, first_sequence=n, status=Unit.Status.DONE)
        folder = outputs.job_dir(job)
        name = outputs.image_name(n, seed)
        image = Image(
            job=job, unit=unit, sequence=n, batch_index=batch_index, prompt=prompt, seed=seed,
            file_path=f"batches/{job.output_dir}/images/{name}", thumb_path=f"batches/{job.output_dir}/thumbs/{name}",
            metadata_path=f"batches/{job.output_dir}/metadata/{outputs.metadata_name(n)}",
            width=job.width, height=job.height, generation_time=1.5, metadata={"seed": seed},
        )
        if created_at is not None:
            image.created_at = created_at
        if write:
            buf = io.BytesIO()
            PILImage.new("RGBA", (8, 8), (n * 20 % 255, 40, 90, 255)).save(buf, format="PNG")
            outputs.atomic_write(folder / "images" / name, buf.getvalue())
            outputs.atomic_write(folder / "thumbs" / name, buf.getvalue())
            outputs.atomic_write_json(folder / "metadata" / outputs.metadata_name(n), {"sequence": n, "seed": seed})
        images.append(image)
    Image.objects.bulk_create(images)
    Job.objects.filter(pk=job.pk).update(images_done=job.images.count())
    job.refresh_from_db()
    return list(job.images.filter(sequence__gt=start).order_by("sequence"))


def simple_specs(count, prompt="pixel knight", seed=100):
    return [(prompt, seed + i, 0) for i in range(count)]


def ids_of(response) -> list[int]:
    return [image.pk for image in response.context["images"]]


# --- who may do what ------------------------------------------------------------------------

REVIEW_PAGES = ["gallery", "compare", "stats"]


@pytest.mark.parametrize("name", REVIEW_PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_anonymous_visitors_can_neither_review_nor_download(client, owner):
    job = make_job(owner)
    image = add_images(job, simple_specs(1))[0]
    for method, url, data in [
        ("post", reverse("image-review", args=[image.pk]), {"review": "approved"}),
        ("post", reverse("image-star", args=[image.pk]), {}),
        ("post", reverse("images-bulk"), {"ids": str(image.pk), "action": "approve"}),
        ("post", reverse("images-zip"), {"ids": str(image.pk)}),
        ("get", reverse("job-zip", args=[job.pk]), {}),
    ]:
        response = getattr(client, method)(url, data)
        assert response.status_code == 302 and reverse("login") in response["Location"], url
    image.refresh_from_db()
    assert image.review == Image.Review.UNREVIEWED and not image.starred


@pytest.mark.parametrize("name", REVIEW_PAGES)
def test_every_signed_in_artist_sees_the_review_pages(client, owner, other, name):
    job = make_job(owner)
    add_images(job, simple_specs(2))
    response = signed_in(client, other).get(reverse(name))
    assert response.status_code == 200
    assert b"review.css" in response.content


def test_the_owner_approves_an_image_and_gets_json_back(client, owner):
    image = add_images(make_job(owner), simple_specs(1))[0]
    response = signed_in(client, owner).post(reverse("image-review", args=[image.pk]), {"review": "approved"}, **FETCH)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "id": image.pk, "review": "approved", "starred": False}
    image.refresh_from_db()
    assert image.review == "approved"
    event = Event.objects.filter(kind="image_reviewed").latest("id")
    assert event.job_id == image.job_id and event.data == {"images": [image.pk], "review": "approved"}


def test_a_plain_form_review_redirects_back(client, owner):
    image = add_images(make_job(owner), simple_specs(1))[0]
    response = signed_in(client, owner).post(reverse("image-review", args=[image.pk]),
                                             {"review": "rejected", "next": "/gallery/?review=rejected"})
    assert response.status_code == 302 and response["Location"] == "/gallery/?review=rejected"
    evil = client.post(reverse("image-review", args=[image.pk]), {"review": "rejected", "next": "https://evil.test/"})
    assert evil["Location"] == reverse("gallery")
    image.refresh_from_db()
    assert image.review == "rejected"


def test_another_artist_may_not_review_or_star_someone_elses_image(client, owner, other):
    image = add_images(make_job(owner), simple_specs(1))[0]
    signed_in(client, other)
    assert client.post(reverse("image-review", args=[image.pk]), {"review": "approved"}, **FETCH).status_code == 403
    assert client.post(reverse("image-star", args=[image.pk]), **FETCH).status_code == 403
    image.refresh_from_db()
    assert image.review == "unreviewed" and not image.starred


def test_staff_may_review_any_image(client, owner, staff):
    image = add_images(make_job(owner), simple_specs(1))[0]
    signed_in(client, staff)
    assert client.post(reverse("image-review", args=[image.pk]), {"review": "rejected"}, **FETCH).status_code == 200
    assert client.post(reverse("image-star", args=[image.pk]), **FETCH).json()["starred"] is True
    image.refresh_from_db()
    assert image.review == "rejected" and image.starred


def test_a_review_must_be_one_of_the_three_states_and_a_post(client, owner):
    image = add_images(make_job(owner), simple_specs(1))[0]
    signed_in(client, owner)
    response = client.post(reverse("image-review", args=[image.pk]), {"review": "great"}, **FETCH)
    assert response.status_code == 400 and "approved, rejected" in response.json()["error"]
    assert client.get(reverse("image-review", args=[image.pk])).status_code == 405
    assert client.post(reverse("image-review", args=[999999]), {"review": "approved"}).status_code == 404


def test_star_toggles_without_a_value_and_sets_with_one(client, owner):
    image = add_images(make_job(owner), simple_specs(1))[0]
    signed_in(client, owner)
    url = reverse("image-star", args=[image.pk])
    assert client.post(url, **FETCH).json()["starred"] is True
    assert client.post(url, **FETCH).json()["starred"] is False
    assert client.post(url, {"starred": "1"}, **FETCH).json()["starred"] is True
    assert client.post(url, {"starred": "1"}, **FETCH).json()["starred"] is True
    assert client.post(url, {"starred": "0"}, **FETCH).json()["starred"] is False


def test_bulk_actions_change_a_whole_selection(client, owner):
    job = make_job(owner)
    images = add_images(job, simple_specs(5))
    chosen = [i.pk for i in images[:3]]
    signed_in(client, owner)
    response = client.post(reverse("images-bulk"), {"ids": ",".join(map(str, chosen)), "action": "approve"}, **FETCH)
    assert response.status_code == 200 and sorted(response.json()["ids"]) == chosen
    assert response.json()["review"] == "approved"
    client.post(reverse("images-bulk"), {"ids": [str(chosen[0]), str(images[4].pk)], "action": "star"}, **FETCH)
    state = {i.pk: (i.review, i.starred) for i in Image.objects.all()}
    assert state == {
        images[0].pk: ("approved", True), images[1].pk: ("approved", False), images[2].pk: ("approved", False),
        images[3].pk: ("unreviewed", False), images[4].pk: ("unreviewed", True),
    }
    plain = client.post(reverse("images-bulk"), {"ids": str(images[3].pk), "action": "reject", "next": "/gallery/"})
    assert plain.status_code == 302
    assert Image.objects.get(pk=images[3].pk).review == "rejected"


def test_a_bulk_action_touching_someone_elses_image_changes_nothing(client, owner, other):
    mine = add_images(make_job(other), simple_specs(1))[0]
    theirs = add_images(make_job(owner), simple_specs(1, seed=500))[0]
    signed_in(client, other)
    response = client.post(reverse("images-bulk"), {"ids": f"{mine.pk},{theirs.pk}", "action": "approve"}, **FETCH)
    assert response.status_code == 403
    assert client.post(reverse("images-bulk"), {"ids": f"{mine.pk},{theirs.pk}", "action": "approve"}).status_code == 403
    assert set(Image.objects.values_list("review", flat=True)) == {"unreviewed"}


def test_staff_bulk_review_across_owners(client, owner, other, staff):
    a = add_images(make_job(owner), simple_specs(1))[0]
    b = add_images(make_job(other), simple_specs(1))[0]
    response = signed_in(client, staff).post(reverse("images-bulk"), {"ids": f"{a.pk},{b.pk}", "action": "reject"}, **FETCH)
    assert response.status_code == 200
    assert set(Image.objects.values_list("review", flat=True)) == {"rejected"}
    assert Event.objects.filter(kind="image_reviewed").count() == 2  # one per job


@pytest.mark.parametrize("data, words", [
    ({"ids": "1", "action": "delete"}, "unknown action"),
    ({"ids": "", "action": "approve"}, "select at least one"),
    ({"ids": "1,abc", "action": "approve"}, "not an image id"),
    ({"ids": ",".join(str(i) for i in range(1, 2002)), "action": "approve"}, "limit is 2000"),
])
def test_a_bulk_request_that_means_nothing_is_refused(client, owner, data, words):
    response = signed_in(client, owner).post(reverse("images-bulk"), data, **FETCH)
    assert response.status_code == 400 and words in response.json()["error"]


# --- gallery: filters, pages, query count --------------------------------------------------------

def test_the_gallery_shows_newest_first_with_thumbnails_and_viewer_data(client, owner, other):
    job = make_job(owner)
    images = add_images(job, simple_specs(3))
    response = signed_in(client, other).get(reverse("gallery"))
    assert ids_of(response) == [i.pk for i in reversed(images)]
    html = response.content.decode()
    newest = images[-1]
    assert f'src="{reverse("image-thumb", args=[newest.pk])}" alt="" loading="lazy"' in html
    assert f'data-full="{reverse("image-file", args=[newest.pk])}"' in html
    assert f'data-meta="{reverse("image-metadata", args=[newest.pk])}"' in html
    assert 'data-can-change="0"' in html and 'data-can-change="1"' not in html  # other: view only
    assert 'id="viewer"' in html and "gallery.js" in html and "viewer.js" in html
    assert 'data-live="1"' in html


def test_gallery_filters_by_job_prompt_profile_checkpoint_lora_review_and_star(client, owner):
    speed = make_job(owner, profile="speed", checkpoint="a.safetensors")
    quality = make_job(owner, profile="quality", checkpoint="b.safetensors", lora="pixel_art_lora.safetensors")
    s = add_images(speed, [("red knight", 1, 0), ("blue slime", 2, 0)])
    q = add_images(quality, [("red dragon", 3, 0), ("green slime", 4, 0)])
    s[0].set_review("approved")
    q[1].set_review("rejected")
    q[0].toggle_star()
    signed_in(client, owner)

    def shown(**params):
        return set(ids_of(client.get(reverse("gallery"), params)))

    assert shown() == {i.pk for i in s + q}
    assert shown(job=speed.pk) == {i.pk for i in s}
    assert shown(q="SLIME") == {s[1].pk, q[1].pk}
    assert shown(q="red", job=quality.pk) == {q[0].pk}
    assert shown(profile="quality") == {i.pk for i in q}
    assert shown(checkpoint="a.safetensors") == {i.pk for i in s}
    assert shown(lora="pixel_art_lora.safetensors") == {i.pk for i in q}
    assert shown(lora=reviews.NO_LORA) == {i.pk for i in s}
    assert shown(review="approved") == {s[0].pk}
    assert shown(review="rejected") == {q[1].pk}
    assert shown(review="unreviewed") == {s[1].pk, q[0].pk}
    assert shown(starred="1") == {q[0].pk}
    assert shown(review="nonsense") == {i.pk for i in s + q}  # a choice the bar does not offer is ignored
    assert client.get(reverse("gallery"), {"job": "x"}).status_code == 400  # an id that is not one is refused

    html = client.get(reverse("gallery"), {"job": speed.pk}).content.decode()
    assert reverse("job-zip", args=[speed.pk]) in html  # the job bar offers its zip
    assert "<option selected>quality</option>" in client.get(reverse("gallery"), {"profile": "quality"}).content.decode()


def test_keyset_pages_cover_every_image_once_in_order(client, owner):
    job = make_job(owner, prompts=["p"], count=130)
    images = add_images(job, simple_specs(130))
    newest_first = [i.pk for i in reversed(images)]
    signed_in(client, owner)

    first = client.get(reverse("gallery"))
    assert ids_of(first) == newest_first[:60]
    page = first.context["page"]
    assert page.newer is None and page.older == newest_first[59]

    second = client.get(reverse("gallery"), {"before": page.older})
    assert ids_of(second) == newest_first[60:120]
    assert second.context["page"].newer == newest_first[60] and 'data-live="0"' in second.content.decode()

    third = client.get(reverse("gallery"), {"before": second.context["page"].older})
    assert ids_of(third) == newest_first[120:]
    assert third.context["page"].older is None

    back = client.get(reverse("gallery"), {"after": third.context["page"].newer})
    assert ids_of(back) == newest_first[60:120]
    back_to_first = client.get(reverse("gallery"), {"after": back.context["page"].newer})
    assert ids_of(back_to_first) == newest_first[:60] and back_to_first.context["page"].is_first


def test_a_burst_of_new_images_is_fetched_in_order_without_gaps(owner):
    job = make_job(owner, prompts=["p"], count=130)
    images = add_images(job, simple_specs(130))
    filters = reviews.GalleryFilters()
    first, more = reviews.images_newer_than(filters, images[0].pk)
    assert more and [i.pk for i in first] == [i.pk for i in reversed(images[1:61])]
    second, more = reviews.images_newer_than(filters, first[0].pk)
    third, more_after = reviews.images_newer_than(filters, second[0].pk)
    assert more and not more_after
    assert [i.pk for i in third + second + first] == [i.pk for i in reversed(images[1:])]


def test_keyset_pages_respect_filters(client, owner):
    job = make_job(owner, prompts=["a", "b"], count=70)
    specs = [(("alpha" if i % 2 else "beta"), i, 0) for i in range(140)]
    images = add_images(job, specs)
    alpha = [i.pk for i in reversed(images) if i.prompt == "alpha"]
    signed_in(client, owner)
    first = client.get(reverse("gallery"), {"q": "alpha"})
    second = client.get(reverse("gallery"), {"q": "alpha", "before": first.context["page"].older})
    assert ids_of(first) + ids_of(second) == alpha
    assert f'?q=alpha&amp;before={first.context["page"].older}' in first.content.decode()


def _gallery_queries(client, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("gallery"), params or {})
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_the_gallery_costs_the_same_queries_for_10_or_200_images(client, owner):
    signed_in(client, owner)
    job = make_job(owner, prompts=["p"], count=200)
    add_images(job, simple_specs(10))
    small = _gallery_queries(client)
    small_page_2 = _gallery_queries(client, {"before": Image.objects.order_by("-id")[4].pk})
    add_images(job, simple_specs(190, seed=1000))
    big = _gallery_queries(client)
    big_page_2 = _gallery_queries(client, {"before": Image.objects.order_by("-id")[100].pk})
    big_filtered = _gallery_queries(client, {"job": job.pk, "q": "p", "before": Image.objects.order_by("-id")[100].pk})
    assert small == big and small_page_2 == big_page_2
    assert big <= 8 and big_page_2 <= 9 and big_filtered <= 10
    cursor = Image.objects.order_by("-id")[100].pk
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("gallery"), {"before": cursor})
    sql = " ".join(q["sql"].upper() for q in ctx.captured_queries)
    assert "COUNT(" not in sql and "OFFSET" not in sql, sql


def test_the_live_partial_answers_only_images_newer_than_the_top(client, owner):
    job = make_job(owner)
    old = add_images(job, simple_specs(2))
    new = add_images(job, simple_specs(2, prompt="pixel slime", seed=900))
    signed_in(client, owner)
    response = client.get(reverse("gallery"), {"partial": "1", "after": old[-1].pk})
    html = response.content.decode()
    assert f'id="img-{new[0].pk}"' in html and f'id="img-{new[1].pk}"' in html
    assert f'id="img-{old[0].pk}"' not in html and "<html" not in html
    assert html.index(f'id="img-{new[1].pk}"') < html.index(f'id="img-{new[0].pk}"')  # newest first
    assert response["X-More"] == "0"
    filtered = client.get(reverse("gallery"), {"partial": "1", "after": old[-1].pk, "q": "knight"}).content.decode()
    assert "img-" not in filtered


# --- zips ------------------------------------------------------------------------------------

def _zip_names(response) -> dict[str, bytes]:
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    data = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_a_jobs_zip_holds_its_pngs_metadata_and_batch_info(client, owner, other, output_root):
    job = make_job(owner)
    images = add_images(job, [("pixel knight", 7, 0), ("pixel knight", 7, 1), ("pixel slime", 8, 0)], write=True)
    outputs.write_batch_info(job)
    images[1].set_review("approved")
    response = signed_in(client, other).get(reverse("job-zip", args=[job.pk]))
    assert f'filename="{job.output_dir}.zip"' in response["Content-Disposition"]
    files = _zip_names(response)
    d = job.output_dir
    assert sorted(files) == sorted([
        f"{d}/batch_info.json",
        f"{d}/images/sprite_0001_7.png", f"{d}/images/sprite_0002_7.png", f"{d}/images/sprite_0003_8.png",
        f"{d}/metadata/sprite_0001.json", f"{d}/metadata/sprite_0002.json", f"{d}/metadata/sprite_0003.json",
    ])
    assert files[f"{d}/images/sprite_0002_7.png"] == outputs.resolve(images[1].file_path).read_bytes()
    assert json.loads(files[f"{d}/metadata/sprite_0003.json"]) == {"sequence": 3, "seed": 8}

    approved = _zip_names(client.get(reverse("job-zip", args=[job.pk]), {"review": "approved"}))
    assert sorted(approved) == sorted([f"{d}/batch_info.json", f"{d}/images/sprite_0002_7.png", f"{d}/metadata/sprite_0002.json"])


def test_a_selection_zip_spans_jobs_and_lists_missing_files(client, owner, other, output_root):
    a = make_job(owner)
    b = make_job(other)
    ia = add_images(a, simple_specs(2), write=True)
    ib = add_images(b, simple_specs(1, seed=55), write=True)
    outputs.resolve(ia[1].file_path).unlink()
    response = signed_in(client, other).post(reverse("images-zip"), {"ids": f"{ia[1].pk},{ib[0].pk},{ia[0].pk}"})
    files = _zip_names(response)
    assert sorted(files) == sorted([
        f"{a.output_dir}/images/sprite_0001_100.png", f"{a.output_dir}/metadata/sprite_0001.json",
        f"{a.output_dir}/metadata/sprite_0002.json",
        f"{b.output_dir}/images/sprite_0001_55.png", f"{b.output_dir}/metadata/sprite_0001.json",
        "MISSING.txt",
    ])
    assert f"{a.output_dir}/images/sprite_0002_101.png" in files["MISSING.txt"].decode()
    assert client.post(reverse("images-zip"), {"ids": ""}).status_code == 400
    assert client.get(reverse("job-zip", args=[999999])).status_code == 404
    assert client.get(reverse("images-zip")).status_code == 405


def test_a_zip_never_reads_outside_the_output_root(client, owner, output_root, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    image = add_images(make_job(owner), simple_specs(1))[0]
    Image.objects.filter(pk=image.pk).update(file_path="../secret.png", metadata_path="")
    files = _zip_names(signed_in(client, owner).post(reverse("images-zip"), {"ids": str(image.pk)}))
    assert list(files) == ["MISSING.txt"] and b"refused" in files["MISSING.txt"]


# --- compare ------------------------------------------------------------------------------------

def test_compare_aligns_rows_by_prompt_and_seed_and_highlights_what_differs(client, owner, other):
    specs = [("pixel knight", 100, 0), ("pixel knight", 100, 1), ("pixel slime", 101, 0), ("pixel slime", 101, 1)]
    a = make_job(owner, cfg=7.0, batch_size=4)
    b = make_job(owner, cfg=9.5, lora="pixel_art_lora.safetensors", lora_strength_model=0.8, batch_size=4)
    ia = add_images(a, specs)
    ib = add_images(b, [specs[2], specs[3], specs[0]])  # other order, one image fewer
    response = signed_in(client, other).get(reverse("compare"), {"jobs": f"{a.pk},{b.pk}"})
    assert response.status_code == 200
    comparison = response.context["comparison"]
    assert comparison.mode == "seed"
    rows = [(r.prompt, r.label, [c.pk if c else None for c in r.cells]) for r in comparison.rows]
    assert rows == [
        ("pixel knight", "seed 100 · #1 in batch", [ia[0].pk, ib[2].pk]),
        ("pixel knight", "seed 100 · #2 in batch", [ia[1].pk, None]),
        ("pixel slime", "seed 101 · #1 in batch", [ia[2].pk, ib[0].pk]),
        ("pixel slime", "seed 101 · #2 in batch", [ia[3].pk, ib[1].pk]),
    ]
    differing = {p.key for p in comparison.differing}
    assert differing == {"cfg", "lora", "lora_strength"}
    html = response.content.decode()
    assert '<tr class="differs" data-param="cfg">' in html and '<tr class="same" data-param="steps">' in html
    assert html.count('class="cmp-colhead" data-job=') == 2
    assert "cmp-empty" in html  # the missing cell says so
    assert f'data-full="{reverse("image-file", args=[ia[0].pk])}"' in html


def test_compare_falls_back_to_prompt_order_when_seeds_differ(client, owner):
    a = make_job(owner, base_seed=None, steps=15)
    b = make_job(owner, base_seed=None, steps=30, sampler="dpmpp_2m", profile="quality")
    c = make_job(owner, base_seed=None, steps=30)
    ia = add_images(a, [("pixel knight", 11, 0), ("pixel knight", 12, 0), ("pixel slime", 13, 0)])
    ib = add_images(b, [("pixel slime", 21, 0), ("pixel knight", 22, 0), ("pixel knight", 23, 0)])
    ic = add_images(c, [("pixel knight", 31, 0)])
    response = signed_in(client, owner).get(reverse("compare"), {"job": [a.pk, b.pk, c.pk]})
    comparison = response.context["comparison"]
    assert comparison.mode == "sequence"
    assert [(r.prompt, r.label, [x.pk if x else None for x in r.cells]) for r in comparison.rows] == [
        ("pixel knight", "#1", [ia[0].pk, ib[1].pk, ic[0].pk]),
        ("pixel knight", "#2", [ia[1].pk, ib[2].pk, None]),
        ("pixel slime", "#1", [ia[2].pk, ib[0].pk, None]),
    ]
    assert {p.key for p in comparison.differing} == {"steps", "sampler", "profile"}
    assert "Seeds differ between these jobs" in response.content.decode()


def test_compare_with_different_batch_sizes_aligns_by_order(owner):
    a = make_job(owner, batch_size=4)
    b = make_job(owner, batch_size=1)
    add_images(a, [("p", 100, 0), ("p", 100, 1)])
    add_images(b, [("p", 100, 0), ("p", 101, 0)])
    comparison = compare.compare_jobs([a, b])
    assert comparison.mode == "sequence" and {p.key for p in comparison.differing} == {"batch_size"}


def test_compare_draws_the_first_rows_and_offers_the_rest(client, owner, monkeypatch):
    from batches.views import compare as compare_view

    monkeypatch.setattr(compare_view, "ROWS_SHOWN", 2)
    a, b = make_job(owner), make_job(owner, steps=30)
    add_images(a, simple_specs(3))
    add_images(b, simple_specs(3))
    signed_in(client, owner)
    response = client.get(reverse("compare"), {"jobs": f"{a.pk},{b.pk}"})
    assert len(response.context["rows"]) == 2 and response.context["rows_hidden"] == 1
    assert f"?jobs={a.pk},{b.pk}&amp;rows=all" in response.content.decode()
    everything = client.get(reverse("compare"), {"jobs": f"{a.pk},{b.pk}", "rows": "all"})
    assert len(everything.context["rows"]) == 3 and not everything.context["rows_hidden"]


def test_the_compare_picker_lists_finished_jobs_newest_first(client, owner):
    old = make_job(owner, finished_at=timezone.now() - timedelta(hours=2))
    new = make_job(owner)
    running = make_job(owner, status=Job.Status.RUNNING, finished_at=None)
    for job in (old, new, running):
        add_images(job, simple_specs(1))
    response = signed_in(client, owner).get(reverse("compare"))
    assert response.status_code == 200 and response.context["comparison"] is None
    assert [j.pk for j in response.context["candidates"]] == [new.pk, old.pk]
    assert 'name="job"' in response.content.decode()


@pytest.mark.parametrize("query, status, words", [
    ({"jobs": "1"}, 200, "at least one more job"),
    ({"jobs": "1,2,3,4,5"}, 400, "at most 4"),
    ({"jobs": "1,x"}, 400, "not a job id"),
    ({"jobs": "999998,999999"}, 404, "no job 999998"),
])
def test_compare_explains_a_request_it_cannot_draw(client, owner, query, status, words):
    response = signed_in(client, owner).get(reverse("compare"), query)
    assert response.status_code == status and words in response.content.decode()


# --- statistics ------------------------------------------------------------------------------

def test_the_throughput_series_counts_images_per_bucket(owner):
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    job = make_job(owner, prompts=["p"], count=20)
    add_images(job, simple_specs(6), created_at=now - timedelta(minutes=2))
    add_images(job, simple_specs(4, seed=50), created_at=now - timedelta(minutes=47))
    add_images(job, simple_specs(3, seed=80), created_at=now - timedelta(hours=7))  # outside 6 h
    series = stats.throughput_series(hours=1, now=now)
    assert series["bucket_minutes"] == 1 and len(series["buckets"]) == 60 and series["total"] == 10
    by_start = {b["start"]: b["images"] for b in series["buckets"] if b["images"]}
    assert by_start == {now - timedelta(minutes=2): 6, now - timedelta(minutes=47): 4}
    six = stats.throughput_series(hours=6, now=now)
    assert six["bucket_minutes"] == 5 and six["total"] == 10 and six["peak"] == pytest.approx(6 / 5)
    assert stats.throughput_series(hours=99, now=now)["hours"] == 6


def test_the_statistics_page_shows_throughput_speed_queue_and_outcomes(client, owner, other):
    done = make_job(owner, profile="speed", batch_size=8)
    failed = make_job(owner, profile="quality", status=Job.Status.FAILED, batch_size=1)
    make_job(owner, status=Job.Status.QUEUED, finished_at=None)
    images = add_images(done, [("p", 1, i) for i in range(8)], created_at=timezone.now() - timedelta(minutes=1))
    Image.objects.filter(pk__in=[i.pk for i in images]).update(generation_time=2.0)
    Unit.objects.create(job=failed, index=0, prompt_index=0, prompt="p", seed=1, batch_size=1, first_sequence=1,
                        status=Unit.Status.FAILED)
    Job.objects.filter(pk=failed.pk).update(images_failed=1)
    response = signed_in(client, other).get(reverse("stats"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="st-bar"') == 1  # one bucket with images
    assert '<tr data-profile="speed" data-batch="8"><td>speed</td><td class="num">8</td><td class="num">8</td>' \
           '<td class="num">2.00</td><td class="num">30.0</td></tr>' in html
    assert '<dd data-status="completed">1</dd>' in html and '<dd data-status="failed">1</dd>' in html
    assert '<dd data-status="queued">1</dd>' in html
    assert 'data-stat="images-done">8<' in html
    partial = client.get(reverse("stats"), {"partial": "1", "hours": "24"})
    assert "<html" not in partial.content.decode() and partial.context["series"]["bucket_minutes"] == 15
