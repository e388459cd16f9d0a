"""The pages of finishing: the sprite file, the form's Finishing fieldset, the job page's sprites and
its Re-finish form, the gallery's and compare's sprite data, re-finishing a selection, the admin.

The usual cast: `owner` made the jobs, `other` is another artist, `staff` may change anything.
Sprites are made here as the sprite worker records them (a real PNG under OUTPUT_ROOT and the
row's sprite fields); tests/test_finishing_jobs.py runs the worker itself.
"""
from __future__ import annotations

import io
import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as PILImage

from batches.models import Event, Image, Job
from batches.services import outputs
from tests.processes import free_port
from tests.test_views_review import add_images, make_job, simple_specs

pytestmark = pytest.mark.django_db

FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
GAMEBOY = ["#0f380f", "#306230", "#8bac0f", "#9bbc0f"]


@pytest.fixture(autouse=True)
def dead_comfyui(settings, output_root):
    """Nothing answers at COMFYUI_URL: the form still works (and asks nobody)."""
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"


def signed_in(client, user):
    client.force_login(user)
    return client


def finished(image: Image, *, size=(6, 5), palette=GAMEBOY[:2], run=1, write=True) -> Image:
    """Give an image its sprite as the sprite worker records it: the PNG beside it and the row."""
    relative = f"batches/{image.job.output_dir}/sprites/{outputs.image_name(image.sequence, image.seed)}"
    if write:
        buf = io.BytesIO()
        PILImage.new("RGBA", size, (15, 56, 15, 255)).save(buf, format="PNG")
        outputs.atomic_write(outputs.output_root() / relative, buf.getvalue())
    info = {"pixel_size": 10.667, "phase": [3.5, 1.25], "size": list(size), "content_size": list(size),
            "palette": list(palette), "settings": image.job.finish, "run": run, "seconds": 0.01}
    Image.objects.filter(pk=image.pk).update(sprite_state=Image.Sprite.DONE, sprite_path=relative, sprite_info=info,
                                             sprite_run=run, sprite_error="")
    image.refresh_from_db()
    return image


def sprite_job(owner, count=3, **fields):
    job = make_job(owner, finish={"colors": 8, "background": "auto"}, **fields)
    return job, add_images(job, simple_specs(count), write=True)


def states(job) -> dict[int, str]:
    return dict(job.images.values_list("sequence", "sprite_state"))


# --- the sprite file ------------------------------------------------------------------------------

def test_a_sprite_is_served_to_any_signed_in_artist_and_downloads_named_after_its_job(client, owner, other):
    job, images = sprite_job(owner, 1)
    image = finished(images[0])
    response = signed_in(client, other).get(reverse("image-sprite", args=[image.pk]) + "?v=1")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    with PILImage.open(io.BytesIO(b"".join(response.streaming_content))) as sprite:
        assert sprite.size == (6, 5)
    download = client.get(reverse("image-sprite", args=[image.pk]) + "?download=1")
    assert "attachment" in download["Content-Disposition"]
    assert f'filename="{job.output_dir}_sprite_0001_{image.seed}.png"' in download["Content-Disposition"]


def test_an_image_without_a_sprite_or_whose_sprite_is_gone_or_outside_the_output_folder_is_404(client, owner):
    job, images = sprite_job(owner, 2)
    signed_in(client, owner)
    assert client.get(reverse("image-sprite", args=[images[0].pk])).status_code == 404  # not made yet
    image = finished(images[1], write=False)
    assert client.get(reverse("image-sprite", args=[image.pk])).status_code == 404  # the file is missing
    Image.objects.filter(pk=image.pk).update(sprite_path="../../etc/passwd")
    assert client.get(reverse("image-sprite", args=[image.pk])).status_code == 404
    assert client.get(reverse("image-sprite", args=[image.pk + 1000])).status_code == 404
    assert client.post(reverse("image-sprite", args=[image.pk])).status_code == 405


