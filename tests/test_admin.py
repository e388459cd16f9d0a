"""The Django admin as the management console: pages, permissions, the add form and every action."""
from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from batches.models import Event, Image, Job, QueueControl, Unit, WorkerNode
from batches.services import control, outputs
from batches.services.submission import job_submit
from tests.processes import free_port

pytestmark = pytest.mark.django_db

MODELS = ("job", "unit", "image", "workernode", "queuecontrol")


@pytest.fixture(autouse=True)
def _no_comfyui(settings, output_root):
    """Nothing answers at COMFYUI_URL: the add form offers free text and names go unchecked."""
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser("boss", "", "pw")


@pytest.fixture
def artist(django_user_model):
    return django_user_model.objects.create_user("artist", password="pw")


@pytest.fixture
def staff(boss) -> Client:
    client = Client()
    client.force_login(boss)
    return client


def submit(owner, prompts=("pixel art warrior",), **params) -> Job:
    defaults = {"profile": "speed", "steps": 4, "client": None, "width": 64, "height": 64, "wake": False,
                "count": 8, "batch_size": 4}
    return job_submit(owner=owner, prompts=list(prompts), **{**defaults, **params})


def with_image(job: Job) -> Image:
    """An image as the worker records it: files on disk and a row."""
    unit = job.units.order_by("index").first()
    folder = outputs.job_dir(job)
    name = outputs.image_name(1, unit.seed)
    for sub in ("images", "thumbs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / name).write_bytes(b"\x89PNG fake")
    (folder / "metadata").mkdir(exist_ok=True)
    (folder / "metadata" / outputs.metadata_name(1)).write_text("{}")
    return Image.objects.create(
        job=job, unit=unit, sequence=1, batch_index=0, prompt=unit.prompt, seed=unit.seed, width=64, height=64,
        file_path=f"batches/{job.output_dir}/images/{name}", thumb_path=f"batches/{job.output_dir}/thumbs/{name}",
        metadata_path=f"batches/{job.output_dir}/metadata/{outputs.metadata_name(1)}")


@pytest.fixture
def world(artist):
    """One of everything the admin shows."""
    job = submit(artist)
    image = with_image(job)
    node = WorkerNode.register(name="gpu0", comfyui_url="http://127.0.0.1:8188")
    return {"job": job, "unit": image.unit, "image": image, "workernode": node, "queuecontrol": QueueControl.get()}


def url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:batches_{model}_{view}", args=args)


def act(client: Client, model: str, action: str, objs) -> None:
    response = client.post(url(model), {"action": action, ACTION_CHECKBOX_NAME: [o.pk for o in objs]})
    assert response.status_code == 302, response.content[:2000]


def thumb_url(image: Image) -> str | None:
    try:
        return reverse("image-thumb", args=[image.pk])
    except NoReverseMatch:
        return None


# --- pages and who may see them ---------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_staff_can_open_the_list_and_change_page_of_every_model(staff, world, model):
    assert staff.get(url(model)).status_code == 200
    assert staff.get(url(model, "change", world[model].pk)).status_code == 200


def test_staff_can_open_the_add_job_form_but_units_images_and_nodes_are_written_by_the_system(staff, world):
    page = staff.get(url("job", "add"))
    assert page.status_code == 200
    for field in ("prompts", "prompts_file", "count", "profile", "batch_size", "priority", "steps", "cfg", "seed",
                  "checkpoint", "lora", "lora_strength"):
        assert f'name="{field}"' in page.content.decode(), field
    for model in ("unit", "image", "workernode", "queuecontrol"):
        assert staff.get(url(model, "add")).status_code == 403


@pytest.mark.parametrize("model", MODELS)
def test_people_who_are_not_staff_are_sent_to_the_login_page(artist, world, model):
    client = Client()
    client.force_login(artist)
    for page in (url(model), url(model, "change", world[model].pk), url("job", "add")):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    anonymous = Client().get(url(model))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("admin:login"))


# --- the job list, the job page ---------------------------------------------------------------


def listed(client: Client, **params) -> list[int]:
    response = client.get(url("job"), params)
    assert response.status_code == 200
    return sorted(j.pk for j in response.context["cl"].result_list)


