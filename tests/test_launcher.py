"""`./scripts/run.sh`'s launcher: it stops every child on SIGTERM, and names and restarts one that dies.

The real launcher runs as a subprocess and starts the real simulator, qcluster and daphne.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone

from batches.gpu_cluster import descendants
from batches.models import Job, Unit
from tests.processes import ROOT, free_port, wait_for_http, wait_until
from tests.test_resilience import assert_every_image_once, wait_finished
from tests.test_worker_lifecycle import group_gone, submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


@pytest.fixture
def launcher(tmp_path, worker_env, settings):
    """Start scripts/launcher.py on free ports (it starts its own simulator); yields (popen, url, log)."""
    started = []

    def start(**env):
        port, sim_port = free_port(), free_port()
        settings.COMFYUI_URL = f"http://127.0.0.1:{sim_port}"
        log = tmp_path / f"launcher-{port}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "scripts/launcher.py"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **worker_env, "PORT": str(port),
                     "COMFYUI_URL": settings.COMFYUI_URL, **env},
                start_new_session=True)
        started.append(popen)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/accounts/login/", timeout=30, proc=popen)
        return popen, url, log

    yield start
    for popen in started:
        for pid in descendants(popen.pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        popen.wait()


def child_pid(log, name: str) -> int:
    return int(re.findall(rf"started {re.escape(name)} \(pid (\d+)\)", log.read_text())[-1])


def test_sigterm_to_the_launcher_stops_every_child_in_order_and_the_worker_claims_nothing_new(
        launcher, owner, output_root):
    popen, url, log = launcher(SIM_STEP_MS="150", DGX_STOP_GRACE="20")
    job = submit(owner, count=10)
    wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.DONE).exists(), timeout=30,
               message="a unit done")
    wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.RUNNING).exists(), timeout=10,
               message="a unit running")
    children = descendants(popen.pid)
    assert len(children) >= 5  # simulator, daphne, qcluster leader, sentinel, worker, ...
    signalled_at = timezone.now()
    popen.send_signal(signal.SIGTERM)
    popen.wait(timeout=40)
    assert popen.returncode == 0
    wait_until(lambda: all(group_gone(pid) for pid in children), timeout=5, message="every child gone")
    assert not Unit.objects.filter(job=job, claimed_at__gt=signalled_at + timedelta(seconds=0.5)).exists()
    assert not Unit.objects.filter(job=job, status__in=Unit.IN_FLIGHT).exists()
    text = log.read_text()
    assert "SIGTERM: stopping the web server and the GPU worker" in text
    assert "every process has stopped." in text
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/accounts/login/", timeout=2)


def test_a_component_that_dies_is_named_and_restarted_while_the_dashboard_keeps_serving(
        launcher, owner, output_root):
    popen, url, log = launcher(SIM_STEP_MS="10")
    worker = child_pid(log, "the GPU worker (manage.py qcluster)")
    os.killpg(worker, signal.SIGKILL)  # the worker crashes (OOM killer, say)
    wait_until(lambda: f"the GPU worker (manage.py qcluster) (pid {worker}) was killed by SIGKILL" in log.read_text(),
               timeout=10, message="the launcher to name the dead worker")
    assert requests.get(url + "/accounts/login/", timeout=5).status_code == 200  # the dashboard stays up
    wait_until(lambda: child_pid(log, "the GPU worker (manage.py qcluster)") != worker, timeout=15,
               message="the worker restarted")
    job = wait_finished(submit(owner, count=4, batch_size=4, steps=4))
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)

    web = child_pid(log, "the web server (daphne)")
    os.kill(web, signal.SIGKILL)
    wait_until(lambda: f"the web server (daphne) (pid {web}) was killed by SIGKILL" in log.read_text(),
               timeout=10, message="the launcher to name the dead web server")
    wait_for_http(url + "/accounts/login/", timeout=30)
    assert popen.poll() is None


def test_a_worker_refused_for_a_busy_node_is_not_restarted_and_says_why(launcher, output_root):
    _, _, first_log = launcher(SIM_STEP_MS="10")
    wait_until(lambda: "GPU worker for node gpu-test" in first_log.read_text(), timeout=30,
               message="the first launcher's worker to hold the node")
    # A second launcher on the same node: its worker is refused, its dashboard still serves.
    _, url, log = launcher(SIM_STEP_MS="10")
    wait_until(lambda: "another GPU worker already serves this node" in log.read_text(), timeout=30,
               message="the second launcher to report the refused worker")
    assert "GPU node 'gpu-test' already has a live worker" in log.read_text()
    time.sleep(2.5)
    assert log.read_text().count("started the GPU worker") == 1  # not restarted in a loop
    assert requests.get(url + "/accounts/login/", timeout=5).status_code == 200