def test_anonymous_visitors_get_neither_sprites_nor_refinishing(client, owner):
    job, images = sprite_job(owner, 1)
    image = finished(images[0])
    for method, path, data in [("get", reverse("image-sprite", args=[image.pk]), {}),
                               ("post", reverse("job-refinish", args=[job.pk]), {"palette": "gameboy"}),
                               ("post", reverse("images-refinish"), {"ids": str(image.pk), "colors": "4"})]:
        response = getattr(client, method)(path, data)
        assert response.status_code == 302 and reverse("login") in response["Location"], path
    assert Image.objects.get(pk=image.pk).sprite_state == Image.Sprite.DONE


# --- the submission form's Finishing fieldset ---------------------------------------------------------

FORM = {"prompts": "pixel art knight", "count": "2", "profile": "speed", "batch_size": "1", "steps": "4",
        "cfg": "7", "sampler": "euler", "scheduler": "karras", "width": "64", "height": "64", "seed": "",
        "checkpoint": "", "lora": "", "lora_strength": "1.0", "lora_strength_clip": "", "negative_prompt": "",
        "workflow": "batch_optimized", "priority": "normal", "name": "",
        "make_sprites": "on", "colors": "32", "palette": "", "background": "auto", "outline": "", "cell": "",
        "pixel_size": "auto"}


def test_the_form_offers_finishing_with_the_profiles_defaults_and_the_shipped_palettes(client, owner):
    response = signed_in(client, owner).get("/jobs/new/")
    form = response.context["form"]
    assert form.initial["make_sprites"] is True and form.initial["colors"] == "32"  # the speed profile's finish
    html = response.content.decode()
    assert 'id="finish-fieldset"' in html and "<legend>Finishing</legend>" in html
    for option in ("gameboy", "pico-8", "upload"):
        assert f'<option value="{option}"' in html, option
    assert 'accept=".hex,.gpl"' in html
    defaults = json.loads(form.fields["make_sprites"].widget.attrs["data-finish-defaults"])
    assert defaults["animation"]["lock_palette"] is True and defaults["animation"]["cell"] == "64x64"
    assert defaults["tileset"]["background"] == "keep" and defaults["speed"]["make_sprites"] is True


def test_the_form_queues_a_job_with_the_finishing_typed(client, owner):
    response = signed_in(client, owner).post("/jobs/new/", {
        **FORM, "palette": "gameboy", "outline": "#101010", "cell": "48x48", "lock_palette": "on"})
    assert response.status_code == 302
    finish = Job.objects.get().finish
    assert finish["palette"] == "gameboy" and finish["colors"] is None  # a palette wins over the colours
    assert finish["outline"] == "#101010" and finish["cell"] == [48, 48] and finish["lock_palette"] is True


def test_unticking_make_sprites_queues_a_job_without_sprites(client, owner):
    data = {k: v for k, v in FORM.items() if k != "make_sprites"}
    assert signed_in(client, owner).post("/jobs/new/", data).status_code == 302
    assert Job.objects.get().finish is None


def test_an_uploaded_gpl_palette_goes_into_the_job(client, owner):
    upload = SimpleUploadedFile("mine.gpl", b"GIMP Palette\nName: mine\n#\n255 0 0\tred\n  0 0 255\tblue\n")
    response = signed_in(client, owner).post("/jobs/new/", {**FORM, "palette": "upload", "palette_file": upload})
    assert response.status_code == 302
    finish = Job.objects.get().finish
    assert finish["palette_colors"] == ["#ff0000", "#0000ff"] and not finish.get("colors")


def test_a_malformed_hex_palette_is_shown_by_its_field_and_nothing_is_queued(client, owner):
    upload = SimpleUploadedFile("mine.hex", b"ff0000\nnot-a-colour\n")
    response = signed_in(client, owner).post("/jobs/new/", {**FORM, "palette": "upload", "palette_file": upload,
                                                           "steps": "0"})
    assert response.status_code == 400 and not Job.objects.exists()
    errors = response.context["form"].errors
    assert "mine.hex, line 2" in errors["palette_file"][0] and "steps" in errors  # every problem at once
    html = response.content.decode()
    field = html[html.index('id="field-palette_file"'):]
    assert "has-error" in html[html.index('id="field-palette_file"') - 60:html.index('id="field-palette_file"')]
    assert "line 2" in field[:field.index("</div>")]


