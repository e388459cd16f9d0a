"""The pages of sheets, animations and tilesets (issue 13): the job page's Sheets card (export, the
files), its Animation card (playback settings, frame order, "Export animation"), the gallery's
"Download sheet", seam scores and seam sort, and the admin.

The usual cast: `owner` made the jobs, `other` is another artist, `staff` may change anything.
Sprites are written here as the sprite worker records them (a PNG under OUTPUT_ROOT and the row's
sprite fields), each frame a different picture so animated formats keep every frame.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image as PILImage

from batches.models import Image, Job, SheetExport
from batches.services import outputs
from batches.services import review as reviews
from batches.services import sheets
from tests.test_views_review import add_images, make_job, simple_specs

pytestmark = pytest.mark.django_db

FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
SPRITE = (12, 10)


@pytest.fixture(autouse=True)
def _outputs(output_root):
    """Every test writes under its own OUTPUT_ROOT."""
    return output_root


def signed_in(client, user):
    client.force_login(user)
    return client


def with_sprites(images: list[Image], *, size=SPRITE) -> list[Image]:
    """Give each image a sprite of its own (a colour and a marker pixel by sequence), as the worker would."""
    for image in images:
        relative = f"batches/{image.job.output_dir}/sprites/{outputs.image_name(image.sequence, image.seed)}"
        picture = PILImage.new("RGBA", size, (20 * image.sequence % 255, 90, 160, 255))
        picture.putpixel((image.sequence % size[0], 0), (255, 255, 0, 255))
        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        outputs.atomic_write(outputs.output_root() / relative, buf.getvalue())
        Image.objects.filter(pk=image.pk).update(sprite_state=Image.Sprite.DONE, sprite_path=relative, sprite_run=1,
                                                 sprite_info={"size": list(size), "palette": ["#145aa0"]})
        image.refresh_from_db()
    return images


def sprite_job(owner, count=4, **fields) -> tuple[Job, list[Image]]:
    job = make_job(owner, **fields)
    return job, with_sprites(add_images(job, simple_specs(count), write=True))


def sheets_folder(job: Job) -> Path:
    return outputs.job_dir(job) / "sheets"


def written(job: Job) -> list[str]:
    folder = sheets_folder(job)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def export_url(job) -> str:
    return reverse("job-sheets-export", args=[job.pk])


def file_url(export: SheetExport, name: str) -> str:
    return reverse("job-sheet-file", args=[export.job_id, export.pk, name])


def body(response) -> bytes:
    return b"".join(response.streaming_content)


# --- the job page's cards ------------------------------------------------------------------------

def test_the_job_page_lists_the_exports_with_a_download_link_per_file(client, owner, other):
    job, _ = sprite_job(owner, 2)
    made = sheets.export_job(job, sheets.SheetRequest(gif=True), by="owner")
    response = signed_in(client, other).get(reverse("job-detail", args=[job.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="job-sheets"' in html and made.export.name in html
    for path in made.files:
        assert f'href="{file_url(made.export, path.name)}"' in html
    assert 'id="sheet-form"' not in html  # another artist downloads, but does not export


def test_the_owner_sees_the_export_form_and_the_partial_draws_the_list_alone(client, owner):
    job, _ = sprite_job(owner, 2)
    page = signed_in(client, owner).get(reverse("job-detail", args=[job.pk]))
    assert 'id="sheet-form"' in page.content.decode() and "No sheets yet" in page.content.decode()
    sheets.export_job(job, sheets.SheetRequest(), by="owner")
    partial = client.get(reverse("job-detail", args=[job.pk]) + "?partial=sheets")
    assert partial.status_code == 200
    assert "sheet_grid.png" in partial.content.decode() and "<html" not in partial.content.decode()


def test_an_animation_job_opens_its_player_with_the_frames_in_the_artists_order(client, owner):
    job, images = sprite_job(owner, 4, profile="animation")
    sheets.set_frame_order(job, order=[images[2].pk, images[0].pk, images[3].pk], dropped=[images[1].pk])
    html = signed_in(client, owner).get(reverse("job-detail", args=[job.pk])).content.decode()
    assert '<details class="card animation-card" id="animation" open' in html
    strip = html[html.index('id="frame-strip"'):]
    places = [strip.index(f'data-id="{i.pk}"') for i in (images[2], images[0], images[3], images[1])]
    assert places == sorted(places)  # kept frames in play order, the dropped one last
    assert 'data-dropped="1"' in strip[places[3]:]
    assert 'id="anim-export-button"' in html and 'data-frames-save' in html


def test_other_jobs_offer_play_as_animation_closed_and_a_single_image_job_no_player(client, owner, other):
    job, _ = sprite_job(owner, 2)
    html = signed_in(client, other).get(reverse("job-detail", args=[job.pk])).content.decode()
    assert '<details class="card animation-card" id="animation" data-job' in html and "Play as animation" in html
    assert 'id="anim-export-button"' not in html  # not theirs to arrange
    lone, _ = sprite_job(owner, 1)
    assert 'id="animation"' not in client.get(reverse("job-detail", args=[lone.pk])).content.decode()


# --- exporting ------------------------------------------------------------------------------------

def test_the_owner_exports_a_sheet_and_the_page_gets_json(client, owner):
    job, _ = sprite_job(owner, 3)
    response = signed_in(client, owner).post(export_url(job), {
        "layout": "grid", "columns": "2", "cell": "16x12", "padding": "1", "format": "aseprite-hash", "gif": "1"}, **FETCH)
    assert response.status_code == 200 and response.json()["ok"], response.content
    export = SheetExport.objects.get(job=job)
    assert export.kind == "sheet" and export.frames == 3 and (export.width, export.height) == (33, 25)
    assert "3 frames, 33×25, 3 files" in response.json()["message"]
    assert written(job) == ["sheet_grid.gif", "sheet_grid.json", "sheet_grid.png"]
    atlas = json.loads((sheets_folder(job) / "sheet_grid.json").read_text())
    assert isinstance(atlas["frames"], dict) and len(atlas["frames"]) == 3


def test_staff_may_export_and_without_javascript_the_form_lands_back_on_the_card(client, owner, staff):
    job, _ = sprite_job(owner, 2)
    response = signed_in(client, staff).post(export_url(job), {"layout": "packed", "format": "aseprite-array"})
    assert response.status_code == 302 and response["Location"].endswith(f"/jobs/{job.pk}/#job-sheets")
    assert SheetExport.objects.get(job=job).by == "boss"


def test_another_artist_may_not_export_and_nothing_is_written(client, owner, other):
    job, _ = sprite_job(owner, 2)
    assert signed_in(client, other).post(export_url(job), {"layout": "grid"}, **FETCH).status_code == 403
    assert not SheetExport.objects.exists() and written(job) == []


def test_exporting_for_a_missing_job_is_404_and_get_is_405(client, owner):
    job, _ = sprite_job(owner, 1)
    signed_in(client, owner)
    assert client.post(reverse("job-sheets-export", args=[job.pk + 99]), {}, **FETCH).status_code == 404
    assert client.get(export_url(job)).status_code == 405


@pytest.mark.parametrize("fields, message", [
    ({"layout": "diamond"}, "layout"),
    ({"columns": "two"}, "columns: 'two' is not a whole number"),
    ({"columns": "0"}, "columns: 0: give 1 to 1000"),
    ({"cell": "big"}, "cell: 'big': give the cell as WxH"),
    ({"padding": "99"}, "padding: 99: give 0 to 64"),
    ({"format": "xml"}, "format"),
    ({"approved": "1"}, "no approved images to pack"),
    ({"format": "tiled", "layout": "packed"}, "Tiled tileset needs tiles of one size"),
])
def test_a_bad_export_is_400_with_the_message_and_writes_nothing(client, owner, fields, message):
    job, _ = sprite_job(owner, 2)
    response = signed_in(client, owner).post(export_url(job), fields, **FETCH)
    assert response.status_code == 400
    assert message in response.json()["message"] and response.json()["message"].startswith("Nothing exported")
    assert not SheetExport.objects.exists() and written(job) == []


def test_a_sprite_gone_from_disk_is_said_and_nothing_is_written(client, owner):
    job, images = sprite_job(owner, 2)
    outputs.resolve(images[1].sprite_path).unlink()
    response = signed_in(client, owner).post(export_url(job), {}, **FETCH)
    assert response.status_code == 400 and "missing from the output folder" in response.json()["message"]
    assert not SheetExport.objects.exists() and written(job) == []


# --- the files of an export -----------------------------------------------------------------------

def test_any_signed_in_artist_downloads_a_listed_file_as_an_attachment(client, owner, other):
    job, _ = sprite_job(owner, 2)
    made = sheets.export_job(job, sheets.SheetRequest(gif=True, apng=True), by="owner")
    signed_in(client, other)
    for path in made.files:
        response = client.get(file_url(made.export, path.name))
        assert response.status_code == 200, path.name
        assert response["Content-Disposition"] == f'attachment; filename="{path.name}"'
        assert body(response) == path.read_bytes()
    assert client.get(file_url(made.export, "sheet_grid.json"))["Content-Type"] == "application/json"
    assert client.get(file_url(made.export, "sheet_grid.gif"))["Content-Type"] == "image/gif"


def test_a_file_the_export_does_not_list_is_404_even_in_its_folder(client, owner):
    job, _ = sprite_job(owner, 2)
    made = sheets.export_job(job, sheets.SheetRequest(), by="owner")
    outputs.atomic_write(sheets_folder(job) / "secret.png", b"not listed")
    outputs.atomic_write(outputs.job_dir(job) / "batch_notes.json", b"{}")
    signed_in(client, owner)
    assert client.get(file_url(made.export, "secret.png")).status_code == 404
    assert client.get(file_url(made.export, "sheet_grid.gif")).status_code == 404
    assert client.get(f"/jobs/{job.pk}/sheets/{made.export.pk}/..%2Fbatch_notes.json").status_code == 404


def test_a_missing_job_export_or_file_on_disk_is_404(client, owner):
    job, _ = sprite_job(owner, 2)
    elsewhere, _ = sprite_job(owner, 2)
    made = sheets.export_job(job, sheets.SheetRequest(), by="owner")
    signed_in(client, owner)
    assert client.get(reverse("job-sheet-file", args=[job.pk + 99, made.export.pk, "sheet_grid.png"])).status_code == 404
    assert client.get(reverse("job-sheet-file", args=[job.pk, made.export.pk + 99, "sheet_grid.png"])).status_code == 404
    assert client.get(reverse("job-sheet-file", args=[elsewhere.pk, made.export.pk, "sheet_grid.png"])).status_code == 404
    assert client.get(f"/jobs/{job.pk}/sheets/{2**64}/sheet_grid.png").status_code == 404
    (sheets_folder(job) / "sheet_grid.json").unlink()
    assert client.get(file_url(made.export, "sheet_grid.json")).status_code == 404


def test_a_listed_file_that_leads_outside_the_output_folder_is_refused(client, owner, tmp_path):
    job, _ = sprite_job(owner, 2)
    made = sheets.export_job(job, sheets.SheetRequest(), by="owner")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"secret")
    png = sheets_folder(job) / "sheet_grid.png"
    png.unlink()
    png.symlink_to(outside)
    assert signed_in(client, owner).get(file_url(made.export, "sheet_grid.png")).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in_for_every_sheet_view(client, owner):
    job, images = sprite_job(owner, 2)
    made = sheets.export_job(job, sheets.SheetRequest(), by="owner")
    for method, url in [("get", file_url(made.export, "sheet_grid.png")), ("post", export_url(job)),
                        ("post", reverse("job-animation", args=[job.pk])), ("post", reverse("job-frames", args=[job.pk])),
                        ("post", reverse("images-sheet"))]:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and reverse("login") in response["Location"], url


# --- the animation: playback settings and frame order --------------------------------------------

def test_the_owner_saves_how_the_frames_play(client, owner):
    job, _ = sprite_job(owner, 3, profile="animation")
    response = signed_in(client, owner).post(reverse("job-animation", args=[job.pk]),
                                             {"fps": "12", "loop": "pingpong", "onion": ["false", "true"]}, **FETCH)
    assert response.status_code == 200 and "12 fps, pingpong, onion skin" in response.json()["message"]
    job.refresh_from_db()
    assert job.animation == {"fps": 12, "loop": "pingpong", "onion": True}
    client.post(reverse("job-animation", args=[job.pk]), {"onion": "false"}, **FETCH)
    job.refresh_from_db()
    assert job.animation == {"fps": 12, "loop": "pingpong", "onion": False}  # the rest kept


@pytest.mark.parametrize("fields, message", [
    ({"fps": "0"}, "fps: 0: give 1 to 60"), ({"fps": "fast"}, "fps: 'fast' is not a whole number"),
    ({"loop": "sideways"}, "loop: 'sideways'"),
])
def test_bad_playback_settings_are_400_and_change_nothing(client, owner, fields, message):
    job, _ = sprite_job(owner, 2, profile="animation")
    response = signed_in(client, owner).post(reverse("job-animation", args=[job.pk]), fields, **FETCH)
    assert response.status_code == 400 and message in response.json()["message"]
    job.refresh_from_db()
    assert job.animation is None


def test_playback_and_frames_are_the_owners_or_staffs_to_change(client, owner, other, staff):
    job, images = sprite_job(owner, 2, profile="animation")
    signed_in(client, other)
    assert client.post(reverse("job-animation", args=[job.pk]), {"fps": "5"}, **FETCH).status_code == 403
    assert client.post(reverse("job-frames", args=[job.pk]), {"order": str(images[1].pk)}, **FETCH).status_code == 403
    job.refresh_from_db()
    assert job.animation is None and not Image.objects.filter(frame_order__isnull=False).exists()
    signed_in(client, staff)
    assert client.post(reverse("job-animation", args=[job.pk]), {"fps": "5"}, **FETCH).status_code == 200
    order = f"{images[1].pk},{images[0].pk}"
    assert client.post(reverse("job-frames", args=[job.pk]), {"order": order}, **FETCH).status_code == 200


def test_missing_jobs_are_404_and_get_is_405_for_playback_and_frames(client, owner):
    job, _ = sprite_job(owner, 2)
    signed_in(client, owner)
    for name in ("job-animation", "job-frames"):
        assert client.post(reverse(name, args=[job.pk + 99]), {"fps": "5", "order": "1"}, **FETCH).status_code == 404
        assert client.get(reverse(name, args=[job.pk])).status_code == 405


def test_the_frame_strip_saves_the_order_and_the_dropped_frames(client, owner):
    job, images = sprite_job(owner, 4, profile="animation")
    a, b, c, d = (i.pk for i in images)
    response = signed_in(client, owner).post(reverse("job-frames", args=[job.pk]),
                                             {"order": f"{d},{a},{c}", "dropped": str(b)}, **FETCH)
    assert response.status_code == 200 and response.json()["message"] == "Frame order saved: 3 frames play."
    assert [i.pk for i in sheets.frames_in_order(job)] == [d, a, c]
    assert [i.pk for i in sheets.frame_strip(job)] == [d, a, c, b]
    # Restored, it plays again where it is put.
    client.post(reverse("job-frames", args=[job.pk]), {"order": [str(b), f"{d},{a},{c}"], "dropped": ""}, **FETCH)
    assert [i.pk for i in sheets.frames_in_order(job)] == [b, d, a, c]


@pytest.mark.parametrize("fields, message", [
    ({"order": "abc"}, "'abc' is not an image id"), ({}, "send the order of the frames"),
    ({"order": "OTHER"}, "has no image"), ({"order": "A", "dropped": "A"}, "both kept and dropped"),
])
def test_a_bad_frame_order_is_400_with_the_message_and_changes_nothing(client, owner, fields, message):
    job, images = sprite_job(owner, 2, profile="animation")
    _, strangers = sprite_job(owner, 1)
    names = {"OTHER": str(strangers[0].pk), "A": str(images[0].pk)}
    fields = {k: names.get(v, v) for k, v in fields.items()}
    response = signed_in(client, owner).post(reverse("job-frames", args=[job.pk]), fields, **FETCH)
    assert response.status_code == 400 and message in response.json()["message"]
    assert not Image.objects.filter(frame_order__isnull=False).exists()
    assert not Image.objects.filter(frame_dropped=True).exists()


def test_export_animation_writes_the_frames_in_the_new_order_without_the_dropped_one(client, owner):
    job, images = sprite_job(owner, 5, profile="animation")
    order = [images[4], images[0], images[3], images[2]]
    signed_in(client, owner).post(reverse("job-frames", args=[job.pk]),
                                  {"order": ",".join(str(i.pk) for i in order), "dropped": str(images[1].pk)}, **FETCH)
    response = client.post(export_url(job), {"animation": "1", "gif": "1", "apng": "1", "layout": "grid"}, **FETCH)
    assert response.status_code == 200, response.content
    export = SheetExport.objects.get(job=job)
    assert export.kind == "animation" and export.frames == 4
    atlas = json.loads((sheets_folder(job) / "animation_grid.json").read_text())
    assert [f["filename"] for f in atlas["frames"]] == [Path(i.file_path).name for i in order]
    assert atlas["meta"]["frameTags"][0]["to"] == 3
    with PILImage.open(sheets_folder(job) / "animation_grid.gif") as gif:
        assert gif.n_frames == 4


# --- the gallery: a selection's sheet -------------------------------------------------------------

def zip_names(response) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(body(response))) as archive:
        return sorted(archive.namelist())


def test_the_owner_downloads_a_selections_sheet_and_the_job_keeps_it(client, owner):
    job, images = sprite_job(owner, 4)
    response = signed_in(client, owner).post(reverse("images-sheet"), {"ids": f"{images[0].pk},{images[2].pk}"})
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert f'filename="{job.output_dir}_selection_2.zip"' in response["Content-Disposition"]
    assert zip_names(response) == [f"{job.output_dir}/sheets/selection_2.json", f"{job.output_dir}/sheets/selection_2.png"]
    export = SheetExport.objects.get(job=job)
    assert export.name == "selection_2" and export.frames == 2 and export.by == "owner"


def test_another_artist_gets_the_zip_but_the_job_is_left_as_it_was(client, owner, other):
    job, images = sprite_job(owner, 3)
    response = signed_in(client, other).post(reverse("images-sheet"), {"ids": [str(images[0].pk), str(images[1].pk)]})
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(body(response))) as archive:
        atlas = json.loads(archive.read(f"{job.output_dir}/sheets/selection_2.json"))
    assert [f["filename"] for f in atlas["frames"]] == [Path(i.file_path).name for i in images[:2]]
    assert not SheetExport.objects.exists() and written(job) == []


@pytest.mark.parametrize("which, message", [
    ("two jobs", "select images of one job"), ("unknown", "select images of one job: there is no image"),
    ("none", "select at least one image"), ("text", "is not an image id"),
])
def test_a_bad_selection_is_400_with_the_message_and_writes_nothing(client, owner, which, message):
    job, images = sprite_job(owner, 2)
    second, more = sprite_job(owner, 1)
    ids = {"two jobs": f"{images[0].pk},{more[0].pk}", "unknown": f"{images[0].pk},{more[0].pk + 99}",
           "none": "", "text": "one,two"}[which]
    response = signed_in(client, owner).post(reverse("images-sheet"), {"ids": ids})
    assert response.status_code == 400 and message in response.content.decode()
    assert not SheetExport.objects.exists() and written(job) == [] and written(second) == []


def test_the_selection_sheet_is_post_only(client, owner):
    assert signed_in(client, owner).get(reverse("images-sheet")).status_code == 405


# --- the gallery: seam scores -------------------------------------------------------------------

def scored_job(owner, scores):
    job, images = sprite_job(owner, len(scores), profile="tileset")
    for image, score in zip(images, scores):
        Image.objects.filter(pk=image.pk).update(seam_score=score)
    return job, images


def test_the_seam_sort_shows_one_jobs_images_most_seamless_first_unscored_last(client, owner, other):
    job, images = scored_job(owner, [0.4, None, 0.05, 0.4, 0.0])
    sprite_job(owner, 2)  # another job's images stay out
    response = signed_in(client, other).get(reverse("gallery"), {"job": job.pk, "sort": "seam"})
    assert response.status_code == 200
    expected = [images[4], images[2], images[0], images[3], images[1]]
    assert [i.pk for i in response.context["images"]] == [i.pk for i in expected]
    html = response.content.decode()
    assert 'id="sort-note"' in html and "5 images" in html and 'data-live="0"' in html
    assert 'data-seam="0.050"' in html and "seam 0.05" in html
    assert '<option value="seam" selected>' in html
    assert 'data-tile-toggle' in html  # the viewer's 3x3 tile preview


def test_the_seam_sort_needs_a_job(client, owner):
    scored_job(owner, [0.1])
    response = signed_in(client, owner).get(reverse("gallery"), {"sort": "seam"})
    assert response.status_code == 400 and "sort=seam needs a job" in response.content.decode()


def test_the_seam_sort_is_capped_and_says_how_many_there_are(owner):
    job, images = scored_job(owner, [0.3, 0.2, 0.1])
    page = reviews.seam_page(reviews.GalleryFilters(job=job.pk, sort="seam"), limit=2)
    assert [i.pk for i in page.images] == [images[2].pk, images[1].pk]
    assert page.capped and page.total == 3 and not page.is_first


def test_an_unknown_sort_is_the_newest_first_gallery(client, owner):
    job, images = scored_job(owner, [0.3, 0.1])
    response = signed_in(client, owner).get(reverse("gallery"), {"job": job.pk, "sort": "sideways"})
    assert [i.pk for i in response.context["images"]] == [images[1].pk, images[0].pk]


# --- the admin ---------------------------------------------------------------------------------

def test_the_job_admin_lists_the_exports_and_the_image_admin_shows_frame_and_seam(client, owner, staff):
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    job, images = scored_job(owner, [0.125, 0.5])
    made = sheets.export_job(job, sheets.SheetRequest(fmt="tiled"), by="owner")
    sheets.set_frame_order(job, order=[images[1].pk], dropped=[images[0].pk])
    signed_in(client, staff)
    html = client.get(reverse("admin:batches_job_change", args=[job.pk])).content.decode()
    assert made.export.name in html and f'href="{file_url(made.export, "tileset_grid.tsx")}"' in html
    assert "tileset" in html and "24×10" in html
    html = client.get(reverse("admin:batches_image_change", args=[images[0].pk])).content.decode()
    assert "Frame and tile" in html and "0.125" in html
    assert 'name="seam_score"' not in html and 'name="frame_order"' not in html  # read-only
