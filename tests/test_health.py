"""Health, metrics and the disk guard, through real processes: simulator, qcluster, daphne, manage.py."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from batches.models import Event, Image, Job, Unit, WorkerNode
from batches.services.submission import job_submit
from tests.processes import MANAGE, ROOT, start_daphne, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-token-7f3a9c1e5b"
GB = 1024 ** 3


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


def submit(owner, **params):
    base = {"prompts": ["pixel art slime"], "profile": "speed", "steps": 4, "width": 64, "height": 64,
            "client": None}
    return job_submit(owner=owner, **{**base, **params})


def doctor(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, MANAGE, "batch_doctor", *args], env={**os.environ, **env},
                          cwd=str(ROOT), capture_output=True, text=True, timeout=60)


def doctor_here(*args: str) -> tuple[int, str]:
    """batch_doctor in this process (starting Python and Django again costs seconds on a busy machine)."""
    out = io.StringIO()
    try:
        call_command("batch_doctor", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def metrics_of(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_healthz_metrics_and_batch_doctor_follow_the_real_processes(tmp_path, simulator_factory, qcluster_factory,
                                                                     worker_env, owner):
    sim, url = simulator_factory("--step-ms", "25")
    port = sim.extra["port"]
    qcluster_factory(url)
    # daphne reaches ComfyUI through a URL with a password in it: it must never show in the body.
    secret_url = f"http://monitor:hunter2secret@127.0.0.1:{port}"
    proc, base = start_daphne(tmp_path, {**worker_env, "COMFYUI_URL": secret_url, "DGX_METRICS_TOKEN": TOKEN,
                                         "DGX_METRICS_ALLOW": "10.9.9.9"})
    try:
        job = submit(owner, count=8, batch_size=4)
        wait_until(lambda: Job.objects.filter(pk=job.pk, status=Job.Status.COMPLETED).exists(), timeout=40,
                   message="the job to complete")

        # /healthz: no sign-in, 200, every check named; nothing secret in it.
        response = requests.get(base + "/healthz", timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["ok"] is True
        assert set(body["checks"]) >= {"database", "comfyui", "workers", "disk", "queue", "models"}
        assert all(c["ok"] for c in body["checks"].values()), body
        assert body["checks"]["queue"]["paused"] is False
        assert [n["name"] for n in body["checks"]["workers"]["nodes"]] == ["gpu-test"]
        for secret in ("hunter2secret", "monitor:", TOKEN, worker_env["DATABASE_URL"], str(worker_env["OUTPUT_ROOT"]),
                       os.environ["DJANGO_SECRET_KEY"]):
            assert secret not in response.text, secret

        # /metrics: 403 from an address not allowed and with a wrong token; 200 with the token.
        assert requests.get(base + "/metrics", timeout=10).status_code == 403
        assert requests.get(base + "/metrics", headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 403
        assert requests.get(base + "/metrics", headers={"X-Forwarded-For": "10.9.9.9"}, timeout=10).status_code == 403
        scraped = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("text/plain")
        values = metrics_of(scraped.text)
        node = (("node", "gpu-test"),)
        assert values[("dgx_images_made_total", node)] == Image.objects.count() == 8
        for status in Unit.Status:
            assert values[("dgx_units", (("status", status.value),))] == Unit.objects.filter(status=status).count()
        assert values[("dgx_units", (("status", "done"),))] == 2
        assert values[("dgx_jobs", (("status", "completed"),))] == 1
        assert values[("dgx_queue_pending_units", (("priority", "normal"),))] == 0
        assert values[("dgx_job_duration_seconds_count", (("status", "completed"),))] == 1
        assert values[("dgx_comfyui_up", node)] == 1
        assert 0 < values[("dgx_gpu_busy_ratio", node)] <= 1
        assert values[("dgx_node_heartbeat_age_seconds", node)] < 30
        assert values[("dgx_disk_guard_holding", node)] == 0
        assert values[("dgx_queue_paused", ())] == 0
        assert values[("dgx_disk_free_bytes", ())] > 0
        assert values[("dgx_vram_total_bytes", node)] > 0
        assert "# HELP dgx_images_made_total" in scraped.text

        # batch_doctor agrees: exit 0, and --json is the /healthz document.
        code, text = doctor_here()
        assert code == 0 and "Healthy." in text, text
        code, text = doctor_here("--json")
        assert code == 0 and json.loads(text)["ok"] is True
        assert set(json.loads(text)["checks"]) == set(body["checks"])

        # ComfyUI goes away: 503 naming it, and the doctor says what to do.
        sim.kill()
        down = requests.get(base + "/healthz", timeout=10)
        assert down.status_code == 503
        failing = {name for name, c in down.json()["checks"].items() if not c["ok"]}
        assert failing == {"comfyui"}, down.text
        assert "hunter2secret" not in down.text
        sick = doctor({**worker_env, "COMFYUI_URL": url})  # a real process: the real exit status
        assert sick.returncode == 1
        assert "FAIL  comfyui" in sick.stdout and "COMFYUI_URL" in sick.stdout, sick.stdout
        code, text = doctor_here("--json")
        assert code == 1 and json.loads(text)["checks"]["comfyui"]["ok"] is False

        # ... and comes back on the same port: healthy again.
        simulator_factory("--step-ms", "25", port=port)
        assert requests.get(base + "/healthz", timeout=10).status_code == 200
    finally:
        proc.discard()


def test_batch_doctor_names_a_missing_checkpoint_and_a_missing_worker(simulator_factory, output_root, settings):
    _, url = simulator_factory("--checkpoints", "only_this_one.safetensors")
    settings.COMFYUI_URL = url
    code, text = doctor_here()
    assert code == 1
    assert "FAIL  models" in text and "sd_xl_base_1.0.safetensors" in text, text
    assert "FAIL  workers" in text and "./dgx qcluster" in text, text
    assert "ok    comfyui" in text


def fill(path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def test_the_disk_guard_holds_new_work_while_space_is_low_and_resumes_by_itself(
        simulator_factory, qcluster_factory, owner, output_root):
    stat = os.statvfs(output_root)
    free_gb = stat.f_bavail * stat.f_frsize / GB
    if free_gb < 4:
        pytest.skip(f"only {free_gb:.1f} GB free at the test's OUTPUT_ROOT; the test needs 4")
    filler = output_root / "filler.bin"
    try:
        fill(filler, 1024)
    except OSError as exc:
        pytest.skip(f"posix_fallocate is not supported here: {exc}")
    filler.unlink()

    _, url = simulator_factory("--step-ms", "40")
    qcluster_factory(url, DGX_DISK_MIN_FREE_GB=f"{free_gb - 1:.3f}")
    job = submit(owner, count=24, batch_size=1)
    try:
        wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.DONE).exists(), timeout=30,
                   message="the first unit to be done")
        fill(filler, 2 * GB)  # free space drops a GB below the limit
        node = wait_until(lambda: WorkerNode.objects.exclude(hold_reason="").first(), timeout=15,
                          message="the worker to hold")
        assert "DGX_DISK_MIN_FREE_GB" in node.hold_reason and "GB free at OUTPUT_ROOT" in node.hold_reason
        assert node.disk_free is not None and node.disk_free < (free_gb - 1) * GB
        # The unit on the GPU finishes and is recorded; then nothing new is claimed.
        wait_until(lambda: not Unit.objects.filter(job=job, status__in=Unit.IN_FLIGHT).exists(), timeout=15,
                   message="the units in flight to finish")
        done = Unit.objects.filter(job=job, status=Unit.Status.DONE).count()
        time.sleep(3)
        assert Unit.objects.filter(job=job, status=Unit.Status.DONE).count() == done
        assert not Unit.objects.filter(job=job, status__in=Unit.IN_FLIGHT).exists()
        assert not Unit.objects.filter(job=job, status=Unit.Status.FAILED).exists()
        assert Unit.objects.filter(job=job, status=Unit.Status.PENDING).count() == 24 - done > 0
        assert Image.objects.filter(job=job).count() == done
        assert Event.objects.filter(kind="disk_hold").exists()
        out = io.StringIO()
        call_command("batch_status", stdout=out)
        assert "claims nothing new" in out.getvalue() and "DGX_DISK_MIN_FREE_GB" in out.getvalue(), out.getvalue()
        out = io.StringIO()
        call_command("batch_status", str(job.pk), stdout=out)
        assert "claims nothing new" in out.getvalue()

        filler.unlink()  # space is back: the worker looks again by itself
        wait_until(lambda: Job.objects.filter(pk=job.pk, status__in=Job.FINISHED).exists(), timeout=40,
                   message="the job to finish after the space came back")
    finally:
        if filler.exists():
            filler.unlink()
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert sorted(Image.objects.filter(job=job).values_list("sequence", flat=True)) == list(range(1, 25))
    assert WorkerNode.objects.get(name="gpu-test").hold_reason == ""
    assert Event.objects.filter(kind="disk_ok").exists()


def test_the_queue_page_and_a_waiting_job_page_say_why_nothing_starts(owner, client):
    reason = "3.2 GB free at OUTPUT_ROOT, below DGX_DISK_MIN_FREE_GB=5: free space (./dgx batch_cleanup) or lower the limit"
    WorkerNode.objects.create(name="gpu-test", comfyui_url="http://127.0.0.1:8188", hold_reason=reason,
                              disk_free=int(3.2 * GB))
    job = submit(owner, count=4, batch_size=4, wake=False)
    client.force_login(owner)
    queue = client.get("/").content.decode()
    assert "Holding: disk nearly full" in queue and "below DGX_DISK_MIN_FREE_GB=5" in queue
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-hold="gpu-test"' in page and "below DGX_DISK_MIN_FREE_GB=5" in page


def test_metrics_access_is_by_token_or_connection_address_only(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW = TOKEN, ["10.1.0.0/16", "::1"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    settings.METRICS_TOKEN = ""  # no token set: "Bearer " with an empty token must not pass
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert client.post("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 405
    assert client.put("/healthz").status_code == 405