def test_the_job_list_filters_by_status_priority_profile_owner_and_checkpoint_and_searches(staff, boss, artist):
    warrior = submit(artist, ["pixel art warrior"], priority="high", profile="quality",
                     checkpoint="pixel_art_xl.safetensors")
    slime = submit(boss, ["pixel art slime"], priority="low")
    control.job_cancel(slime)
    page = staff.get(url("job")).content.decode()
    for column in ("pixel art warrior", "high", "artist", "quality", "<progress"):
        assert column in page
    assert listed(staff, status="cancelled") == [slime.pk]
    assert listed(staff, priority="30") == [warrior.pk]
    assert listed(staff, profile="speed") == [slime.pk]
    assert listed(staff, owner__id__exact=artist.pk) == [warrior.pk]
    assert listed(staff, checkpoint="pixel_art_xl.safetensors") == [warrior.pk]
    assert listed(staff, q="slime") == [slime.pk]
    assert listed(staff, q=str(warrior.pk)) == [warrior.pk]


def test_the_job_page_shows_its_units_and_image_thumbnails_inline_read_only(staff, world):
    job, image = world["job"], world["image"]
    page = staff.get(url("job", "change", job.pk)).content.decode()
    assert page.count(str(job.units.first().comfy_prompt_id)) >= 1
    assert "Units (the first 50)" in page and "Images (the first 50)" in page
    # the rest are one click away, in the changelists filtered to this job
    assert f'/admin/batches/unit/?job__id__exact={job.pk}' in page
    assert f'/admin/batches/image/?job__id__exact={job.pk}' in page
    src = thumb_url(image)
    if src:
        assert f'src="{src}"' in page
    assert 'name="status"' not in page and 'name="images_done"' not in page  # the worker's fields
    assert 'name="name"' in page and 'name="priority"' in page


def test_saving_a_job_changes_only_its_name_and_priority_and_keeps_the_workers_updates(staff, world):
    job = world["job"]
    page = staff.get(url("job", "change", job.pk))
    assert page.status_code == 200
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, images_done=1)  # the worker, meanwhile
    data = {"name": "heroes", "priority": "40"}
    for prefix, n in (("units", job.units.count()), ("images", job.images.count()), ("sheets", job.sheets.count())):
        data.update({f"{prefix}-TOTAL_FORMS": str(n), f"{prefix}-INITIAL_FORMS": str(n),
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "0"})
    for i, unit in enumerate(job.units.order_by("index")):
        data.update({f"units-{i}-id": str(unit.pk), f"units-{i}-job": str(job.pk)})
    for i, image in enumerate(job.images.order_by("sequence")):
        data.update({f"images-{i}-id": str(image.pk), f"images-{i}-job": str(job.pk)})
    response = staff.post(url("job", "change", job.pk), data)
    assert response.status_code == 302, response.content[:3000]
    job.refresh_from_db()
    assert (job.name, job.priority, job.status, job.images_done) == ("heroes", 40, Job.Status.RUNNING, 1)
    assert set(job.units.filter(status=Unit.Status.PENDING).values_list("priority", flat=True)) == {40}
    assert Event.objects.filter(kind="job_priority", job=job).exists()


# --- adding a job -----------------------------------------------------------------------------


def test_the_add_form_queues_a_job_through_job_submit_for_the_staff_member(staff, boss):
    response = staff.post(url("job", "add"), {
        "prompts": "pixel art knight\n# skipped\npixel art mage", "count": "2", "profile": "speed",
        "batch_size": "4", "priority": "high", "steps": "4", "cfg": "7", "width": "64", "height": "64",
        "seed": "9", "workflow": "batch_optimized", "lora": "", "lora_strength": "1.0",
    })
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == url("job", "change", job.pk)
    assert job.owner == boss and job.prompts == ["pixel art knight", "pixel art mage"]
    assert (job.count, job.batch_size, job.priority_name, job.steps, job.base_seed) == (2, 4, "high", 4, 9)
    assert job.units.count() == 2 and job.images_planned == 4
    assert Event.objects.filter(kind="job_queued", job=job).exists()


def test_bad_input_in_the_add_form_shows_each_fields_error_and_queues_nothing(staff):
    response = staff.post(url("job", "add"), {
        "prompts": "", "count": "0", "profile": "speed", "priority": "normal", "steps": "0", "width": "100",
        "workflow": "batch_optimized",
    })
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert set(form.errors) >= {"prompts", "count", "steps", "width"}
    assert "must be a multiple of 8" in " ".join(form.errors["width"])
    assert not Job.objects.exists()


