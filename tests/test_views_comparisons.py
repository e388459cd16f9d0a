"""Comparisons' doors (issue 14): the form's Compare section, the grid page and its exports,
cancelling, blind judging and its results, the admin and the Python API.

The usual cast: `owner` submitted the comparison, `other` is another artist, `staff` may change
anything. ComfyUI is a dead port unless a test says so; images are written as the worker records
them (a real PNG under OUTPUT_ROOT and its Image row).
"""
from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse
from PIL import Image as PILImage

from batches import api
from batches import forms as job_forms
from batches.models import Comparison, Image, Job, Unit, Vote
from batches.services import comparison_grid, outputs
from batches.services.comparisons import blind_order, comparison_submit
from batches.services.submission import SubmissionError
from tests.processes import free_port

pytestmark = pytest.mark.django_db

FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
FORM = {"prompts": "pixel art slime", "count": "2", "profile": "speed", "batch_size": "1",
        "steps": "4", "cfg": "7", "sampler": "euler", "scheduler": "karras", "width": "64", "height": "64",
        "seed": "", "checkpoint": "", "lora": "", "lora_strength": "1.0", "lora_strength_clip": "",
        "negative_prompt": "", "workflow": "batch_optimized", "priority": "normal", "name": "slimes"}


@pytest.fixture(autouse=True)
def dead_comfyui(settings, output_root):
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"
    job_forms._cache.clear()


def signed_in(client, user):
    client.force_login(user)
    return client


def make_comparison(owner, axes=None, **params) -> Comparison:
    base = {"prompts": ["pixel art slime"], "count": 2, "batch_size": 1, "steps": 4, "width": 64, "height": 64,
            "client": None, "wake": False, "seed": 500}
    return comparison_submit(owner=owner, axes=axes or {"cfg": [6, 8], "steps": [4, 6]}, **{**base, **params})


def fill(job: Job, colour=(200, 40, 90, 255)) -> list[Image]:
    """Record an image for every unit of the job, as the worker would, and mark it done."""
    images = []
    for unit in job.units.order_by("index"):
        name = outputs.image_name(unit.first_sequence, unit.seed)
        folder = outputs.job_dir(job)
        buf = io.BytesIO()
        PILImage.new("RGBA", (job.width, job.height), colour).save(buf, format="PNG")
        outputs.atomic_write(folder / "images" / name, buf.getvalue())
        outputs.atomic_write(folder / "thumbs" / name, buf.getvalue())
        outputs.atomic_write_json(folder / "metadata" / outputs.metadata_name(unit.first_sequence), {"seed": unit.seed})
        rel = f"batches/{job.output_dir}"
        images.append(Image.objects.create(
            job=job, unit=unit, sequence=unit.first_sequence, batch_index=0, prompt=unit.prompt, seed=unit.seed,
            file_path=f"{rel}/images/{name}", thumb_path=f"{rel}/thumbs/{name}",
            metadata_path=f"{rel}/metadata/{outputs.metadata_name(unit.first_sequence)}",
            width=job.width, height=job.height, metadata={"seed": unit.seed}))
    job.units.update(status=Unit.Status.DONE)
    Job.objects.filter(pk=job.pk).update(images_done=len(images), status=Job.Status.COMPLETED)
    return images


def compare_form(**rows) -> dict:
    data = dict(FORM)
    for n, (axis, values) in enumerate(rows.items(), start=1):
        data[f"compare_axis_{n}"] = axis
        data[f"compare_values_{n}"] = values
    return data


# --- the form's Compare section -----------------------------------------------------------------

def test_the_form_shows_a_compare_section_with_three_axis_rows(client, owner):
    response = signed_in(client, owner).get(reverse("job-new"))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="field-compare"' in body and 'data-max-cells="27"' in body
    for n in (1, 2, 3):
        assert f'name="compare_axis_{n}"' in body and f'name="compare_values_{n}"' in body
    assert '<option value="lora_strength">' in body


