"""The dashboard's views: queue, submission form, job page and actions, image files.

Every view on its allowed path and its forbidden one, with a fixed cast: the job's owner, another
artist, staff, and an anonymous visitor. ComfyUI is pointed at a dead port unless a test says so.
"""
from __future__ import annotations

import json

import pytest
from django.urls import reverse

from batches import forms as job_forms
from batches.models import Event, Image, Job, Priority, QueueControl, Unit, WorkerNode
from batches.services.submission import job_submit
from tests.processes import free_port

pytestmark = pytest.mark.django_db

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture(autouse=True)
def dead_comfyui(settings):
    """Nothing answers here: the form must still work, with a notice."""
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"
    return settings.COMFYUI_URL


def as_user(client, user):
    if user is not None:
        client.force_login(user)
    return client


def make_job(owner, **params) -> Job:
    base = {"prompts": ["pixel art slime"], "count": 4, "batch_size": 4, "steps": 4, "width": 64, "height": 64,
            "client": None, "wake": False}
    return job_submit(owner=owner, **{**base, **params})


@pytest.fixture
def job(owner):
    return make_job(owner)


@pytest.fixture
def image(job, output_root):
    folder = output_root / "batches" / job.output_dir
    (folder / "images").mkdir(parents=True)
    (folder / "thumbs").mkdir()
    (folder / "metadata").mkdir()
    (folder / "images" / "sprite_0001_7.png").write_bytes(PNG)
    (folder / "thumbs" / "sprite_0001_7.png").write_bytes(PNG[:-4] + b"THMB")
    (folder / "metadata" / "sprite_0001.json").write_text(json.dumps({"seed": 7}))
    rel = f"batches/{job.output_dir}"
    return Image.objects.create(
        job=job, unit=job.units.first(), sequence=1, batch_index=0, prompt="pixel art slime", seed=7,
        file_path=f"{rel}/images/sprite_0001_7.png", thumb_path=f"{rel}/thumbs/sprite_0001_7.png",
        metadata_path=f"{rel}/metadata/sprite_0001.json", width=1, height=1, metadata={"seed": 7},
    )


FORM = {"prompts": "pixel art knight\npixel art mage", "count": "2", "profile": "speed", "batch_size": "1",
        "steps": "4", "cfg": "7", "sampler": "euler", "scheduler": "karras", "width": "64", "height": "64",
        "seed": "", "checkpoint": "", "lora": "", "lora_strength": "1.0", "lora_strength_clip": "",
        "negative_prompt": "", "workflow": "batch_optimized", "priority": "high", "name": "knights"}


# --- anonymous visitors are sent to sign in ---------------------------------------------------

def test_every_page_sends_an_anonymous_visitor_to_sign_in(client, job, image):
    for url in ["/", "/?partial=rows", "/jobs/new/", f"/jobs/{job.pk}/", f"/jobs/{job.pk}/?partial=state",
                reverse("image-file", args=[image.pk]), reverse("image-thumb", args=[image.pk]),
                reverse("image-metadata", args=[image.pk])]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url


def test_every_action_refuses_an_anonymous_visitor(client, job):
    for name in ["job-cancel", "job-stop", "job-retry", "job-requeue", "job-priority"]:
        response = client.post(reverse(name, args=[job.pk]), {"priority": "urgent"})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], name
    for name in ["queue-pause", "queue-resume", "queue-cancel-queued"]:
        assert client.post(reverse(name)).status_code == 302, name
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.priority == Priority.NORMAL
    assert not QueueControl.is_paused()


def test_the_sign_in_page_signs_a_user_in_with_a_real_password(client, owner):
    page = client.get("/accounts/login/?next=/")
    assert page.status_code == 200 and b'name="username"' in page.content and b'name="password"' in page.content
    bad = client.post("/accounts/login/", {"username": "owner", "password": "nope", "next": "/"})
    assert bad.status_code == 200 and b"notice-error" in bad.content
    good = client.post("/accounts/login/", {"username": "owner", "password": "pw", "next": "/"})
    assert good.status_code == 302 and good["Location"] == "/"


