"""One definition of images/min and ETA (batches/services/rates.py), asked by every surface."""
from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from batches.models import Job, QueueControl, Unit, WorkerNode
from batches.services import control
from batches.services.rates import RateSnapshot, expected_rate, rate_for
from batches.services.submission import job_submit
from tests.processes import wait_until

pytestmark = pytest.mark.django_db


def submit(owner, *, count: int = 8, batch_size: int = 4, profile: str | None = None, **params) -> Job:
    base = {"count": count, "batch_size": batch_size, "steps": 4, "width": 64, "height": 64, "client": None,
            "wake": False}
    if profile:
        base["profile"] = profile
    return job_submit(owner=owner, prompts=["pixel art slime"], **{**base, **params})


def finish_unit(unit: Unit, *, node: str, seconds: float, ago: float = 5.0) -> None:
    """Mark a unit made on `node` in `seconds` of GPU time, finished `ago` seconds back."""
    end = timezone.now() - timedelta(seconds=ago)
    Unit.objects.filter(pk=unit.pk).update(status=Unit.Status.DONE, node=node, started_at=end - timedelta(seconds=seconds),
                                           finished_at=end)


def running(job: Job) -> Job:
    job.mark_started()
    job.refresh_from_db()
    return job


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_job_runs_at_its_nodes_recent_throughput_for_its_profile_and_batch_size(owner):
    WorkerNode.register(name="gpu-a", comfyui_url="http://127.0.0.1:1")
    job = running(submit(owner, count=16, batch_size=4))
    first, second, third, _ = job.units.order_by("index")
    finish_unit(first, node="gpu-a", seconds=12)
    finish_unit(second, node="gpu-a", seconds=12)
    Unit.objects.filter(pk=third.pk).update(status=Unit.Status.RUNNING, node="gpu-a")
    Job.objects.filter(pk=job.pk).update(images_done=8)
    job.refresh_from_db()

    rate = rate_for(job=job)

    assert rate.images_per_minute == pytest.approx(20.0)  # 8 images in 24 s of GPU time
    assert rate.images_left == 8
    assert rate.eta == timedelta(seconds=24)
    assert rate.based_on == f"2 units of profile {job.profile}, batch 4 on gpu-a in the last 10 min"


def test_a_job_with_no_history_for_its_batch_size_uses_the_nodes_other_units(owner):
    WorkerNode.register(name="gpu-a", comfyui_url="http://127.0.0.1:1")
    other = submit(owner, count=4, batch_size=4)
    finish_unit(other.units.get(), node="gpu-a", seconds=12)
    job = running(submit(owner, count=4, batch_size=1))

    rate = rate_for(job=job)

    assert rate.images_per_minute == pytest.approx(20.0)
    assert "profile" not in rate.based_on and "1 unit on gpu-a" in rate.based_on


def test_nodes_working_side_by_side_add_up_for_the_queue(owner):
    for name in ("gpu-a", "gpu-b"):
        WorkerNode.register(name=name, comfyui_url="http://127.0.0.1:1")
    job = running(submit(owner, count=32, batch_size=4))
    units = list(job.units.order_by("index"))
    finish_unit(units[0], node="gpu-a", seconds=12)  # 20/min
    finish_unit(units[1], node="gpu-b", seconds=24)  # 10/min
    Job.objects.filter(pk=job.pk).update(images_done=8)
    snap = RateSnapshot()

    assert snap.node("gpu-a").images_per_minute == pytest.approx(20.0)
    assert snap.node("gpu-b").images_per_minute == pytest.approx(10.0)
    queue = snap.queue()
    assert queue.images_per_minute == pytest.approx(30.0)
    assert queue.images_left == 24 and queue.eta == timedelta(seconds=48)
    assert "gpu-a, gpu-b" in queue.based_on


def test_a_job_without_recent_units_falls_back_to_its_own_pace_and_says_so(owner):
    job = running(submit(owner, count=8))
    Job.objects.filter(pk=job.pk).update(images_done=2, started_at=timezone.now() - timedelta(seconds=60))
    job.refresh_from_db()

    rate = rate_for(job=job)

    assert rate.images_per_minute == pytest.approx(2.0, rel=0.05)
    assert "this job since it started" in rate.based_on


def test_nothing_to_go_by_gives_no_rate_and_no_eta(owner):
    job = submit(owner, count=8)
    rate = rate_for(job=job)
    assert (rate.images_per_minute, rate.eta) == (0.0, None)
    assert rate.based_on == "no units finished in the last 10 min"


def test_a_finished_job_reports_its_own_average(owner):
    job = submit(owner, count=4, batch_size=4)
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.COMPLETED, images_done=2, started_at=now - timedelta(seconds=30),
                                         finished_at=now)
    job.refresh_from_db()
    rate = rate_for(job=job)
    assert rate.images_per_minute == pytest.approx(4.0) and rate.eta is None