def test_submitting_with_axes_queues_a_comparison_and_goes_to_its_page(client, owner):
    response = signed_in(client, owner).post(reverse("job-new"), compare_form(cfg="6, 8", steps="4,6"))
    comparison = Comparison.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("comparison-detail", args=[comparison.pk])
    cells = list(comparison.cells.order_by("id"))
    assert [c.cell for c in cells] == [{"cfg": 6.0, "steps": 4}, {"cfg": 6.0, "steps": 6},
                                       {"cfg": 8.0, "steps": 4}, {"cfg": 8.0, "steps": 6}]
    assert {(c.cfg, c.steps) for c in cells} == {(6.0, 4), (6.0, 6), (8.0, 4), (8.0, 6)}
    assert all(c.prompts == ["pixel art slime"] and c.images_planned == 2 and c.name.startswith("slimes")
               for c in cells)


def test_a_form_without_axes_still_queues_one_plain_job(client, owner):
    response = signed_in(client, owner).post(reverse("job-new"), FORM)
    job = Job.objects.get()
    assert response["Location"] == reverse("job-detail", args=[job.pk]) and job.comparison is None


@pytest.mark.parametrize("rows, expected", [
    ({"cgf": "6, 8"}, "did you mean 'cfg'"),
    ({"cfg": "6, 8", "steps": "4, 6", "sampler": "euler, euler"}, "given twice"),
    ({"cfg": "6, 6"}, "value 6.0 given twice"),
    ({"cfg": "1,2,3,4", "steps": "4,5,6", "lora_strength": "0.5,1,1.5"}, "36 cells; the limit is 27"),
])
def test_a_bad_compare_section_is_listed_next_to_it_and_nothing_is_queued(client, owner, rows, expected):
    response = signed_in(client, owner).post(reverse("job-new"), compare_form(**rows))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert any(expected in message for message in errors["compare"]), errors
    assert 'id="id_compare_error"' in response.content.decode()
    assert not Job.objects.exists() and not Comparison.objects.exists()


def test_a_duplicate_axis_is_named_next_to_the_compare_section(client, owner):
    data = compare_form(cfg="6, 8")
    data.update(compare_axis_2="cfg", compare_values_2="7, 9")
    response = signed_in(client, owner).post(reverse("job-new"), data)
    assert any("axis 'cfg' given twice" in m for m in response.context["form"].errors["compare"])
    assert not Comparison.objects.exists()


def test_an_unknown_checkpoint_is_refused_when_comfyui_lists_its_models(client, owner, simulator, settings):
    settings.COMFYUI_URL = simulator
    job_forms._cache.clear()
    response = signed_in(client, owner).post(reverse("job-new"),
                                             compare_form(checkpoint="sd_xl_base_1.0.safetensors, nope.safetensors"))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert any("nope.safetensors" in m for m in errors["checkpoint"]), errors
    assert not Comparison.objects.exists() and not Job.objects.exists()


def test_the_other_fields_errors_stay_next_to_their_fields(client, owner):
    data = compare_form(cfg="6, 8")
    data["width"] = "100"
    response = signed_in(client, owner).post(reverse("job-new"), data)
    assert response.status_code == 400
    assert any("multiple of 8" in m for m in response.context["form"].errors["width"])
    assert not Comparison.objects.exists()


# --- the grid page --------------------------------------------------------------------------------