# --- the queue page ------------------------------------------------------------------------------

def test_the_queue_lists_running_jobs_first_then_queued_ones_by_priority(client, owner, other):
    low = make_job(owner, priority="low")
    urgent = make_job(other, priority="urgent")
    normal = make_job(owner)
    running = make_job(other, priority="low")
    running.mark_started()
    done = make_job(owner)
    Job.objects.filter(pk=done.pk).update(status=Job.Status.COMPLETED)
    response = as_user(client, owner).get("/")
    assert response.status_code == 200
    assert [j.pk for j in response.context["jobs"]] == [running.pk, urgent.pk, normal.pk, low.pk]
    assert [j.pk for j in response.context["recent"]] == [done.pk]
    html = response.content.decode()
    assert html.index(f'id="job-row-{running.pk}"') < html.index(f'id="job-row-{urgent.pk}"') \
        < html.index(f'id="job-row-{low.pk}"')
    for link in ('href="/"', 'href="/jobs/new/"', 'href="/gallery/"', 'href="/compare/"', 'href="/stats/"'):
        assert link in html
    assert 'href="/admin/"' not in html  # staff only


def test_the_queue_shows_the_running_unit_steps_and_the_worker_state(client, owner, job, staff):
    job.mark_started()
    unit = job.units.first()
    Unit.objects.filter(pk=unit.pk).update(status=Unit.Status.RUNNING, steps_done=3, steps_total=4)
    WorkerNode.objects.create(name="gpu0", comfyui_url="http://gpu0:8188", current_unit=unit)
    response = as_user(client, owner).get("/")
    html = response.content.decode()
    assert f'data-step-unit="{unit.pk}"' in html and "Running" in html
    assert 'action="/queue/pause/"' not in html  # pausing the whole queue is for staff
    rows = client.get("/?partial=rows")
    assert rows.status_code == 200 and b"<html" not in rows.content and f"job-row-{job.pk}".encode() in rows.content
    assert b"Cancel" in rows.content  # the owner may cancel
    staff_page = as_user(client, staff).get("/").content.decode()
    assert 'action="/queue/pause/"' in staff_page and 'href="/admin/"' in staff_page


def test_the_queue_says_when_comfyui_is_unreachable_and_when_the_queue_is_paused(client, owner):
    from django.utils import timezone

    WorkerNode.objects.create(name="gpu0", comfyui_url="http://gpu0:8188", comfyui_ok=False,
                              unreachable_since=timezone.now(), last_error="connection refused")
    QueueControl.set_paused(True, by="boss")
    html = as_user(client, owner).get("/?partial=worker").content.decode()
    assert "ComfyUI unreachable" in html and "connection refused" in html
    assert "Paused" in html


def test_another_artist_sees_the_job_but_gets_no_controls_for_it(client, job, other):
    html = as_user(client, other).get("/?partial=rows").content.decode()
    assert f"job-row-{job.pk}" in html and f'action="/jobs/{job.pk}/cancel/"' not in html


# --- queue-wide controls ---------------------------------------------------------------------------

def test_only_staff_pause_and_resume_the_queue(client, owner, staff):
    assert as_user(client, owner).post("/queue/pause/").status_code == 403
    assert not QueueControl.is_paused()
    response = as_user(client, staff).post("/queue/pause/", {"next": "/"})
    assert response.status_code == 302 and QueueControl.is_paused()
    assert Event.objects.filter(kind="queue_paused").exists()
    assert client.post("/queue/resume/").status_code == 302 and not QueueControl.is_paused()
    assert client.get("/queue/pause/").status_code == 405


def test_cancel_all_queued_cancels_only_your_own_unless_you_are_staff(client, owner, other, staff):
    mine, theirs = make_job(owner), make_job(other)
    as_user(client, owner).post("/queue/cancel-queued/")
    assert Job.objects.get(pk=mine.pk).status == Job.Status.CANCELLED
    assert Job.objects.get(pk=theirs.pk).status == Job.Status.QUEUED
    as_user(client, staff).post("/queue/cancel-queued/")
    assert Job.objects.get(pk=theirs.pk).status == Job.Status.CANCELLED