def test_upload_without_a_file_or_a_file_too_large_is_refused_by_the_palette_file_field(client, owner):
    signed_in(client, owner)
    response = client.post("/jobs/new/", {**FORM, "palette": "upload"})
    assert response.status_code == 400 and "Choose a .hex or .gpl file" in response.context["form"].errors["palette_file"][0]
    big = SimpleUploadedFile("huge.hex", b"ff0000\n" * 10000)
    response = client.post("/jobs/new/", {**FORM, "palette": "upload", "palette_file": big})
    assert "64 KiB" in response.context["form"].errors["palette_file"][0] and not Job.objects.exists()


@pytest.mark.parametrize("changes, field, words", [
    ({"colors": "1"}, "colors", "from 2 to 256"),
    ({"background": "purple"}, "background", "#rrggbb"),
    ({"outline": "blue"}, "outline", "#rrggbb"),
    ({"cell": "64by64"}, "cell", "WxH"),
    ({"pixel_size": "huge"}, "pixel_size", "auto"),
    ({"palette": "no-such-palette"}, "palette", "no-such-palette"),
])
def test_a_bad_finishing_setting_is_shown_next_to_its_field(client, owner, changes, field, words):
    response = signed_in(client, owner).post("/jobs/new/", {**FORM, **changes})
    assert response.status_code == 400 and not Job.objects.exists()
    assert words in " ".join(response.context["form"].errors[field])
    html = response.content.decode()
    start = html.index(f'id="field-{field}"')
    assert words.replace("#", "") in html[start:html.index("</div>", start)]


def test_new_job_like_this_repeats_the_jobs_finishing(client, owner, other):
    job = make_job(owner, finish={"palette": "gameboy", "cell": [48, 48], "background": "keep", "lock_palette": True})
    initial = signed_in(client, other).get(f"/jobs/new/?from={job.pk}").context["form"].initial
    assert (initial["make_sprites"], initial["palette"], initial["cell"], initial["background"]) == \
        (True, "gameboy", "48x48", "keep")
    assert initial["lock_palette"] is True and initial["colors"] == ""


# --- the job page ------------------------------------------------------------------------------------

def test_the_job_page_shows_finishing_until_every_sprite_exists_with_the_failures(client, owner, other):
    job, images = sprite_job(owner, 3)
    finished(images[0])
    Image.objects.filter(pk=images[1].pk).update(sprite_state=Image.Sprite.PENDING)
    Image.objects.filter(pk=images[2].pk).update(sprite_state=Image.Sprite.FAILED,
                                                 sprite_error="sprite_0003: no pixel grid found")
    html = signed_in(client, other).get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "8 colours, background auto" in html
    assert "finishing <span" in html and ">1</span>/<span class=\"num\">3</span>" in html
    assert "no pixel grid found" in html and "1 failed" in html
    badge = html[html.index('id="job-finishing"'):]
    assert " hidden" not in badge[:badge.index(">")]
    part = client.get(reverse("job-detail", args=[job.pk]), {"partial": "finish"}).content.decode()
    assert 'data-open="1"' in part and 'data-done="1"' in part

    finished(Image.objects.get(pk=images[1].pk))
    part = client.get(reverse("job-detail", args=[job.pk]), {"partial": "finish"}).content.decode()
    assert 'data-open="0"' in part and "finishing" not in part and "2 sprites" in part
    state = client.get(reverse("job-detail", args=[job.pk]), {"partial": "state"}).content.decode()
    badge = state[state.index('id="job-finishing"'):]
    assert " hidden" in badge[:badge.index(">")]


def test_the_job_page_shows_the_locked_palette_as_swatches_and_tiles_carry_their_sprite(client, owner):
    job, images = sprite_job(owner, 1)
    Job.objects.filter(pk=job.pk).update(finish={**job.finish, "lock_palette": True}, finish_palette=GAMEBOY)
    image = finished(images[0])
    html = signed_in(client, owner).get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "one palette for the job" in html
    for hex_ in GAMEBOY:
        assert f'data-hex="{hex_}"' in html
    tiles = client.get(reverse("job-detail", args=[job.pk]), {"partial": "images"}).content.decode()
    assert f'data-sprite="/images/{image.pk}/sprite.png?v=1"' in tiles and 'data-sprite-state="done"' in tiles


