"""The GPU worker's life: a clean stop on any SIGTERM, one worker per node, prompt reconciliation.

Real qclusters, real simulators and real signals: systemd's default stop (SIGTERM to the whole
process group), a supervisor's SIGTERM to the leader, kill -9, and ComfyUI restarting under a
unit sent ahead. Every test counts rows and files, not just statuses.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone

from batches.models import Job, Unit, WorkerNode
from batches.services.submission import job_submit
from batches.services.worker import process_client_id
from tests.processes import ROOT, wait_until
from tests.test_resilience import assert_every_image_once, sim_stats, wait_finished

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


def submit(owner, **params):
    defaults = {"prompts": ["pixel art warrior"], "profile": "speed", "steps": 8, "client": None,
                "width": 64, "height": 64, "batch_size": 1}
    return job_submit(owner=owner, **{**defaults, **params})


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_exit(proc, timeout: float) -> float:
    """Seconds until `proc` exited; fails the test if it is still alive after `timeout`."""
    start = time.monotonic()
    try:
        proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the qcluster was still running {timeout}s after SIGTERM:\n{proc.log()[-3000:]}")
    return time.monotonic() - start


def in_flight_with_one_ahead(job):
    return lambda: Unit.objects.filter(job=job, status=Unit.Status.RUNNING).exists() and \
        Unit.objects.filter(job=job, status__in=Unit.IN_FLIGHT).count() == 2


def test_sigterm_lets_the_running_unit_finish_takes_back_the_one_ahead_and_claims_nothing_new(
        simulator_factory, qcluster_factory, owner, output_root):
    # SIGTERM to the whole group, as systemd sends it (the hard case: it used to hang the leader).
    # SIGTERM to the leader alone is what the launcher sends: tests/test_launcher.py stops it so.
    _, url = simulator_factory("--step-ms", "150")
    worker = qcluster_factory(url, DGX_STOP_GRACE="20")
    job = submit(owner, count=6)
    wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.DONE).exists(), timeout=30,
               message="a unit done")
    wait_until(in_flight_with_one_ahead(job), timeout=10, message="one unit running and one sent ahead")
    signalled_at = timezone.now()
    os.killpg(worker.pid, signal.SIGTERM)  # systemd's default: every process of the unit
    took = wait_exit(worker, timeout=15)
    assert took < 15
    wait_until(lambda: group_gone(worker.pid), timeout=5, message="every process of the cluster gone")
    assert not Unit.objects.filter(job=job, claimed_at__gt=signalled_at + timedelta(seconds=0.5)).exists()
    assert not Unit.objects.filter(job=job, status__in=Unit.IN_FLIGHT).exists()  # finished or handed back
    assert Unit.objects.filter(job=job, status=Unit.Status.PENDING).count() >= 1  # the one ahead came back
    node = WorkerNode.objects.get(name="gpu-test")
    assert node.worker_id == "" and node.worker_pid is None  # the node is free for the next worker
    assert "SIGTERM received; claiming nothing new" in worker.log()

    qcluster_factory(url, name="qcluster-again")
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
    assert sim_stats(url)["executed"] == job.units.count()  # nothing ran twice on the GPU


def test_a_unit_outlasting_the_stop_grace_is_handed_back_and_collected_not_rerun(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "300")
    worker = qcluster_factory(url, DGX_STOP_GRACE="1")
    job = submit(owner, count=2)
    wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.RUNNING).exists(), timeout=30,
               message="a unit running")
    os.killpg(worker.pid, signal.SIGTERM)
    assert wait_exit(worker, timeout=15) < 15
    running = Unit.objects.get(job=job, status__in=Unit.IN_FLIGHT)  # still on the GPU, handed back
    assert running.heartbeat_at < timezone.now() - timedelta(seconds=30)
    qcluster_factory(url, name="qcluster-again")
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
    assert sim_stats(url)["executed"] == 2  # the handed-back unit was adopted from ComfyUI, not rerun


def test_a_second_worker_for_a_live_node_refuses_naming_it_and_a_dead_ones_node_is_taken_at_once(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "10")
    first = qcluster_factory(url)
    wait_until(lambda: WorkerNode.objects.filter(name="gpu-test", worker_pid=first.pid).exists(), timeout=20,
               message="the first worker to hold the node")
    second = qcluster_factory(url, name="qcluster-second")
    second.popen.wait(timeout=30)
    assert second.popen.returncode == 3
    assert f"GPU node 'gpu-test' already has a live worker: pid {first.pid}" in second.log()

    first.kill()  # kill -9: no clean release; its pid is gone, so the node is free at once
    third = qcluster_factory(url, name="qcluster-third")
    wait_until(lambda: WorkerNode.objects.filter(name="gpu-test", worker_pid=third.pid).exists(), timeout=20,
               message="the third worker to take the node over")
    job = wait_finished(submit(owner, count=4, batch_size=4, steps=4))
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)


def test_an_idle_node_reclaims_a_dead_nodes_units_within_the_stale_limit(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url_a = simulator_factory("--step-ms", "250")
    _, url_b = simulator_factory("--step-ms", "10")
    node_a = qcluster_factory(url_a, name="qcluster-a", GPU_NODE="gpu-a", DGX_NODE_STALE_SECONDS="2")
    job = submit(owner, count=2)
    wait_until(in_flight_with_one_ahead(job), timeout=30, message="both units in flight on gpu-a")
    qcluster_factory(url_b, name="qcluster-b", GPU_NODE="gpu-b", DGX_NODE_STALE_SECONDS="2")
    wait_until(lambda: WorkerNode.objects.filter(name="gpu-b").exclude(worker_id="").exists(), timeout=20,
               message="gpu-b up")
    time.sleep(1.0)  # gpu-b's start-up drain found nothing to do: it is idle now
    node_a.kill()
    killed = time.monotonic()
    job = wait_finished(job, timeout=60)
    assert time.monotonic() - killed < 20  # stale after 2 s; not left for the minute tick
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)


def test_comfyui_restarting_resubmits_every_unit_in_flight_in_their_order(
        simulator_factory, qcluster_factory, owner, output_root):
    sim, url = simulator_factory("--step-ms", "150")
    qcluster_factory(url)
    job = submit(owner, count=5, steps=6)
    wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.DONE).exists(), timeout=30,
               message="a unit done")
    wait_until(in_flight_with_one_ahead(job), timeout=10, message="one unit running and one sent ahead")
    sim.kill()
    wait_until(lambda: WorkerNode.objects.filter(comfyui_ok=False).exists(), timeout=20,
               message="the worker to notice ComfyUI is gone")
    simulator_factory("--step-ms", "150", port=sim.extra["port"])
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
    ran = execution_order(url)  # the restarted ComfyUI's own record of what it ran, and when
    indexes = [index for prompt_id, index in job.units.values_list("comfy_prompt_id", "index")
               if str(prompt_id) in ran]
    by_start = sorted(indexes, key=lambda index: ran[str(job.units.get(index=index).comfy_prompt_id)])
    assert len(by_start) >= 3 and by_start == sorted(by_start)  # the unit sent ahead did not fall behind


def execution_order(url: str) -> dict[str, int]:
    """prompt id -> when ComfyUI started executing it (ms), from /history."""
    history = requests.get(url + "/history", timeout=5).json()
    started = {}
    for prompt_id, entry in history.items():
        for kind, data in entry["status"]["messages"]:
            if kind == "execution_start":
                started[prompt_id] = data["timestamp"]
    return started


def test_the_comfyui_client_id_is_unique_per_worker_process_but_names_the_node():
    here = process_client_id("gpu-test")
    assert here == process_client_id("gpu-test") and here.startswith("dgxpixels-gpu-test-")
    code = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'dgxpixels.settings'); "
            "django.setup(); from batches.services.worker import process_client_id; "
            "print(process_client_id('gpu-test'))")
    there = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert there.stdout.strip().startswith("dgxpixels-gpu-test-") and there.stdout.strip() != here
