"""The weak spots of the hardening review (item 8): sign-in throttling, the per-user queue limit,
requeue and retry that act once per press, 405 for methods a page does not take, event pruning,
password reset only with mail, and no queue ETA while ComfyUI is down.

Real database throughout; ComfyUI is a dead port.
"""
from __future__ import annotations

import importlib
import io
import re
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import URLPattern, clear_url_caches, reverse
from django.utils import timezone

from batches.models import Event, Image, Job, Unit, WorkerNode
from batches.services import control
from batches.services.submission import SubmissionError, job_submit
from tests.processes import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _dead_comfyui(settings):
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"


def submit(owner, *, count: int = 4, prompts=("pixel art slime",), **params) -> Job:
    base = {"count": count, "batch_size": 4, "steps": 4, "width": 64, "height": 64, "client": None, "wake": False}
    return job_submit(owner=owner, prompts=list(prompts), **{**base, **params})


def failed(job: Job) -> Job:
    for unit in job.units.all():
        unit.mark_failed("ComfyUI refused the workflow")
    job.refresh_counts()
    job.finish_if_complete()
    job.refresh_from_db()
    return job


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- sign-in throttling ------------------------------------------------------------------------

def _wrong_passwords(client: Client, url: str, username: str, times: int) -> None:
    for _ in range(times):
        response = client.post(url, {"username": username, "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error


def _lock(client: Client, url: str, username: str) -> None:
    """Four wrong passwords show the form again; the fifth locks."""
    _wrong_passwords(client, url, username, 4)
    assert client.post(url, {"username": username, "password": "wrong"}).status_code == 429


def test_the_dashboard_login_locks_a_username_after_five_wrong_passwords_and_says_when_to_try_again(owner):
    client = Client(REMOTE_ADDR="10.0.0.7")
    _lock(client, "/accounts/login/", "owner")
    response = client.post("/accounts/login/", {"username": "owner", "password": "pw"})
    assert response.status_code == 429
    page = response.content.decode()
    assert "5 wrong passwords" in page and "locked for 15 minutes" in page and "Try again after" in page
    assert response["Retry-After"] == "900"
    assert "_auth_user_id" not in client.session  # the right password does not get in while locked


def test_the_admin_login_is_locked_the_same_way(staff):
    client = Client(REMOTE_ADDR="10.0.0.8")
    _lock(client, "/admin/login/", "boss")
    response = client.post("/admin/login/", {"username": "boss", "password": "pw"})
    assert response.status_code == 429 and "Try again after" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lock_holds_one_username_from_one_address_only(owner, other):
    _lock(Client(REMOTE_ADDR="10.0.0.9"), "/accounts/login/", "owner")
    same_address = Client(REMOTE_ADDR="10.0.0.9")
    assert same_address.post("/accounts/login/", {"username": "other", "password": "pw"}).status_code == 302
    elsewhere = Client(REMOTE_ADDR="10.0.0.10")
    assert elsewhere.post("/accounts/login/", {"username": "owner", "password": "pw"}).status_code == 302


def test_the_lock_lifts_after_the_cool_off(owner):
    from axes.models import AccessAttempt

    client = Client(REMOTE_ADDR="10.0.0.11")
    _lock(client, "/accounts/login/", "owner")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert client.post("/accounts/login/", {"username": "owner", "password": "pw"}).status_code == 302


def test_four_wrong_passwords_do_not_lock_anyone_out(owner):
    client = Client(REMOTE_ADDR="10.0.0.12")
    _wrong_passwords(client, "/accounts/login/", "owner", 4)
    assert client.post("/accounts/login/", {"username": "owner", "password": "pw"}).status_code == 302


# --- the per-user queue limit ------------------------------------------------------------------

def test_a_user_cannot_queue_more_images_than_the_limit_and_is_told_the_numbers_and_what_to_do(owner, settings):
    settings.USER_QUEUE_LIMIT = 100
    submit(owner, count=64)
    with pytest.raises(SubmissionError) as caught:
        submit(owner, count=40)
    (message,) = caught.value.errors["count"]
    assert "limit of 100 images per user" in message and "64 already wait" in message
    assert "cancel" in message and "ask staff" in message
    assert Job.objects.count() == 1
    submit(owner, count=36)  # up to the limit is fine


def test_staff_are_exempt_from_the_queue_limit(staff, settings):
    settings.USER_QUEUE_LIMIT = 10
    assert submit(staff, count=40).images_planned == 40


def test_the_queue_limit_counts_only_images_not_made_yet(owner, settings):
    settings.USER_QUEUE_LIMIT = 10
    done = submit(owner, count=8)
    Job.objects.filter(pk=done.pk).update(status=Job.Status.COMPLETED, images_done=8, finished_at=timezone.now())
    half = submit(owner, count=8)
    Job.objects.filter(pk=half.pk).update(status=Job.Status.RUNNING, images_done=4, images_failed=2)
    submit(owner, count=8)  # 2 + 8 wait: exactly the limit
    with pytest.raises(SubmissionError):
        submit(owner, count=1)


def test_a_queue_limit_of_zero_turns_it_off(owner, settings):
    settings.USER_QUEUE_LIMIT = 0
    assert submit(owner, count=1000, prompts=["a", "b", "c"]).images_planned == 3000


def test_the_form_puts_the_queue_limit_on_the_count_field(owner, settings):
    settings.USER_QUEUE_LIMIT = 10
    form = {"prompts": "pixel art knight", "count": "12", "profile": "speed", "batch_size": "4", "steps": "4",
            "cfg": "7", "sampler": "euler", "scheduler": "karras", "width": "64", "height": "64",
            "workflow": "batch_optimized", "priority": "normal"}
    response = signed_in(owner).post("/jobs/new/", form)
    assert response.status_code == 400
    assert "limit of 10 images per user" in response.context["form"].errors["count"][0]
    assert not Job.objects.exists()


def test_the_cli_reports_the_queue_limit_as_a_usage_error_on_count(owner, settings):
    settings.USER_QUEUE_LIMIT = 10
    with pytest.raises(CommandError) as caught:
        call_command("batch_generate", "--prompt", "pixel art knight", "--count", "12", "--steps", "4",
                     "--width", "64", "--height", "64", "--user", "owner", stdout=io.StringIO(), stderr=io.StringIO())
    assert "--count: " in str(caught.value) and "limit of 10 images per user" in str(caught.value)
    assert not Job.objects.exists()


def test_requeue_and_retry_respect_the_queue_limit(owner, settings):
    from batches.services.quotas import QuotaError

    first = failed(submit(owner, count=8))
    waiting = submit(owner, count=8)
    settings.USER_QUEUE_LIMIT = 12
    with pytest.raises(SubmissionError):
        control.job_requeue(first)
    with pytest.raises(QuotaError, match="limit of 12 images per user"):
        control.job_retry_failed(first)
    assert set(first.units.values_list("status", flat=True)) == {Unit.Status.FAILED}
    response = signed_in(owner).post(f"/jobs/{first.pk}/retry/", HTTP_X_REQUESTED_WITH="fetch")
    assert response.status_code == 400 and "limit of 12 images per user" in response.json()["message"]
    control.job_cancel(waiting)
    assert control.job_retry_failed(first) == 2


# --- requeue and retry act once per press ------------------------------------------------------

def _request_id(html: str) -> str:
    match = re.search(r'name="request_id" value="([^"]+)"', html)
    assert match, "no request_id in the page"
    return match.group(1)


def test_the_job_page_sends_a_fresh_request_id_with_retry_and_requeue(owner):
    job = failed(submit(owner))
    client = signed_in(owner)
    first = client.get(f"/jobs/{job.pk}/").content.decode()
    for action in ("retry", "requeue"):
        form = re.search(rf'<form[^>]*action="/jobs/{job.pk}/{action}/".*?</form>', first, re.S).group(0)
        assert 'name="request_id"' in form, action
    assert _request_id(first) != _request_id(client.get(f"/jobs/{job.pk}/").content.decode())


def test_a_double_clicked_requeue_makes_one_job(owner):
    job = failed(submit(owner))
    client = signed_in(owner)
    key = _request_id(client.get(f"/jobs/{job.pk}/").content.decode())
    first = client.post(f"/jobs/{job.pk}/requeue/", {"request_id": key})
    second = client.post(f"/jobs/{job.pk}/requeue/", {"request_id": key})
    copy = Job.objects.get(requeued_from=job)  # exactly one
    assert first["Location"] == second["Location"] == f"/jobs/{copy.pk}/"


def test_two_separate_requeues_make_two_jobs(owner):
    job = failed(submit(owner))
    client = signed_in(owner)
    client.post(f"/jobs/{job.pk}/requeue/", {"request_id": "a" * 32})
    client.post(f"/jobs/{job.pk}/requeue/", {"request_id": "b" * 32})
    assert Job.objects.filter(requeued_from=job).count() == 2


def test_a_double_clicked_retry_retries_once(owner):
    job = failed(submit(owner, count=8))
    client = signed_in(owner)
    key = _request_id(client.get(f"/jobs/{job.pk}/").content.decode())
    first = client.post(f"/jobs/{job.pk}/retry/", {"request_id": key}, HTTP_X_REQUESTED_WITH="fetch")
    assert first.json()["ok"] and set(job.units.values_list("status", flat=True)) == {Unit.Status.PENDING}
    failed(job)  # the units fail again at once, before the second click lands
    second = client.post(f"/jobs/{job.pk}/retry/", {"request_id": key}, HTTP_X_REQUESTED_WITH="fetch")
    assert second.json() == first.json()  # the first press's answer, nothing retried again
    assert set(job.units.values_list("status", flat=True)) == {Unit.Status.FAILED}


def test_a_refused_requeue_leaves_its_request_id_free_for_the_next_press(owner, settings):
    job = failed(submit(owner, count=8))
    settings.USER_QUEUE_LIMIT = 4
    client = signed_in(owner)
    assert client.post(f"/jobs/{job.pk}/requeue/", {"request_id": "k" * 32}, HTTP_X_REQUESTED_WITH="fetch").status_code == 400
    settings.USER_QUEUE_LIMIT = 100
    client.post(f"/jobs/{job.pk}/requeue/", {"request_id": "k" * 32})
    assert Job.objects.filter(requeued_from=job).count() == 1


def _admin_request_id(client: Client) -> str:
    page = client.get(reverse("admin:batches_job_changelist")).content.decode()
    match = re.search(r'<input type="hidden" name="request_id" value="([^"]+)"', page)
    assert match, "the admin's action form sends no request_id"
    return match.group(1)


def test_the_admin_requeue_action_pressed_twice_makes_one_job(owner, django_user_model):
    boss = django_user_model.objects.create_superuser("chief", "", "pw")
    job = failed(submit(owner))
    client = signed_in(boss)
    key = _admin_request_id(client)
    for _ in range(2):
        response = client.post(reverse("admin:batches_job_changelist"),
                               {"action": "requeue", ACTION_CHECKBOX_NAME: [job.pk], "request_id": key})
        assert response.status_code == 302
    assert Job.objects.filter(requeued_from=job).count() == 1
    assert _admin_request_id(client) != key


def test_the_admin_retry_action_pressed_twice_retries_once(owner, django_user_model):
    boss = django_user_model.objects.create_superuser("chief", "", "pw")
    job = failed(submit(owner))
    client = signed_in(boss)
    key = _admin_request_id(client)
    post = {"action": "retry_failed", ACTION_CHECKBOX_NAME: [job.pk], "request_id": key}
    client.post(reverse("admin:batches_job_changelist"), post)
    failed(job)
    client.post(reverse("admin:batches_job_changelist"), post)
    assert set(job.units.values_list("status", flat=True)) == {Unit.Status.FAILED}


# --- pages answer 405 to methods they do not take ----------------------------------------------

def _page_urls(job: Job, image: Image) -> list[str]:
    from batches.urls import urlpatterns

    # Ids that need not exist: a method a page does not take is refused before anything is looked up.
    args = {"job_id": job.pk, "image_id": image.pk, "export_id": 1, "name": "sheet.png", "comparison_id": 1,
            "unit_id": 1, "endpoint_id": 1}
    urls = []
    for pattern in urlpatterns:
        assert isinstance(pattern, URLPattern)
        names = pattern.pattern.converters.keys()
        urls.append(reverse(pattern.name, kwargs={name: args[name] for name in names}))
    return urls


@pytest.mark.parametrize("method", ["put", "delete", "trace", "patch"])
def test_no_dashboard_url_answers_put_delete_trace_or_patch(owner, staff, method):
    job = submit(owner)
    image = Image.objects.create(job=job, unit=job.units.first(), sequence=1, batch_index=0, prompt="p", seed=1,
                                 file_path="batches/x/images/sprite_0001_1.png", width=64, height=64)
    client = signed_in(staff)
    for url in _page_urls(job, image):
        response = getattr(client, method)(url)
        assert response.status_code == 405, (method, url, response.status_code)
        assert "GET" in response["Allow"] or "POST" in response["Allow"], url


def test_the_pages_still_answer_get_and_head(owner):
    job = submit(owner)
    client = signed_in(owner)
    for url in ["/", f"/jobs/{job.pk}/", "/jobs/new/"]:
        assert client.get(url).status_code == 200, url
        assert client.head(url).status_code == 200, url


# --- event pruning -----------------------------------------------------------------------------

def _events(n: int, *, age: timedelta, job: Job | None = None) -> list[Event]:
    at = timezone.now() - age
    return Event.objects.bulk_create([Event(kind="progress", job=job, data={"i": i}, created_at=at) for i in range(n)])


def test_pruning_deletes_events_past_the_retention_and_keeps_newer_ones(owner):
    from batches.services.events import prune_events

    job = submit(owner)
    _events(30, age=timedelta(hours=30), job=job)
    recent = _events(5, age=timedelta(hours=2), job=job)
    deleted = prune_events(retention=timedelta(hours=24), keep_last=3)
    assert deleted == 30
    assert Event.objects.filter(kind="job_queued", job=job).exists()
    assert set(Event.objects.values_list("pk", flat=True)) >= {e.pk for e in recent}


def test_pruning_keeps_the_newest_events_whatever_their_age(owner):
    from batches.services.events import prune_events
    from batches.views.queue import latest_event_id

    Event.objects.all().delete()
    old = _events(50, age=timedelta(days=10))
    before = latest_event_id()
    assert prune_events(retention=timedelta(hours=24), keep_last=20) == 30
    assert list(Event.objects.order_by("id").values_list("pk", flat=True)) == [e.pk for e in old[-20:]]
    assert latest_event_id() == before  # pages still start their socket from the real last id


def test_a_page_reconnecting_after_a_prune_still_gets_every_event_after_its_last_id(owner):
    from batches.services.events import prune_events

    _events(40, age=timedelta(days=2))
    since = Event.objects.order_by("-id").values_list("id", flat=True).first()
    missed = _events(10, age=timedelta(minutes=1))
    prune_events(retention=timedelta(hours=24), keep_last=5)
    assert list(Event.objects.filter(id__gt=since).order_by("id").values_list("pk", flat=True)) == \
        [e.pk for e in missed]


def test_pruning_follows_the_retention_setting(owner, settings):
    from batches.services.events import prune_events

    settings.EVENT_RETENTION = timedelta(hours=1)
    settings.EVENT_KEEP_LAST = 1
    Event.objects.all().delete()
    _events(10, age=timedelta(hours=2))
    fresh = _events(3, age=timedelta(minutes=5))
    assert prune_events() == 10
    assert set(Event.objects.values_list("pk", flat=True)) == {e.pk for e in fresh}


def test_the_worker_schedules_an_hourly_prune_on_its_own_cluster(settings):
    from django_q.models import Schedule

    from batches.tasks import ensure_schedule

    settings.GPU_NODE = "gpu-a"
    ensure_schedule()
    ensure_schedule()  # idempotent, like the tick
    prune = Schedule.objects.get(func="batches.tasks.prune_history")
    assert prune.schedule_type == Schedule.HOURLY and prune.repeats == -1 and prune.cluster == "gpu-gpu-a"


def test_the_prune_task_deletes_old_events_and_old_request_keys(owner, settings):
    from batches.models import ActionRequest
    from batches.tasks import prune_history

    settings.EVENT_KEEP_LAST = 1
    job = failed(submit(owner))
    control.job_retry_failed(job, request_key="x" * 32)
    ActionRequest.objects.update(created_at=timezone.now() - timedelta(days=2))
    Event.objects.update(created_at=timezone.now() - timedelta(days=2))
    _events(1, age=timedelta(seconds=1))
    assert prune_history() >= 1
    assert Event.objects.count() == 1 and not ActionRequest.objects.exists()


def test_batch_cleanup_prunes_old_events_too(owner, settings, output_root):
    settings.EVENT_KEEP_LAST = 1
    Event.objects.all().delete()
    _events(12, age=timedelta(days=3))
    _events(1, age=timedelta(seconds=1))
    out = io.StringIO()
    call_command("batch_cleanup", "--older-than", "30", stdout=out)
    assert "Pruned 12 progress events" in out.getvalue() and Event.objects.count() == 1


# --- password reset only where mail can be sent ------------------------------------------------

@pytest.fixture
def reload_urls():
    """Rebuild the URLconf after a settings change; rebuild it again from the real settings after."""
    import dgxpixels.urls

    def reload() -> None:
        importlib.reload(dgxpixels.urls)
        clear_url_caches()

    yield reload
    reload()


def test_password_reset_is_not_offered_without_mail(client, settings, reload_urls):
    settings.EMAIL_HOST = ""
    reload_urls()
    assert client.get("/accounts/password_reset/").status_code == 404
    assert client.post("/accounts/password_reset/", {"email": "a@b.c"}).status_code == 404
    assert "password_reset" not in client.get("/accounts/login/").content.decode()
    assert "password_reset" not in client.get("/admin/login/").content.decode()


def test_password_reset_is_offered_when_mail_is_configured(client, settings, reload_urls):
    settings.EMAIL_HOST = "smtp.studio.lan"
    reload_urls()
    assert client.get("/accounts/password_reset/").status_code == 200
    assert 'href="/accounts/password_reset/"' in client.get("/accounts/login/").content.decode()
    assert 'href="/admin/password_reset/"' in client.get("/admin/login/").content.decode()


# --- no queue ETA while ComfyUI is down --------------------------------------------------------

def _busy_queue(owner) -> Job:
    """A queue with images left and a recent rate (a unit of gpu-b finished in the last minute)."""
    job = submit(owner, count=40)
    now = timezone.now()
    Unit.objects.filter(pk=job.units.order_by("index").first().pk).update(
        status=Unit.Status.DONE, node="gpu-b", started_at=now - timedelta(seconds=70),
        finished_at=now - timedelta(seconds=10))
    for seq, ago in ((1, 70), (2, 10)):
        Image.objects.create(job=job, unit=job.units.first(), sequence=seq, batch_index=seq - 1, prompt="p", seed=seq,
                             file_path=f"batches/x/images/{seq}.png", width=64, height=64,
                             created_at=now - timedelta(seconds=ago))
    return job


def test_the_queue_shows_no_eta_but_waiting_for_comfyui_when_every_node_has_lost_it(owner):
    _busy_queue(owner)
    for name in ("gpu-a", "gpu-b"):
        WorkerNode.register(name=name, comfyui_url="http://127.0.0.1:1").mark_unreachable("connection refused")
    response = signed_in(owner).get("/?partial=worker")
    assert response.context["worker"]["queue_eta"] is None
    eta = re.search(r'data-field="queue-eta">(.*?)</dd>', response.content.decode(), re.S).group(1)
    assert "waiting for ComfyUI" in eta


def test_the_queue_keeps_its_eta_while_one_node_still_reaches_comfyui(owner):
    _busy_queue(owner)
    WorkerNode.register(name="gpu-a", comfyui_url="http://127.0.0.1:1").mark_unreachable("connection refused")
    WorkerNode.register(name="gpu-b", comfyui_url="http://127.0.0.1:2")
    response = signed_in(owner).get("/?partial=worker")
    assert response.context["worker"]["queue_eta"] is not None
    assert "waiting for ComfyUI" not in response.content.decode()


def test_a_node_long_gone_does_not_count_as_serving_the_queue(owner):
    _busy_queue(owner)
    WorkerNode.register(name="gpu-a", comfyui_url="http://127.0.0.1:1").mark_unreachable("connection refused")
    WorkerNode.register(name="gpu-old", comfyui_url="http://127.0.0.1:2")
    WorkerNode.objects.filter(name="gpu-old").update(heartbeat_at=timezone.now() - timedelta(days=3))
    response = signed_in(owner).get("/?partial=worker")
    assert response.context["worker"]["queue_eta"] is None


@pytest.mark.django_db(transaction=True)
async def test_the_lockout_holds_under_asgi_as_daphne_serves_it(django_user_model):
    """daphne runs the async middleware path, which calls the lockout page differently."""
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    await sync_to_async(django_user_model.objects.create_user)("owner", password="pw")
    client = AsyncClient(REMOTE_ADDR="10.0.0.13")
    for _ in range(4):
        assert (await client.post("/accounts/login/", {"username": "owner", "password": "x"})).status_code == 200
    response = await client.post("/accounts/login/", {"username": "owner", "password": "pw"})
    assert response.status_code == 302  # four failures: still fine
    for _ in range(5):
        response = await client.post("/accounts/login/", {"username": "owner", "password": "x"})
    assert response.status_code == 429 and "Try again after" in response.content.decode()