def test_a_job_without_sprites_says_so(client, owner):
    job = make_job(owner)
    html = signed_in(client, owner).get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "No sprites: this job keeps its images as they are." in html


@pytest.mark.parametrize("who, sees", [("owner", True), ("staff", True), ("other", False)])
def test_only_the_owner_and_staff_get_the_refinish_form(client, owner, who, sees, request):
    job, _ = sprite_job(owner, 1)
    html = signed_in(client, request.getfixturevalue(who)).get(reverse("job-detail", args=[job.pk])).content.decode()
    assert ('id="refinish-form"' in html) is sees
    if sees:
        assert f'action="{reverse("job-refinish", args=[job.pk])}"' in html and '<option value="gameboy"' in html


# --- re-finishing a job --------------------------------------------------------------------------------

def test_the_owner_refinishes_a_jobs_sprites_with_another_palette(client, owner):
    job, images = sprite_job(owner, 2)
    for image in images:
        finished(image)
    response = signed_in(client, owner).post(reverse("job-refinish", args=[job.pk]), {
        "palette": "gameboy", "colors": "", "background": "", "outline": "", "cell": "",
        "lock_palette": ["false"]}, **FETCH)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] and "2 sprites" in body["message"] and "palette gameboy" in body["message"]
    job.refresh_from_db()
    assert job.finish["palette"] == "gameboy" and job.finish["colors"] is None
    assert job.finish["background"] == "auto"  # a blank field keeps the job's setting
    assert set(states(job).values()) == {Image.Sprite.PENDING}
    assert set(job.images.values_list("sprite_run", flat=True)) == {2}
    assert Event.objects.filter(kind="sprites_queued", job=job).latest("id").data["images"] == 2


def test_the_lock_box_sends_false_unless_ticked(client, owner):
    job, _ = sprite_job(owner, 1)
    signed_in(client, owner)
    client.post(reverse("job-refinish", args=[job.pk]), {"lock_palette": ["false", "true"]}, **FETCH)
    job.refresh_from_db()
    assert job.finish["lock_palette"] is True and job.finish["colors"] == 8
    client.post(reverse("job-refinish", args=[job.pk]), {"lock_palette": ["false"]}, **FETCH)
    job.refresh_from_db()
    assert not job.finish.get("lock_palette")


def test_a_bad_refinish_setting_is_refused_naming_it_and_nothing_changes(client, owner):
    job, images = sprite_job(owner, 1)
    finished(images[0])
    response = signed_in(client, owner).post(reverse("job-refinish", args=[job.pk]), {"colors": "1"}, **FETCH)
    assert response.status_code == 400
    body = response.json()
    assert not body["ok"] and "colors" in body["message"] and "from 2 to 256" in body["message"]
    job.refresh_from_db()
    assert job.finish["colors"] == 8 and states(job) == {1: Image.Sprite.DONE}


