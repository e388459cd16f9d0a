"""Webhooks: real receiver processes on loopback, the real webhook worker as a subprocess.

The receiver (tests/webhook_receiver.py) checks the signature itself with the README's
algorithm, so these tests also check that the documented algorithm is the one we send.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from batches import cli
from batches.models import Event, Job, Unit, WebhookDelivery, WebhookEndpoint
from batches.services import control
from batches.services.events import publish
from batches.services.submission import SubmissionError, job_submit
from batches.services.webhooks import deliver_due, verify_signature
from batches.services.webhooks.events import EventTail
from batches.services.webhooks.signing import sign, signing_key
from tests.processes import free_port, manage_proc, wait_for_http, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "test-webhook-secret"
RECEIVER = Path(__file__).with_name("webhook_receiver.py")


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"  # nothing answers: no model checks
    settings.WEBHOOK_ALLOW = ["127.0.0.1"]
    settings.WEBHOOK_SECRET = SECRET
    settings.WEBHOOK_RETRY_BASE = 0.2
    settings.WEBHOOK_TIMEOUT = 5.0


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("artist", password="pw")


class Receiver:
    def __init__(self, tmp_path: Path, plan: dict):
        self.port = free_port()
        self.log = tmp_path / f"received-{self.port}.jsonl"
        self.proc = subprocess.Popen([sys.executable, str(RECEIVER), str(self.port), str(self.log), SECRET,
                                      json.dumps(plan)], start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for_http(self.base + "/", proc=self.proc)

    def requests(self, path: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r for r in rows if path is None or r["path"] == path]

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=5)


@pytest.fixture
def receiver(tmp_path):
    started = []

    def start(plan: dict | None = None) -> Receiver:
        r = Receiver(tmp_path, plan or {})
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def webhook_worker(tmp_path, worker_env):
    procs = []

    def start(*args: str, name: str = "webhook-worker", **env):
        full = {**worker_env, "DGX_WEBHOOK_ALLOW": "127.0.0.1", "DGX_WEBHOOK_RETRY_BASE": "0.2",
                "DGX_WEBHOOK_SECRET": SECRET, **env}
        proc = manage_proc("webhook_worker", "--interval", "0.05", *args, env=full,
                           log_path=tmp_path / f"{name}.log").start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def submit(owner, **params) -> Job:
    defaults = {"prompts": ["pixel art warrior"], "profile": "speed", "steps": 4, "client": None, "width": 64,
                "height": 64, "wake": False, "count": 1, "batch_size": 1}
    return job_submit(owner=owner, **{**defaults, **params})


def complete(job: Job) -> str:
    """End a job as the GPU worker does when its last unit is recorded (worker._close_job)."""
    Unit.objects.filter(job=job).update(status=Unit.Status.DONE, finished_at=timezone.now())
    job.refresh_counts()
    final = job.finish_if_complete()
    publish("job_finished", job_id=job.pk, status=final, images_done=job.images_done,
            images_failed=job.images_failed, images_planned=job.images_planned)
    return final


def run_once():
    """What `webhook_worker --once` does, in this process: read the events, send what is due."""
    EventTail(cursor=0).poll()
    return deliver_due()


# --- delivery: retries, back-off, signature, exactly one success per event ----------------------


def test_a_failing_receiver_gets_each_event_after_three_attempts_with_growing_waits(owner, receiver,
                                                                                   webhook_worker):
    rx = receiver({"/job": ["500", "500", "200"], "/standing": ["500", "500", "200"]})
    WebhookEndpoint.objects.create(owner=owner, url=rx.base + "/standing")
    job = submit(owner, webhook_url=rx.base + "/job")
    worker = webhook_worker()
    assert complete(job) == "completed"

    wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").count() == 2, timeout=20,
               message=f"both deliveries made; worker log:\n{worker.log()}")
    for path in ("/job", "/standing"):
        seen = rx.requests(path)
        assert [r["answer"] for r in seen] == ["500", "500", "200"], seen
        assert all(r["verified"] for r in seen), "the receiver's own check of X-DGX-Signature failed"
        ids = {r["headers"]["X-DGX-Delivery"] for r in seen}
        assert len(ids) == 1  # the same delivery, tried three times
        body = json.loads(seen[-1]["body"])
        assert body["event"] == "job.completed" and str(body["delivery"]) == ids.pop()
        assert body["job"]["id"] == job.pk and body["job"]["status"] == "completed"
        assert body["job"]["webhook_url"] == rx.base + "/job"
        headers = seen[-1]["headers"]
        assert headers["Content-Type"] == "application/json" and headers["X-DGX-Event"] == "job.completed"
        assert headers["User-Agent"] == "dgx-pixels-webhooks/1"
        gaps = [b["at"] - a["at"] for a, b in zip(seen, seen[1:])]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[1] > gaps[0], gaps  # back-off: 0.2 s, then 0.4 s
    rows = WebhookDelivery.objects.order_by("url")
    assert [(r.attempts, r.last_status_code, r.event) for r in rows] == [(3, 200, "job.completed")] * 2
    assert "attempt 1" in worker.log() and "retry" in worker.log() and "delivered" in worker.log()

    # A restart reads the last day's events again: nothing is sent twice.
    worker.stop()
    restarted = webhook_worker("--once", name="webhook-worker-2")
    assert restarted.popen.wait(timeout=20) == 0, restarted.log()
    time.sleep(0.3)
    assert len(rx.requests()) == 6 and WebhookDelivery.objects.count() == 2


def test_a_worker_killed_while_it_waits_for_the_receiver_loses_nothing(owner, receiver, webhook_worker):
    rx = receiver({"/slow": ["hang", "200"]})
    job = submit(owner, webhook_url=rx.base + "/slow")
    first = webhook_worker(name="doomed", DGX_WEBHOOK_TIMEOUT="30")
    control.job_cancel(job, by="test")  # the cancel path publishes job_finished itself
    wait_until(lambda: rx.requests("/slow"), timeout=15, message="the first attempt to arrive")
    row = WebhookDelivery.objects.get()
    assert row.status == "sending" and row.event == "job.cancelled"
    first.kill()  # SIGKILL while it waits for an answer

    second = webhook_worker("--reclaim-after", "1", name="survivor")
    wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").exists(), timeout=20,
               message=f"the delivery to be taken back and made; log:\n{second.log()}")
    seen = rx.requests("/slow")
    assert len(seen) == 2 and seen[0]["headers"]["X-DGX-Delivery"] == seen[1]["headers"]["X-DGX-Delivery"]
    assert json.loads(seen[1]["body"])["event"] == "job.cancelled"
    row.refresh_from_db()
    assert row.attempts == 2 and row.last_status_code == 200
    assert "taken back" in second.log()


def test_progress_goes_only_to_endpoints_that_asked_and_end_events_to_every_target(owner, receiver):
    rx = receiver()
    WebhookEndpoint.objects.create(owner=owner, url=rx.base + "/progress", progress=True)
    WebhookEndpoint.objects.create(owner=owner, url=rx.base + "/ends")
    WebhookEndpoint.objects.create(owner=owner, url=rx.base + "/off", active=False)
    job = submit(owner, webhook_url=rx.base + "/job", count=2)
    publish("job_progress", job_id=job.pk, images_done=1, images_failed=0, images_planned=2)
    run_once()
    assert [json.loads(r["body"])["event"] for r in rx.requests()] == ["job.progress"]
    body = json.loads(rx.requests()[0]["body"])
    assert (body["images_done"], body["images_planned"]) == (1, 2) and rx.requests()[0]["path"] == "/progress"

    complete(job)
    run_once()
    run_once()  # a second read of the same events makes no new deliveries
    ends = [r["path"] for r in rx.requests() if json.loads(r["body"])["event"] == "job.completed"]
    assert sorted(ends) == ["/ends", "/job", "/progress"]
    assert not rx.requests("/off")


def test_an_endpoint_added_later_gets_no_old_events(owner, receiver):
    rx = receiver()
    job = submit(owner)
    complete(job)
    WebhookEndpoint.objects.create(owner=owner, url=rx.base + "/new")
    run_once()
    assert rx.requests() == [] and not WebhookDelivery.objects.exists()


def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(owner, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    rx = receiver({"/moved": ["302"]})
    job = submit(owner, webhook_url=rx.base + "/moved")
    complete(job)
    run_once()
    row = WebhookDelivery.objects.get()
    assert row.status == "failed" and row.last_status_code == 302 and "not followed" in row.last_error
    assert [r["path"] for r in rx.requests()] == ["/moved"]


def test_a_row_is_claimed_once_and_taken_back_only_when_its_claim_is_stale(owner, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    row = WebhookDelivery.objects.create(url="http://127.0.0.1:9/x", event="ping", payload={"event": "ping"})
    mine = WebhookDelivery.claim_due(stale_after=60)
    assert mine.pk == row.pk and mine.attempts == 1 and mine.status == "sending"
    assert WebhookDelivery.claim_due(stale_after=60) is None  # a second worker finds nothing to send
    later = timezone.now() + timedelta(seconds=61)
    theirs = WebhookDelivery.claim_due(stale_after=60, now=later)
    assert theirs.pk == row.pk and theirs.attempts == 2 and theirs.taken_back
    assert not mine.delivered(200)  # the first worker's late answer is not recorded over the second's
    again = WebhookDelivery.claim_due(stale_after=60, now=later + timedelta(seconds=61))
    from batches.services.webhooks import send

    assert again.attempts == 3 and send(again) == "failed"  # past the last attempt: not sent again
    assert WebhookDelivery.objects.get().status == "failed"


# --- targets refused ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/hook",
                                 "http://[::1]/hook", "http://169.254.169.254/latest/meta-data"])
def test_internal_targets_are_refused_at_submission_unless_allowed(owner, settings, url):
    settings.WEBHOOK_ALLOW = []
    with pytest.raises(SubmissionError) as caught:
        submit(owner, webhook_url=url)
    assert "webhook_url" in caught.value.errors and "DGX_WEBHOOK_ALLOW" in caught.value.errors["webhook_url"][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)",
                                 "gopher://127.0.0.1/", "http://user:pw@example.com/"])
def test_non_http_urls_and_credentials_are_refused(owner, url):
    with pytest.raises(SubmissionError) as caught:
        submit(owner, webhook_url=url)
    assert "webhook_url" in caught.value.errors


def test_a_target_the_allow_list_no_longer_allows_is_refused_at_send_time(owner, receiver, settings):
    rx = receiver()
    job = submit(owner, webhook_url=rx.base + "/hook")
    settings.WEBHOOK_ALLOW = []
    complete(job)
    run_once()
    row = WebhookDelivery.objects.get()
    assert row.status == "failed" and "refused" in row.last_error and "DGX_WEBHOOK_ALLOW" in row.last_error
    assert rx.requests() == []


def test_the_address_connected_to_is_checked_too_not_only_the_name_looked_up(receiver, settings):
    """url_problem resolves the name before the POST; a name re-pointed in between (DNS rebinding)
    is caught on the connection itself, before a byte is sent."""
    import requests

    from batches.services.webhooks.delivery import post

    rx = receiver()
    settings.WEBHOOK_ALLOW = []
    with pytest.raises(requests.ConnectionError, match="refused"):
        post(rx.base + "/rebound", b"{}", {"Content-Type": "application/json"})
    assert rx.requests() == []
    settings.WEBHOOK_ALLOW = ["127.0.0.1"]
    assert post(rx.base + "/fine", b"{}", {}).status_code == 200


# --- signatures -----------------------------------------------------------------------------------


def test_verify_signature_accepts_ours_and_rejects_tampering_replays_and_junk():
    body = b'{"event":"job.completed","delivery":1}'
    now = time.time()
    header = sign(body, secret=SECRET, now=now)
    t = header.split(",")[0][2:]
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={t},v1={expected}"  # the documented algorithm
    assert verify_signature(SECRET, header, body, now=now)
    assert verify_signature(SECRET, header + ",v1=" + "0" * 64, body, now=now)  # rotation: any v1 may match
    assert not verify_signature(SECRET, header, body.replace(b"completed", b"failed"), now=now)
    assert not verify_signature("other-secret", header, body, now=now)
    assert not verify_signature(SECRET, header, body, now=now + 301)  # too old: a replay
    assert verify_signature(SECRET, header, body, now=now + 299)
    old = sign(body, secret=SECRET, now=now - 3600)
    assert not verify_signature(SECRET, old, body, now=now)
    for junk in ("", None, "t=abc,v1=00", f"v1={expected}", f"t={t}", "t=1,v1=\u00e9\u00e9", "garbage"):
        assert not verify_signature(SECRET, junk, body, now=now)


def test_without_a_secret_the_key_is_derived_from_secret_key_and_the_worker_warns(settings, tmp_path,
                                                                                 worker_env):
    settings.WEBHOOK_SECRET = ""
    key = signing_key()
    assert key and key != settings.SECRET_KEY and len(key) == 64
    assert verify_signature(key, sign(b"x"), b"x")
    proc = manage_proc("webhook_worker", "--once", env={**worker_env, "DGX_WEBHOOK_SECRET": ""},
                       log_path=tmp_path / "warn.log").start()
    assert proc.popen.wait(timeout=20) == 0
    assert "WARNING" in proc.log() and "DGX_WEBHOOK_SECRET" in proc.log()


# --- the admin ------------------------------------------------------------------------------------


@pytest.fixture
def staff(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("boss", "", "pw"))
    return client


def admin_url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:batches_{model}_{view}", args=args)


def test_admin_send_test_queues_a_signed_ping_and_redeliver_queues_a_new_delivery(staff, owner, receiver):
    rx = receiver()
    response = staff.post(admin_url("webhookendpoint", "add"),
                          {"owner": owner.pk, "url": rx.base + "/admin", "active": "on"})
    assert response.status_code == 302, response.content[:2000]
    endpoint = WebhookEndpoint.objects.get()
    response = staff.post(admin_url("webhookendpoint"), {"action": "send_test", ACTION_CHECKBOX_NAME: [endpoint.pk]})
    assert response.status_code == 302
    run_once()
    (ping,) = rx.requests()
    assert ping["verified"] and json.loads(ping["body"])["event"] == "ping" and ping["headers"]["X-DGX-Event"] == "ping"
    first = WebhookDelivery.objects.get()
    assert first.status == "delivered"

    assert staff.get(admin_url("webhookdelivery")).status_code == 200
    detail = staff.get(admin_url("webhookdelivery", "change", first.pk))
    assert detail.status_code == 200 and "ping" in detail.content.decode()
    response = staff.post(admin_url("webhookdelivery"), {"action": "redeliver_selected",
                                                         ACTION_CHECKBOX_NAME: [first.pk]})
    assert response.status_code == 302
    run_once()
    assert len(rx.requests()) == 2
    second = WebhookDelivery.objects.exclude(pk=first.pk).get()
    assert second.status == "delivered" and second.payload["redelivery_of"] == first.pk
    assert rx.requests()[1]["headers"]["X-DGX-Delivery"] == str(second.pk)
    first.refresh_from_db()
    assert first.attempts == 1 and first.status == "delivered"  # the old row's log is kept as it was
    assert staff.get(admin_url("webhookdelivery") + "?status=delivered").status_code == 200


def test_admin_refuses_an_internal_endpoint_url_that_is_not_allowed(staff, owner, settings):
    settings.WEBHOOK_ALLOW = []
    response = staff.post(admin_url("webhookendpoint", "add"), {"owner": owner.pk, "url": "http://127.0.0.1/x"})
    assert response.status_code == 200 and "DGX_WEBHOOK_ALLOW" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


# --- the doors: form, CLI, account page, job page ------------------------------------------------


def test_the_form_queues_a_job_with_its_webhook_url_and_shows_a_refusal_on_the_field(client, owner, settings):
    client.force_login(owner)
    form = {"prompts": "pixel art knight", "count": "1", "profile": "speed", "batch_size": "1", "steps": "4",
            "width": "64", "height": "64", "workflow": "batch_optimized", "priority": "normal",
            "webhook_url": "http://127.0.0.1:9/done"}
    assert 'name="webhook_url"' in client.get(reverse("job-new")).content.decode()
    response = client.post(reverse("job-new"), form)
    assert response.status_code == 302, response.content[:3000]
    assert Job.objects.get().webhook_url == "http://127.0.0.1:9/done"
    settings.WEBHOOK_ALLOW = []
    response = client.post(reverse("job-new"), form)
    assert response.status_code == 400 and "DGX_WEBHOOK_ALLOW" in response.context["form"].errors["webhook_url"][0]


def test_the_cli_takes_webhook_and_names_the_flag_in_a_refusal(owner, settings):
    call_command("batch_generate", "--prompt", "pixel art key", "--webhook", "http://127.0.0.1:9/cli",
                 "--user", "artist", "--steps", "4", "--width", "64", "--height", "64", stdout=io.StringIO())
    assert Job.objects.get().webhook_url == "http://127.0.0.1:9/cli"
    with pytest.raises(CommandError) as caught:
        call_command("batch_generate", "--prompt", "x", "--webhook", "ftp://example.com/", "--user", "artist",
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == cli.EXIT_USAGE and str(caught.value).startswith("--webhook:")
    assert Job.objects.count() == 1


def test_the_account_page_adds_tests_and_removes_the_users_own_endpoints(client, owner, django_user_model):
    client.force_login(owner)
    page = reverse("account-webhooks")
    assert client.get(page).status_code == 200
    assert client.post(page, {"url": "ftp://example.com/"}).status_code == 400
    assert client.post(page, {"url": "http://127.0.0.1:9/mine", "progress": "on"}).status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.owner == owner and endpoint.progress
    assert "http://127.0.0.1:9/mine" in client.get(page).content.decode()
    assert client.post(reverse("account-webhook-test", args=[endpoint.pk])).status_code == 302
    assert WebhookDelivery.objects.get().event == "ping"

    other = Client()
    other.force_login(django_user_model.objects.create_user("other", password="pw"))
    assert other.post(reverse("account-webhook-remove", args=[endpoint.pk])).status_code == 404
    assert "127.0.0.1:9/mine" not in other.get(page).content.decode()
    assert client.post(reverse("account-webhook-remove", args=[endpoint.pk])).status_code == 302
    assert not WebhookEndpoint.objects.exists() and WebhookDelivery.objects.count() == 1  # the log stays
    ping = WebhookDelivery.objects.get()
    assert ping.status == "failed" and "removed" in ping.last_error  # not sent to a URL taken away


def test_the_job_page_shows_its_webhook_and_deliveries_to_its_owner(client, owner, receiver, django_user_model):
    rx = receiver()
    client.force_login(owner)
    plain = submit(owner)
    assert "job-webhooks" not in client.get(reverse("job-detail", args=[plain.pk])).content.decode()
    job = submit(owner, webhook_url=rx.base + "/page")
    complete(job)
    run_once()
    html = client.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "job-webhooks" in html and rx.base + "/page" in html and 'data-status="delivered"' in html
    other = Client()  # any signed-in user may look at the job, but a webhook URL may hold a secret
    other.force_login(django_user_model.objects.create_user("other", password="pw"))
    html = other.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "job-webhooks" not in html and "/page" not in html


# --- end to end: the real GPU worker writes the events ---------------------------------------------


def test_a_job_run_by_the_real_gpu_worker_reports_progress_and_its_end(owner, receiver, webhook_worker,
                                                                       simulator_factory, qcluster_factory,
                                                                       output_root):
    from batches.tasks import wake_workers

    rx = receiver()
    WebhookEndpoint.objects.create(owner=owner, url=rx.base + "/all", progress=True)
    _, url = simulator_factory("--step-ms", "10")
    qcluster_factory(url)
    webhook_worker()
    job = job_submit(owner=owner, prompts=["pixel art gem"], count=2, batch_size=1, profile="speed", steps=4,
                     width=64, height=64, client=None, webhook_url=rx.base + "/job")
    wake_workers()
    wait_until(lambda: rx.requests("/job"), timeout=60, message="the end of the job to be reported")
    wait_until(lambda: any(json.loads(r["body"])["event"] == "job.completed" for r in rx.requests("/all")),
               timeout=10, message="the standing webhook to hear of the end")
    (end,) = rx.requests("/job")
    body = json.loads(end["body"])
    assert end["verified"] and body["event"] == "job.completed" and body["job"]["images_done"] == 2
    events = [json.loads(r["body"])["event"] for r in rx.requests("/all")]
    assert events.count("job.completed") == 1 and "job.progress" in events
    assert Event.objects.filter(job=job, kind="job_finished").count() == 1