def test_the_comparison_page_shows_the_grid_legend_and_exports(client, owner, other):
    comparison = make_comparison(owner)
    fill(comparison.cells.order_by("id").first())
    response = signed_in(client, other).get(reverse("comparison-detail", args=[comparison.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "cfg=6" in body and "cfg=8" in body and "pixel art slime · seed 500" in body
    assert body.count('class="cmp-img is-fit"') == 2  # the first cell's two images
    assert 'id="cmp-legend"' in body and "Images per prompt" in body
    assert reverse("comparison-png", args=[comparison.pk]) in body
    assert reverse("comparison-zip", args=[comparison.pk]) in body
    assert 'id="cancel-comparison"' not in body  # another artist may look, not cancel


def test_the_owner_sees_cancel_on_the_page_and_on_each_running_cell(client, owner):
    comparison = make_comparison(owner)
    body = signed_in(client, owner).get(reverse("comparison-detail", args=[comparison.pk])).content.decode()
    assert 'id="cancel-comparison"' in body
    assert body.count("data-cancel-cell") == 4


def test_the_comparison_page_answers_404_for_a_missing_one(client, owner):
    signed_in(client, owner)
    assert client.get(reverse("comparison-detail", args=[999])).status_code == 404
    assert client.get("/comparisons/99999999999999999999/").status_code == 404


def test_an_anonymous_visitor_is_sent_to_sign_in(client, owner):
    comparison = make_comparison(owner)
    for name in ("comparison-detail", "comparison-png", "comparison-zip", "comparison-judge"):
        response = client.get(reverse(name, args=[comparison.pk]))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), name
    response = client.post(reverse("comparison-vote", args=[comparison.pk]), {"slot": 0, "winner": 1})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not Vote.objects.exists()


def test_the_grid_partial_lays_out_the_rows_and_columns_asked_for(client, owner):
    comparison = make_comparison(owner)
    url = reverse("comparison-detail", args=[comparison.pk])
    response = signed_in(client, owner).get(url, {"partial": "grid", "rows": "steps", "cols": "cfg"})
    assert response.status_code == 200
    grid = response.context["grid"]
    assert (grid["rows"], grid["cols"], grid["columns"]) == ("steps", "cfg", ["cfg=6", "cfg=8"])
    assert [row["label"] for row in grid["table"]] == ["steps=4", "steps=6"]
    assert all(len(items) == 2 for row in grid["table"] for items in row["cells"])  # the two prompt/seeds
    assert "<html" not in response.content.decode()
    assert client.get(url, {"partial": "grid", "rows": "colour"}).status_code == 400


def test_the_job_page_links_to_its_comparison(client, owner):
    comparison = make_comparison(owner)
    job = comparison.cells.first()
    body = signed_in(client, owner).get(reverse("job-detail", args=[job.pk])).content.decode()
    assert f"Cell of comparison {comparison.pk}" in body


# --- exports ------------------------------------------------------------------------------------

def test_the_grid_png_has_the_layouts_size_and_draws_the_images(client, owner):
    comparison = make_comparison(owner)
    for job in comparison.cells.all():
        fill(job)
    response = signed_in(client, owner).get(reverse("comparison-png", args=[comparison.pk]),
                                            {"rows": "slot", "cols": "cfg"})
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    picture = PILImage.open(io.BytesIO(response.content)).convert("RGB")
    # 2 columns (cfg) of 2 items (steps) each; 2 rows (prompt/seed); 64 px images drawn at 2x.
    P, L, T = comparison_grid.PAD, comparison_grid.LINE, 128
    col_w = 2 * T + P
    assert picture.size == (P + comparison_grid.LABEL_W + 2 * (col_w + P), (P + L + P + L + P) + 2 * (T + L + P))
    x0, y0 = P + comparison_grid.LABEL_W, P + L + P + L + P
    assert picture.getpixel((x0 + 10, y0 + 10)) == (200, 40, 90)  # an image, scaled up
    header = picture.crop((x0, P + L + P, x0 + col_w, y0 - P))
    assert len(header.getcolors(1 << 16)) > 1  # the column's label is drawn


def test_the_grid_png_marks_cells_still_waiting(client, owner):
    comparison = make_comparison(owner)
    response = signed_in(client, owner).get(reverse("comparison-png", args=[comparison.pk]))
    picture = PILImage.open(io.BytesIO(response.content)).convert("RGB")
    P, L = comparison_grid.PAD, comparison_grid.LINE
    x0, y0 = P + comparison_grid.LABEL_W, P + L + P + L + P
    assert picture.getpixel((x0 + 64, y0 + 100)) == (232, 232, 232)


def test_the_zip_lists_every_cells_images(client, owner, other):
    comparison = make_comparison(owner)
    expected = {img.file_path.split("/")[-1] for job in comparison.cells.all() for img in fill(job)}
    response = signed_in(client, other).get(reverse("comparison-zip", args=[comparison.pk]))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    pngs = [n for n in archive.namelist() if n.endswith(".png")]
    assert len(pngs) == 8 and {n.split("/")[-1] for n in pngs} == expected
    assert len({n.split("/")[0] for n in pngs}) == 4  # a folder per cell


# --- cancelling -----------------------------------------------------------------------------------

def test_the_owner_cancels_the_whole_comparison(client, owner):
    comparison = make_comparison(owner)
    response = signed_in(client, owner).post(reverse("comparison-cancel", args=[comparison.pk]), **FETCH)
    assert response.status_code == 200 and response.json()["ok"]
    assert set(comparison.cells.values_list("status", flat=True)) == {Job.Status.CANCELLED}


def test_staff_may_cancel_and_another_artist_may_not(client, owner, other, staff):
    comparison = make_comparison(owner)
    response = signed_in(client, other).post(reverse("comparison-cancel", args=[comparison.pk]))
    assert response.status_code == 403
    assert set(comparison.cells.values_list("status", flat=True)) == {Job.Status.QUEUED}
    response = signed_in(client, staff).post(reverse("comparison-cancel", args=[comparison.pk]))
    assert response.status_code == 302
    assert set(comparison.cells.values_list("status", flat=True)) == {Job.Status.CANCELLED}


def test_cancelling_a_missing_comparison_answers_404(client, owner):
    assert signed_in(client, owner).post(reverse("comparison-cancel", args=[42])).status_code == 404


# --- blind judging --------------------------------------------------------------------------------

def test_the_judge_page_shows_one_slot_blind_in_the_users_order(client, owner, other):
    comparison = make_comparison(owner)
    for job in comparison.cells.all():
        fill(job)
    response = signed_in(client, other).get(reverse("comparison-judge", args=[comparison.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert response.context["round"]["slot"] == 0
    order = [o["job"].pk for o in response.context["round"]["options"]]
    assert order == [j.pk for j in blind_order(comparison, other, 0)]
    assert "cfg=6" not in body and "steps=4" not in body  # labels hidden
    assert body.count('class="judge-option"') == 4


def test_a_vote_is_recorded_and_the_next_slot_follows(client, owner, other):
    comparison = make_comparison(owner)
    winner = comparison.cells.order_by("id")[2]
    signed_in(client, other)
    response = client.post(reverse("comparison-vote", args=[comparison.pk]), {"slot": 0, "winner": winner.pk}, **FETCH)
    assert response.status_code == 200 and response.json() == {
        "ok": True, "next": 1, "redirect": reverse("comparison-judge", args=[comparison.pk])}
    assert Vote.objects.get().winner == winner
    response = client.post(reverse("comparison-vote", args=[comparison.pk]), {"slot": 1, "winner": winner.pk})
    assert response.status_code == 302
    page = client.get(reverse("comparison-judge", args=[comparison.pk]))
    assert page.context["round"] is None and page.context["show_results"]


@pytest.mark.parametrize("data", [{"slot": 0, "winner": 999999}, {"slot": 7, "winner": None}, {"slot": "x", "winner": 1},
                                  {"slot": 0}])
def test_a_vote_for_something_not_in_the_comparison_answers_400(client, owner, data):
    comparison = make_comparison(owner)
    other_comparison = make_comparison(owner)
    if data.get("winner") is None and "winner" in data:
        data = {**data, "winner": comparison.cells.first().pk}
    if data.get("winner") == 999999:
        data = {**data, "winner": other_comparison.cells.first().pk}
    response = signed_in(client, owner).post(reverse("comparison-vote", args=[comparison.pk]), data, **FETCH)
    assert response.status_code == 400 and not response.json()["ok"]
    assert not Vote.objects.exists()


def test_voting_on_a_missing_comparison_answers_404(client, owner):
    assert signed_in(client, owner).post(reverse("comparison-vote", args=[77]), {"slot": 0, "winner": 1}).status_code == 404


def test_the_tally_counts_wins_per_axis_value_for_the_user_and_the_team(client, owner, other):
    comparison = make_comparison(owner)
    cells = {tuple(sorted(j.cell.items())): j for j in comparison.cells.all()}
    best = cells[(("cfg", 8.0), ("steps", 6))]
    low = cells[(("cfg", 6.0), ("steps", 6))]
    for user, picks in ((owner, [best, best]), (other, [best, low])):
        signed_in(client, user)
        for slot, job in enumerate(picks):
            client.post(reverse("comparison-vote", args=[comparison.pk]), {"slot": slot, "winner": job.pk})
    response = client.get(reverse("comparison-judge", args=[comparison.pk]))  # as `other`
    mine = {(r["axis"], r["value"]): (r["wins"], r["votes"]) for r in response.context["mine"]}
    team = {(r["axis"], r["value"]): (r["wins"], r["votes"], r["rate"]) for r in response.context["team"]}
    assert mine == {("cfg", 6.0): (1, 2), ("cfg", 8.0): (1, 2), ("steps", 4): (0, 2), ("steps", 6): (2, 2)}
    assert team[("cfg", 8.0)] == (3, 4, 0.75) and team[("steps", 6)] == (4, 4, 1.0) and team[("steps", 4)][0] == 0
    body = response.content.decode()
    assert 'data-tally="team"' in body and "75%" in body


def test_reveal_shows_which_cell_was_which_only_when_asked(client, owner):
    comparison = make_comparison(owner)
    pick = comparison.cells.order_by("id")[1]  # cfg=6, steps=6
    signed_in(client, owner)
    for slot in (0, 1):
        client.post(reverse("comparison-vote", args=[comparison.pk]), {"slot": slot, "winner": pick.pk})
    hidden = client.get(reverse("comparison-judge", args=[comparison.pk])).content.decode()
    assert "cfg=6.0, steps=6" not in hidden and "data-revealed" not in hidden and 'id="reveal"' in hidden
    shown = client.get(reverse("comparison-judge", args=[comparison.pk]), {"reveal": "1"}).content.decode()
    assert shown.count("data-revealed") == 2 and "cfg=6.0, steps=6" in shown
    assert not hasattr(comparison, "revealed")  # nothing is stored: the query asks


def test_the_judge_page_answers_404_for_a_missing_comparison_or_row(client, owner):
    comparison = make_comparison(owner)
    signed_in(client, owner)
    assert client.get(reverse("comparison-judge", args=[555])).status_code == 404
    assert client.get(reverse("comparison-judge", args=[comparison.pk]), {"slot": "9"}).status_code == 404


# --- the admin and the Python API -----------------------------------------------------------------

def test_the_admin_lists_comparisons_with_their_cells_and_votes(client, owner, staff, django_user_model):
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    comparison = make_comparison(owner)
    Vote.objects.create(comparison=comparison, user=owner, slot=0, winner=comparison.cells.first())
    signed_in(client, staff)
    page = client.get(reverse("admin:batches_comparison_change", args=[comparison.pk])).content.decode()
    assert page.count('name="cells-') >= 4 and "steps" in page
    votes = client.get(reverse("admin:batches_vote_changelist")).content.decode()
    assert "cfg=6.0, steps=4" in votes


def test_the_api_submits_and_gets_a_comparison(owner):
    comparison = api.submit_comparison(owner=owner, axes=["cfg=6,8"], prompts=["pixel art coin"], count=1,
                                       width=64, height=64, client=None, wake=False)
    assert api.get_comparison(comparison.pk).cells.count() == 2
    assert api.get_comparison_progress(comparison.pk)["images_planned"] == 2
    with pytest.raises(SubmissionError) as exc:
        api.submit_comparison(owner=owner, axes={"cfg": [6]}, prompts=["x"], client=None, wake=False)
    assert "compare" in exc.value.errors