def test_without_javascript_refinishing_goes_back_to_the_job_page_with_a_message(client, owner):
    job, _ = sprite_job(owner, 1)
    response = signed_in(client, owner).post(reverse("job-refinish", args=[job.pk]), {"colors": "4"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("job-detail", args=[job.pk])
    assert "Re-finishing job" in response.content.decode() and "4 colours" in response.content.decode()


def test_staff_may_refinish_any_job_and_another_artist_may_not(client, owner, other, staff):
    job, _ = sprite_job(owner, 1)
    assert signed_in(client, other).post(reverse("job-refinish", args=[job.pk]), {"colors": "4"},
                                         **FETCH).status_code == 403
    job.refresh_from_db()
    assert job.finish["colors"] == 8 and states(job) == {1: Image.Sprite.NONE}
    assert signed_in(client, staff).post(reverse("job-refinish", args=[job.pk]), {"colors": "4"},
                                         **FETCH).status_code == 200
    job.refresh_from_db()
    assert job.finish["colors"] == 4 and states(job) == {1: Image.Sprite.PENDING}


def test_refinishing_is_post_only_and_404_for_a_missing_job(client, owner):
    job, _ = sprite_job(owner, 1)
    signed_in(client, owner)
    assert client.get(reverse("job-refinish", args=[job.pk])).status_code == 405
    assert client.post(reverse("job-refinish", args=[job.pk + 1000]), {"colors": "4"}).status_code == 404


# --- the gallery and compare ---------------------------------------------------------------------------

def test_gallery_tiles_carry_each_sprite_for_the_page_script(client, owner, other):
    job, images = sprite_job(owner, 3)
    done = finished(images[0], run=3)
    Image.objects.filter(pk=images[1].pk).update(sprite_state=Image.Sprite.RUNNING)
    Image.objects.filter(pk=images[2].pk).update(sprite_state=Image.Sprite.FAILED, sprite_error="no grid <found>")
    response = signed_in(client, other).get(reverse("gallery"))
    html = response.content.decode()
    tile = html[html.index(f'id="img-{done.pk}"'):]
    tile = tile[:tile.index(">")]
    for attr in (f'data-sprite="/images/{done.pk}/sprite.png?v=3"', 'data-sprite-state="done"', 'data-sprite-w="6"',
                 'data-sprite-h="5"', 'data-pixel-size="10.667"', 'data-phase="3.5,1.25"',
                 'data-palette="#0f380f,#306230"', f'data-thumb="/images/{done.pk}/thumb/"'):
        assert attr in tile, attr
    running = html[html.index(f'id="img-{images[1].pk}"'):]
    running = running[:running.index(">")]
    assert 'data-sprite-state="running"' in running and "data-sprite=" not in running
    assert 'data-sprite-error="no grid &lt;found&gt;"' in html
    assert 'data-view="sprite"' in html and "data-refinish" in html
    assert f'data-sprite-url="{reverse("image-sprite", args=[0])}"' in html


def test_the_gallery_draws_again_the_tiles_asked_for_by_id(client, owner):
    job, images = sprite_job(owner, 3)
    finished(images[2])
    signed_in(client, owner)
    response = client.get(reverse("gallery"), {"partial": "1", "ids": f"{images[2].pk},{images[0].pk}"})
    assert response.status_code == 200
    assert [i.pk for i in response.context["images"]] == [images[2].pk, images[0].pk]
    assert f"/images/{images[2].pk}/sprite.png" in response.content.decode()
    assert client.get(reverse("gallery"), {"partial": "1", "ids": "x"}).status_code == 400


def test_the_owner_refinishes_selected_sprites_from_the_gallery(client, owner):
    job, images = sprite_job(owner, 3)
    for image in images:
        finished(image)
    chosen = f"{images[0].pk},{images[2].pk}"
    response = signed_in(client, owner).post(reverse("images-refinish"), {"ids": chosen, "palette": "", "colors": "4"},
                                             **FETCH)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] and body["queued"] == 2 and "4 colours" in body["message"]
    assert states(job) == {1: Image.Sprite.PENDING, 2: Image.Sprite.DONE, 3: Image.Sprite.PENDING}
    assert Image.objects.get(pk=images[0].pk).sprite_finish["colors"] == 4
    assert Job.objects.get(pk=job.pk).finish["colors"] == 8  # the job's own settings stay


def test_refinishing_another_artists_selection_is_refused_whole(client, owner, other):
    job, images = sprite_job(owner, 2)
    mine = make_job(other, finish={"colors": 8})
    theirs = add_images(mine, simple_specs(1, seed=900))
    ids = f"{images[0].pk},{theirs[0].pk}"
    response = signed_in(client, other).post(reverse("images-refinish"), {"ids": ids, "colors": "4"}, **FETCH)
    assert response.status_code == 403 and "owner or staff" in response.json()["error"]
    assert set(Image.objects.values_list("sprite_state", flat=True)) == {Image.Sprite.NONE}


def test_refinishing_a_selection_needs_ids_and_settings_that_work(client, owner):
    job, images = sprite_job(owner, 1)
    signed_in(client, owner)
    response = client.post(reverse("images-refinish"), {"ids": "", "colors": "4"}, **FETCH)
    assert response.status_code == 400 and "select at least one image" in response.json()["error"]
    response = client.post(reverse("images-refinish"), {"ids": str(images[0].pk), "palette": "nope"}, **FETCH)
    assert response.status_code == 400 and "nope" in response.json()["error"]
    plain = make_job(owner)
    other_image = add_images(plain, simple_specs(1, seed=500))[0]
    response = client.post(reverse("images-refinish"), {"ids": str(other_image.pk)}, **FETCH)
    assert response.status_code == 400 and "no finishing settings" in response.json()["error"]
    assert set(Image.objects.values_list("sprite_state", flat=True)) == {Image.Sprite.NONE}


def test_compare_cells_carry_their_sprites_and_finishing_is_compared(client, owner):
    first, images = sprite_job(owner, 1)
    finished(images[0])
    second = make_job(owner, finish={"palette": "gameboy"})
    add_images(second, simple_specs(1))
    response = signed_in(client, owner).get(reverse("compare"), {"jobs": f"{first.pk},{second.pk}"})
    html = response.content.decode()
    assert f'data-sprite="/images/{images[0].pk}/sprite.png?v=1"' in html
    assert {p.key for p in response.context["comparison"].differing} == {"finish"}
    assert 'data-param="finish"' in html and "palette gameboy" in html
    assert 'data-view="sprite"' in html


# --- the admin ---------------------------------------------------------------------------------------

def admin_url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:batches_{model}_{view}", args=args)


@pytest.fixture
def chief(django_user_model):
    """Staff with every admin permission (the console's user)."""
    return django_user_model.objects.create_superuser("chief", "", "pw")


def test_the_job_admin_shows_the_finishing_the_palette_and_the_sprite_counts(client, owner, chief):
    job, images = sprite_job(owner, 2)
    Job.objects.filter(pk=job.pk).update(finish_palette=GAMEBOY)
    finished(images[0])
    Image.objects.filter(pk=images[1].pk).update(sprite_state=Image.Sprite.PENDING)
    html = signed_in(client, chief).get(admin_url("job", "change", job.pk)).content.decode()
    assert "8 colours, background auto" in html and "&quot;colors&quot;: 8" in html
    assert "1 done, 1 to make, 0 failed (finishing)" in html
    assert ", ".join(GAMEBOY) in html


def test_the_job_admin_refinishes_sprites_with_the_jobs_settings(client, owner, chief):
    job, images = sprite_job(owner, 2)
    plain = make_job(owner)
    for image in images:
        finished(image)
    response = signed_in(client, chief).post(admin_url("job"), {
        "action": "refinish_sprites", ACTION_CHECKBOX_NAME: [job.pk, plain.pk]}, follow=True)
    html = response.content.decode()
    assert "2 sprites queued to be made again." in html and f"Cannot re-finish job {plain.pk}" in html
    assert set(states(job).values()) == {Image.Sprite.PENDING}
    assert Event.objects.filter(kind="sprites_queued", job=job).exists()


def test_the_image_admin_shows_the_sprite_and_refinishes_the_selected_images(client, owner, chief):
    job, images = sprite_job(owner, 2)
    image = finished(images[0])
    signed_in(client, chief)
    page = client.get(admin_url("image", "change", image.pk)).content.decode()
    assert f'src="/images/{image.pk}/sprite.png?v=1"' in page
    assert image.sprite_path in page and "&quot;pixel_size&quot;: 10.667" in page and 'title="#306230"' in page
    listing = client.get(admin_url("image"), {"sprite_state": "done"}).content.decode()
    assert f"/images/{image.pk}/sprite.png" in listing
    response = client.post(admin_url("image"), {"action": "refinish_sprites", ACTION_CHECKBOX_NAME: [image.pk]},
                           follow=True)
    assert "1 sprite queued to be made again." in response.content.decode()
    assert states(job) == {1: Image.Sprite.PENDING, 2: Image.Sprite.NONE}
