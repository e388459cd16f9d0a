"""Scale-out on PostgreSQL + Redis: several GPU nodes share one queue; each unit runs once.

Run by ./scripts/test.sh in its second pass, with DATABASE_URL=postgres://... and REDIS_URL set.
Without them these tests skip with the reason; with REQUIRE_SERVICES=1 (CI) they fail instead.
"""
from __future__ import annotations

import json
import os
import time

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from websockets.sync.client import connect

from batches.models import Event, Image, Job, Unit, WorkerNode
from batches.services.events import publish
from batches.services.submission import job_submit
from tests.processes import start_daphne, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _services():
    missing = []
    if connection.vendor != "postgresql":
        missing.append("DATABASE_URL=postgres://postgres@127.0.0.1:5432/dgxpixels")
    if not settings.REDIS_URL:
        missing.append("REDIS_URL=redis://127.0.0.1:6379/15")
    if missing:
        reason = "scale-out tests need PostgreSQL and Redis: set " + " and ".join(missing)
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no nudges left over from another run


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


def start_nodes(simulator_factory, qcluster_factory, names, *, step_ms="40"):
    nodes = {}
    for name in names:
        sim, url = simulator_factory("--step-ms", step_ms)
        worker = qcluster_factory(url, name=f"qcluster-{name}", GPU_NODE=name, DGX_NODE_STALE_SECONDS="3")
        nodes[name] = (sim, url, worker)
    wait_until(lambda: WorkerNode.objects.filter(name__in=names).count() == len(names), timeout=30,
               message="every node to register")
    return nodes


def submit_60_units(owner):
    return job_submit(owner=owner, prompts=[f"pixel art item {i}" for i in range(15)], count=4, batch_size=1,
                      steps=4, width=64, height=64, client=None)


def assert_every_image_once(job, output_root):
    images = list(Image.objects.filter(job=job).order_by("sequence"))
    assert [i.sequence for i in images] == list(range(1, 61))
    files = list((output_root / "batches" / job.output_dir / "images").glob("*.png"))
    assert len(files) == 60 and len({f.name for f in files}) == 60
    return images


def test_three_nodes_share_one_job_and_run_each_unit_exactly_once(simulator_factory, qcluster_factory, owner,
                                                                 output_root):
    nodes = start_nodes(simulator_factory, qcluster_factory, ["node-a", "node-b", "node-c"])
    job = submit_60_units(owner)
    assert job.units.count() == 60
    wait_until(lambda: Job.objects.get(pk=job.pk).status in Job.FINISHED, timeout=120, message="the job")
    assert Job.objects.get(pk=job.pk).status == Job.Status.COMPLETED
    images = assert_every_image_once(job, output_root)
    executed = {name: requests.get(url + "/sim/stats", timeout=5).json()["executed"]
                for name, (_, url, _) in nodes.items()}
    assert sum(executed.values()) == 60, executed  # no unit ran twice, anywhere
    assert all(count > 0 for count in executed.values()), executed
    by_node = {name: Image.objects.filter(job=job, node=name).count() for name in nodes}
    assert by_node == executed  # each image names the node that made it
    for image in images:
        assert image.metadata["node"] == image.node
        assert image.metadata["comfyui_url"] == nodes[image.node][1]


def test_when_a_node_dies_mid_run_the_others_finish_its_units(simulator_factory, qcluster_factory, owner,
                                                            output_root):
    nodes = start_nodes(simulator_factory, qcluster_factory, ["node-a", "node-b", "node-c"], step_ms="60")
    job = submit_60_units(owner)
    wait_until(lambda: Unit.objects.filter(job=job, node="node-c", status__in=Unit.IN_FLIGHT).exists()
               and Image.objects.filter(job=job).count() >= 10, timeout=60, message="node-c busy mid-run")
    sim_c, _, worker_c = nodes["node-c"]
    worker_c.kill()
    sim_c.kill()
    wait_until(lambda: Job.objects.get(pk=job.pk).status in Job.FINISHED, timeout=120, message="the job")
    assert Job.objects.get(pk=job.pk).status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
    assert not Unit.objects.filter(job=job).exclude(status=Unit.Status.DONE).exists()
    # node-c's unit in flight was taken over by a live node after its heartbeat went stale.
    reclaimed = Event.objects.filter(kind="unit_reclaimed", data__from_node="node-c")
    assert reclaimed.exists()
    assert {e.data["by"] for e in reclaimed} <= {"node-a", "node-b"}


def test_progress_published_on_a_node_reaches_a_socket_through_redis(tmp_path, worker_env, session_cookie):
    proc, base_url = start_daphne(tmp_path, worker_env)
    try:
        _, cookie = session_cookie()
        ws = connect(base_url.replace("http", "ws") + "/ws/queue/", open_timeout=10,
                     additional_headers={"Origin": base_url, "Cookie": cookie})
        with ws:
            time.sleep(0.3)
            event = publish("comfyui_back", node="node-x", url="http://127.0.0.1:1")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                if message["id"] == event.pk:
                    break
            assert message["id"] == event.pk and message["data"]["node"] == "node-x"
    finally:
        proc.stop()