# --- job actions ------------------------------------------------------------------------------


def _running(job: Job) -> Unit:
    unit = Unit.claim_next(node="gpu0", comfyui_url="http://sim")
    job.mark_started()
    unit.mark_running()
    return unit


def test_the_cancel_action_cancels_the_selected_jobs(staff, artist):
    first, second, untouched = submit(artist), submit(artist), submit(artist)
    act(staff, "job", "cancel_jobs", [first, second])
    assert list(Job.objects.order_by("id").values_list("status", flat=True)) == ["cancelled", "cancelled", "queued"]
    assert not Unit.objects.filter(job__in=[first, second], status=Unit.Status.PENDING).exists()
    assert untouched.units.filter(status=Unit.Status.PENDING).count() == 2


def test_the_stop_action_lets_the_running_unit_finish_and_cancels_the_rest(staff, artist):
    job = submit(artist, count=12)
    unit = _running(job)
    act(staff, "job", "stop_after_current", [job])
    assert Unit.objects.get(pk=unit.pk).status == Unit.Status.RUNNING
    assert job.units.filter(status=Unit.Status.CANCELLED).count() == 2


def test_the_retry_action_puts_failed_units_back_in_the_queue(staff, artist):
    job = submit(artist)
    for unit in job.units.all():
        unit.mark_failed("ComfyUI refused the workflow")
    job.finish_if_complete()
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED
    act(staff, "job", "retry_failed", [job])
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and set(job.units.values_list("status", flat=True)) == {"pending"}


def test_the_requeue_action_queues_a_copy_of_each_job(staff, artist):
    job = submit(artist, seed=11)
    control.job_cancel(job)
    act(staff, "job", "requeue", [job])
    copy = Job.objects.exclude(pk=job.pk).get()
    assert copy.requeued_from_id == job.pk and copy.owner == artist and copy.base_seed == 11
    assert copy.status == Job.Status.QUEUED and copy.images_planned == job.images_planned


@pytest.mark.parametrize("level, value", [("urgent", 40), ("high", 30), ("normal", 20), ("low", 10)])
def test_the_priority_actions_move_the_job_and_its_pending_units(staff, artist, level, value):
    job = submit(artist, priority="normal" if level != "normal" else "low")
    act(staff, "job", f"set_priority_{level}", [job])
    assert Job.objects.get(pk=job.pk).priority == value
    assert set(job.units.values_list("priority", flat=True)) == {value}