# --- job actions -----------------------------------------------------------------------------------

ACTIONS = ["job-cancel", "job-stop", "job-retry", "job-requeue", "job-priority"]


@pytest.mark.parametrize("name", ACTIONS)
def test_another_artist_may_not_change_a_job(client, job, other, name):
    response = as_user(client, other).post(reverse(name, args=[job.pk]), {"priority": "urgent"})
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.priority == Priority.NORMAL
    assert Job.objects.count() == 1


@pytest.mark.parametrize("name", ACTIONS)
def test_actions_are_post_only_and_404_for_a_missing_job(client, job, owner, name):
    as_user(client, owner)
    assert client.get(reverse(name, args=[job.pk])).status_code == 405
    assert client.post(reverse(name, args=[job.pk + 999])).status_code == 404


@pytest.mark.parametrize("who", ["owner", "staff"])
def test_the_owner_and_staff_cancel_a_job(client, job, who, request):
    response = as_user(client, request.getfixturevalue(who)).post(f"/jobs/{job.pk}/cancel/",
                                                                  {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"  # never an open redirect
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert not job.units.filter(status=Unit.Status.PENDING).exists()


def test_an_action_answers_json_to_the_page_script(client, job, owner):
    response = as_user(client, owner).post(f"/jobs/{job.pk}/priority/", {"priority": "urgent"},
                                           HTTP_X_REQUESTED_WITH="fetch")
    assert response.status_code == 200 and response.json()["ok"] is True
    assert Job.objects.get(pk=job.pk).priority == Priority.URGENT
    assert set(job.units.values_list("priority", flat=True)) == {Priority.URGENT}
    bad = client.post(f"/jobs/{job.pk}/priority/", {"priority": "asap"}, HTTP_X_REQUESTED_WITH="fetch")
    assert bad.status_code == 400 and "Unknown priority" in bad.json()["message"]


def test_stop_after_current_cancels_what_has_not_started(client, job, owner):
    job.mark_started()
    first = job.units.order_by("index").first()
    Unit.objects.filter(pk=first.pk).update(status=Unit.Status.RUNNING)
    more = make_job(owner, count=8)
    as_user(client, owner).post(f"/jobs/{more.pk}/stop/")
    assert set(more.units.values_list("status", flat=True)) == {Unit.Status.CANCELLED}
    assert Unit.objects.get(pk=first.pk).status == Unit.Status.RUNNING


def test_retry_failed_puts_failed_units_back(client, job, owner):
    unit = job.units.first()
    unit.mark_failed("boom", {"node_id": "3", "node_type": "KSampler"})
    job.finish_if_complete()
    response = as_user(client, owner).post(f"/jobs/{job.pk}/retry/")
    assert response.status_code == 302
    assert Unit.objects.get(pk=unit.pk).status == Unit.Status.PENDING


def test_requeue_makes_a_new_job_with_the_same_parameters_and_opens_it(client, job, staff):
    Job.objects.filter(pk=job.pk).update(status=Job.Status.COMPLETED)
    response = as_user(client, staff).post(f"/jobs/{job.pk}/requeue/")
    new = Job.objects.exclude(pk=job.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{new.pk}/"
    assert (new.prompts, new.steps, new.width, new.owner_id, new.requeued_from_id) == \
        (job.prompts, job.steps, job.width, job.owner_id, job.pk)
    assert Event.objects.filter(kind="job_queued", job=new).exists()


# --- the job page ------------------------------------------------------------------------------------

def test_the_job_page_shows_parameters_errors_and_images(client, job, image, other):
    unit = job.units.first()
    unit.mark_failed("ComfyUI failed at node 3 (KSampler)", {
        "node_id": "3", "node_type": "KSampler", "exception_type": "torch.OutOfMemoryError",
        "exception_message": "CUDA out of memory. Tried to allocate 2 GiB"})
    response = as_user(client, other).get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in ["pixel art slime", "64 × 64", "KSampler", "torch.OutOfMemoryError", "CUDA out of memory",
                 reverse("image-thumb", args=[image.pk]), reverse("image-file", args=[image.pk])]:
        assert text in html, text
    assert f'action="/jobs/{job.pk}/cancel/"' not in html  # another artist: look, don't touch
    state = client.get(f"/jobs/{job.pk}/?partial=state")
    assert state.status_code == 200 and b"<html" not in state.content and b"KSampler" in state.content
    newer = client.get(f"/jobs/{job.pk}/?partial=images&after={image.pk}")
    assert newer.status_code == 200 and not newer.content.strip()
    assert image.pk and str(image.pk).encode() in client.get(f"/jobs/{job.pk}/?partial=images&after=0").content


@pytest.mark.parametrize("who", ["owner", "staff"])
def test_the_owner_and_staff_see_the_job_controls(client, job, who, request):
    html = as_user(client, request.getfixturevalue(who)).get(f"/jobs/{job.pk}/").content.decode()
    for action in ("cancel", "stop", "priority"):
        assert f'action="/jobs/{job.pk}/{action}/"' in html, action


def test_a_missing_job_is_404(client, owner):
    assert as_user(client, owner).get("/jobs/999999/").status_code == 404


# --- the submission form ---------------------------------------------------------------------------

def test_the_form_works_with_comfyui_unreachable_and_says_so(client, owner, dead_comfyui):
    response = as_user(client, owner).get("/jobs/new/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="comfyui-notice"' in html and dead_comfyui in html
    # free-text inputs stand in for the lists ComfyUI would give
    assert 'name="checkpoint" ' in html and '<input type="text" name="checkpoint"' in html
    assert '<input type="text" name="lora"' in html
    # samplers and schedulers fall back to the known lists; profiles fill the rest
    assert '<option value="dpmpp_2m"' in html and '<option value="karras"' in html
    defaults = json.loads(response.context["form"].fields["profile"].widget.attrs["data-defaults"])
    assert defaults["speed"]["batch_size"] == 8 and defaults["quality"]["sampler"] == "dpmpp_2m"
    assert '<option value="batch_optimized"' in html


def test_a_good_form_queues_the_job_and_announces_it(client, owner):
    response = as_user(client, owner).post("/jobs/new/", FORM)
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.prompts == ["pixel art knight", "pixel art mage"] and job.count == 2 and job.batch_size == 1
    assert (job.steps, job.width, job.priority, job.name, job.base_seed) == (4, 64, Priority.HIGH, "knights", None)
    assert job.images_planned == 4 and job.owner == owner
    assert Event.objects.filter(kind="job_queued", job=job).exists()


def test_every_bad_field_is_shown_next_to_it_at_once_and_nothing_is_queued(client, owner):
    bad = {**FORM, "count": "0", "steps": "999", "cfg": "loud", "width": "100", "height": "32", "seed": "-5",
           "batch_size": "3", "sampler": "warp_speed", "priority": "asap", "workflow": "nope"}
    response = as_user(client, owner).post("/jobs/new/", bad)
    assert response.status_code == 400
    assert Job.objects.count() == 0 and Unit.objects.count() == 0
    errors = response.context["form"].errors
    for field in ["count", "steps", "cfg", "width", "height", "seed", "batch_size", "sampler", "priority",
                  "workflow"]:
        assert field in errors, field
    html = response.content.decode()
    start = html.index('id="field-steps"')
    assert "between 1 and 150" in html[start:html.index('id="field-cfg"')]
    assert 'aria-invalid="true"' in html
    assert 'value="pixel art knight' in html or "pixel art knight\npixel art mage" in html  # input is kept


def test_a_missing_prompt_is_reported_with_the_other_problems(client, owner):
    response = as_user(client, owner).post("/jobs/new/", {**FORM, "prompts": "  \n# only a comment\n", "steps": "0"})
    errors = response.context["form"].errors
    assert "prompts" in errors and "steps" in errors and Job.objects.count() == 0


def test_a_prompts_file_adds_its_prompts(client, owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("prompts.txt", b"# sprites\npixel art bat\n\npixel art owl\n", "text/plain")
    response = as_user(client, owner).post("/jobs/new/", {**FORM, "prompts": "", "prompts_file": upload})
    assert response.status_code == 302
    assert Job.objects.get().prompts == ["pixel art bat", "pixel art owl"]


def test_a_bad_prompts_file_is_reported_and_nothing_is_queued(client, owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("prompts.txt", b"\x00\x01\x02binary", "application/octet-stream")
    response = as_user(client, owner).post("/jobs/new/", {**FORM, "prompts_file": upload, "width": "63"})
    assert response.status_code == 400 and Job.objects.count() == 0
    errors = response.context["form"].errors
    assert "binary" in errors["prompts_file"][0] and "width" in errors


def test_new_job_like_this_fills_the_form_from_a_job(client, job, other):
    response = as_user(client, other).get(f"/jobs/new/?from={job.pk}")
    form = response.context["form"]
    assert form.initial["prompts"] == "pixel art slime" and form.initial["width"] == "64"


def test_the_form_offers_what_a_reachable_comfyui_has(client, owner, simulator, settings):
    settings.COMFYUI_URL = simulator
    html = as_user(client, owner).get("/jobs/new/").content.decode()
    assert 'id="comfyui-notice"' not in html
    assert '<select name="checkpoint"' in html and '<option value="pixel_art_xl.safetensors"' in html
    assert '<option value="pixel_art_lora.safetensors"' in html
    response = client.post("/jobs/new/", {**FORM, "checkpoint": "missing.safetensors"})
    assert "ComfyUI has no checkpoint" in response.context["form"].errors["checkpoint"][0]
    job_forms._cache.clear()


# --- image files -----------------------------------------------------------------------------------

def test_images_are_served_to_any_signed_in_user_by_id(client, image, other):
    as_user(client, other)
    response = client.get(reverse("image-file", args=[image.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == PNG
    thumb = client.get(reverse("image-thumb", args=[image.pk]))
    assert b"".join(thumb.streaming_content).endswith(b"THMB")
    Image.objects.filter(pk=image.pk).update(thumb_path="batches/lost-thumb.png")
    assert b"".join(client.get(reverse("image-thumb", args=[image.pk])).streaming_content) == PNG
    meta = client.get(reverse("image-metadata", args=[image.pk]))
    assert json.loads(b"".join(meta.streaming_content)) == {"seed": 7}
    download = client.get(reverse("image-file", args=[image.pk]) + "?download=1")
    assert "attachment" in download["Content-Disposition"]
    assert f'filename="job{image.job_id}_sprite_0001_7.png"' in download["Content-Disposition"]  # names the job
    meta_download = client.get(reverse("image-metadata", args=[image.pk]) + "?download=1")
    assert f'filename="job{image.job_id}_sprite_0001.json"' in meta_download["Content-Disposition"]


def test_an_image_path_outside_the_output_root_or_a_missing_file_is_404(client, image, owner):
    as_user(client, owner)
    Image.objects.filter(pk=image.pk).update(file_path="../../etc/passwd")
    assert client.get(reverse("image-file", args=[image.pk])).status_code == 404
    Image.objects.filter(pk=image.pk).update(file_path="batches/gone.png")
    assert client.get(reverse("image-file", args=[image.pk])).status_code == 404
    assert client.get(reverse("image-file", args=[image.pk + 1000])).status_code == 404


def test_an_active_jobs_page_says_since_when_comfyui_is_unreachable(client, owner):
    from datetime import timedelta

    from django.utils import timezone

    from batches.models import WorkerNode

    job = make_job(owner)
    node = WorkerNode.register(name="dgx-1", comfyui_url="http://127.0.0.1:8188")
    node.mark_unreachable("Connection refused")
    since = timezone.now() - timedelta(minutes=5)
    WorkerNode.objects.filter(pk=node.pk).update(unreachable_since=since)
    client.force_login(owner)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "ComfyUI unreachable since" in page and "dgx-1" in page and "Connection refused" in page
    assert timezone.localtime(since).strftime("%H:%M:%S") in page
    job.status = Job.Status.COMPLETED
    job.save(update_fields=["status"])
    assert "ComfyUI unreachable since" not in client.get(f"/jobs/{job.pk}/").content.decode()