def test_a_paused_queue_has_a_rate_but_no_eta(owner):
    WorkerNode.register(name="gpu-a", comfyui_url="http://127.0.0.1:1")
    job = running(submit(owner, count=8))
    finish_unit(job.units.order_by("index").first(), node="gpu-a", seconds=12)
    control.queue_pause(by="test")
    queue = rate_for(queue=True)
    assert queue.images_per_minute > 0 and queue.eta is None and "paused" in queue.based_on
    QueueControl.objects.all().delete()


def test_the_forms_estimate_uses_recent_throughput_and_otherwise_the_profile(owner):
    assert expected_rate(profile="speed", batch_size=4, fallback=24.0) == (
        24.0, "the profile's expected rate (no units finished lately)")
    WorkerNode.register(name="gpu-a", comfyui_url="http://127.0.0.1:1")
    job = submit(owner, count=4, batch_size=4)
    finish_unit(job.units.get(), node="gpu-a", seconds=6)
    rate, basis = expected_rate(profile=job.profile, batch_size=4, fallback=24.0)
    assert rate == pytest.approx(40.0) and f"profile {job.profile}, batch 4" in basis


def test_the_queue_page_header_rows_and_nodes_show_one_snapshot(owner):
    WorkerNode.register(name="gpu-a", comfyui_url="http://127.0.0.1:1")
    job = running(submit(owner, count=16, batch_size=4))
    first, second, *_ = job.units.order_by("index")
    finish_unit(first, node="gpu-a", seconds=12)
    Unit.objects.filter(pk=second.pk).update(status=Unit.Status.RUNNING, node="gpu-a")
    WorkerNode.objects.filter(name="gpu-a").update(current_unit=second)
    Job.objects.filter(pk=job.pk).update(images_done=4)

    response = signed_in(owner).get("/")
    html = response.content.decode()

    worker = response.context["worker"]
    row = response.context["jobs"][0]
    node = worker["nodes"][0]
    assert worker["rate"] == row.rate.images_per_minute == node.rate.images_per_minute == pytest.approx(20.0)
    assert worker["queue_eta"] == row.rate.eta == node.rate.eta == timedelta(seconds=36)
    assert "based on 1 unit" in html
    assert re.search(rf'id="job-row-{job.pk}"[^>]*data-rate="20.0000"', html)


# --- the same numbers on every surface, for a job a real worker is running ---------------------

def _surfaces(client: Client, job: Job) -> dict:
    page = client.get("/")
    worker, row = page.context["worker"], page.context["jobs"][0]
    node = next(n for n in worker["nodes"] if n.name == "gpu-test")
    job_page = client.get(f"/jobs/{job.pk}/?partial=state").context["job_rate"]
    out = io.StringIO()
    call_command("batch_status", "--json", stdout=out)
    status = json.loads(out.getvalue())
    cli_job = next(j for j in status["jobs"] if j["id"] == job.pk)
    cli_node = next(n for n in status["nodes"] if n["name"] == "gpu-test")
    seconds = lambda eta: round(eta.total_seconds(), 1) if eta else None  # noqa: E731
    return {
        "queue header": (round(worker["rate"], 2), seconds(worker["queue_eta"])),
        "job row": (round(row.rate.images_per_minute, 2), seconds(row.rate.eta)),
        "job page": (round(job_page.images_per_minute, 2), seconds(job_page.eta)),
        "node": (round(node.rate.images_per_minute, 2), seconds(node.rate.eta)),
        "batch_status queue": (status["queue"]["images_per_minute"], status["queue"]["eta_seconds"]),
        "batch_status job": (cli_job["images_per_minute"], cli_job["eta_seconds"]),
        "batch_status node": (cli_node["images_per_minute"], cli_node["eta_seconds"]),
    }


@pytest.mark.django_db(transaction=True)
def test_a_running_job_reports_one_rate_and_eta_on_every_surface(simulator_factory, qcluster_factory, owner):
    _, url = simulator_factory("--step-ms", "150")
    qcluster_factory(url)
    job = job_submit(owner=owner, prompts=["pixel art knight"], count=40, batch_size=4, steps=4, width=64, height=64,
                     client=None)
    wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.DONE).count() >= 2, timeout=60,
               message="two units done")
    client = signed_in(owner)

    def one_snapshot():
        # Read every surface while no unit finishes in between (a unit takes ~0.6 s here).
        before = Unit.objects.filter(status=Unit.Status.DONE).count()
        seen = _surfaces(client, job)
        if Unit.objects.filter(status=Unit.Status.DONE).count() != before:
            return None
        return seen

    seen = wait_until(one_snapshot, timeout=30, interval=0.05, message="a quiet snapshot")
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING
    values = set(seen.values())
    assert len(values) == 1, seen
    rate, eta = values.pop()
    assert rate > 0 and eta and eta > 0
    control.job_cancel(job, by="test")