def test_a_finished_job_is_deleted_with_its_files_and_a_running_one_cannot_be(staff, world, artist):
    running = submit(artist, ["pixel art bat"], priority="urgent")
    assert _running(running).job_id == running.pk
    assert staff.get(url("job", "delete", running.pk)).status_code == 403
    job = world["job"]
    folder = outputs.job_dir(job)
    control.job_cancel(job)
    assert folder.exists()
    response = staff.post(url("job", "delete", job.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists() and not Image.objects.filter(job_id=job.pk).exists()
    assert not folder.exists()


def test_deleting_a_selection_removes_the_finished_jobs_and_keeps_the_running_ones(staff, world, artist):
    running = submit(artist, ["pixel art bat"], priority="urgent")
    _running(running)
    finished = world["job"]
    control.job_cancel(finished)
    confirm = staff.post(url("job"), {"action": "delete_selected", ACTION_CHECKBOX_NAME: [finished.pk, running.pk]})
    assert confirm.status_code == 200 and b"Images: 1" in confirm.content
    act_response = staff.post(url("job"), {"action": "delete_selected", "post": "yes",
                                           ACTION_CHECKBOX_NAME: [finished.pk, running.pk]})
    assert act_response.status_code == 302
    assert list(Job.objects.values_list("pk", flat=True)) == [running.pk]
    assert not outputs.job_dir(finished).exists()


# --- units, images, nodes, the queue ----------------------------------------------------------


def test_a_unit_is_found_by_its_comfyui_prompt_id_and_shown_read_only(staff, world):
    unit = world["unit"]
    response = staff.get(url("unit"), {"q": unit.prompt_id})
    assert [u.pk for u in response.context["cl"].result_list] == [unit.pk]
    page = staff.get(url("unit", "change", unit.pk)).content.decode()
    assert unit.prompt_id in page and 'name="status"' not in page
    assert staff.post(url("unit", "change", unit.pk), {"status": "done"}).status_code == 403


def test_the_image_page_previews_it_and_links_to_the_file_and_the_metadata(staff, world):
    image = world["image"]
    page = staff.get(url("image", "change", image.pk)).content.decode()
    for name in ("image-thumb", "image-file", "image-metadata"):
        try:
            assert reverse(name, args=[image.pk]) in page, name
        except NoReverseMatch:
            pass
    listing = staff.get(url("image")).content.decode()
    if thumb_url(image):
        assert f'src="{thumb_url(image)}"' in listing


@pytest.mark.parametrize("action, field, value", [
    ("review_approve", "review", "approved"), ("review_reject", "review", "rejected"),
    ("review_star", "starred", True),
])
def test_the_review_actions_set_the_review_state_of_the_selected_images(staff, world, action, field, value):
    image = world["image"]
    act(staff, "image", action, [image])
    assert getattr(Image.objects.get(pk=image.pk), field) == value


def test_the_unreview_and_unstar_actions_undo_a_review(staff, world):
    image = world["image"]
    Image.objects.filter(pk=image.pk).update(review="rejected", starred=True)
    act(staff, "image", "review_unreview", [image])
    act(staff, "image", "review_unstar", [image])
    image.refresh_from_db()
    assert (image.review, image.starred) == ("unreviewed", False)


def test_the_image_form_changes_only_the_review_state(staff, world):
    image = world["image"]
    response = staff.post(url("image", "change", image.pk), {"review": "approved", "starred": "on",
                                                             "prompt": "rewritten", "seed": "1"})
    assert response.status_code == 302
    image.refresh_from_db()
    assert (image.review, image.starred, image.prompt) == ("approved", True, "pixel art warrior")
    assert Event.objects.filter(kind="image_reviewed").count() == 2


def test_a_worker_node_is_shown_read_only(staff, world):
    node = world["workernode"]
    WorkerNode.objects.filter(pk=node.pk).update(vram_free=80 * 1024 ** 3, vram_total=119 * 1024 ** 3,
                                                 last_error="ComfyUI down", heartbeat_at=timezone.now())
    listing = staff.get(url("workernode")).content.decode()
    assert "80.0 of 119 GB" in listing and "ComfyUI down" in listing
    assert 'name="comfyui_url"' not in staff.get(url("workernode", "change", node.pk)).content.decode()


def test_the_queue_actions_pause_and_resume_the_queue(staff, boss):
    QueueControl.objects.all().delete()
    assert staff.get(url("queuecontrol")).status_code == 200  # the switch's row is made on first look
    row = QueueControl.objects.get()
    act(staff, "queuecontrol", "pause_queue", [row])
    row.refresh_from_db()
    assert row.paused and row.paused_by == "boss"
    act(staff, "queuecontrol", "resume_queue", [row])
    assert not QueueControl.is_paused()


def test_a_long_jobs_inlines_show_the_first_50_and_the_changelist_filters_to_the_job(staff, world):
    job = world["job"]
    first = job.units.order_by("index").first()
    Unit.objects.bulk_create([
        Unit(job=job, index=1000 + n, prompt_index=0, prompt="p", seed=n, batch_size=1, first_sequence=1000 + n)
        for n in range(60)])
    page = staff.get(url("job", "change", job.pk)).content.decode()
    assert page.count("<td class=\"field-index\">") == 50  # the cap, not 61
    listed = staff.get(url("unit") + f"?job__id__exact={job.pk}")
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == job.units.count() and first is not None


def test_the_unit_list_shows_a_short_prompt_id_with_the_whole_one_on_hover(staff, world):
    unit = world["job"].units.exclude(comfy_prompt_id=None).first()
    full = str(unit.comfy_prompt_id)
    page = staff.get(url("unit")).content.decode()
    assert f'<code title="{full}">{full[:8]}</code>' in page
    assert "column-started_at" not in page


def test_the_admin_wears_the_apps_dark_colours(staff):
    page = staff.get(reverse("admin:index")).content.decode()
    assert "batches/css/admin.css" in page and "DGX Pixels admin" in page
    from django.contrib.staticfiles import finders
    css = open(finders.find("batches/css/admin.css")).read()
    assert "--body-bg: #0e1014" in css and "--primary:" in css and 'html[data-theme="light"]' in css
