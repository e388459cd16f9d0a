"""Progress events cross processes: published elsewhere, received by a consumer in daphne."""
from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from batches.models import Job
from batches.services.events import publish
from batches.services.submission import job_submit


pytestmark = pytest.mark.django_db(transaction=True)


def ws_connect(base_url: str, path: str, cookie: str | None):
    headers = {"Origin": base_url}
    if cookie:
        headers["Cookie"] = cookie
    return connect(base_url.replace("http", "ws") + path, additional_headers=headers, open_timeout=10)


def receive_until(ws, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            data = json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic())))
        except TimeoutError:
            break
        for message in data if isinstance(data, list) else [data]:  # a frame may carry a burst
            seen.append(message)
            if predicate(message):
                return message, seen
    raise AssertionError(f"no matching event; saw {[m.get('kind') for m in seen]}")


def test_an_event_published_in_another_process_reaches_a_daphne_consumer(daphne_server, session_cookie):
    _, cookie = session_cookie()
    with ws_connect(daphne_server, "/ws/queue/", cookie) as ws:
        time.sleep(0.3)  # the relay starts with the first consumer
        event = publish("queue_paused", by="test")
        message, _ = receive_until(ws, lambda m: m.get("id") == event.pk)
    assert message["kind"] == "queue_paused" and message["data"] == {"by": "test"}


def test_a_reconnecting_page_catches_up_from_the_last_event_it_saw(daphne_server, session_cookie):
    _, cookie = session_cookie()
    first = publish("queue_paused", by="a")
    missed = [publish("queue_resumed", by="b"), publish("queue_paused", by="c")]
    with ws_connect(daphne_server, "/ws/queue/", cookie) as ws:
        ws.send(json.dumps({"since": first.pk}))
        receive_until(ws, lambda m: m.get("id") == missed[-1].pk)


def test_the_socket_refuses_anonymous_users_and_foreign_origins(daphne_server, session_cookie):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as anonymous:
        ws_connect(daphne_server, "/ws/queue/", None)
    assert anonymous.value.response.status_code == 403
    _, cookie = session_cookie()
    with pytest.raises(InvalidStatus) as refused:
        connect(daphne_server.replace("http", "ws") + "/ws/queue/",
                additional_headers={"Origin": "http://evil.example", "Cookie": cookie}, open_timeout=10)
    assert refused.value.response.status_code == 403


def test_the_worker_process_progress_reaches_the_job_socket(daphne_server, session_cookie, simulator_factory,
                                                            qcluster_factory):
    user, cookie = session_cookie()
    _, url = simulator_factory("--step-ms", "30")
    qcluster_factory(url)
    job = job_submit(owner=user, prompts=["pixel art gem"], count=4, batch_size=4, steps=5, width=64,
                     height=64, client=None)
    with ws_connect(daphne_server, f"/ws/jobs/{job.pk}/", cookie) as ws:
        ws.send(json.dumps({"since": 0}))
        _, seen = receive_until(ws, lambda m: m["kind"] == "job_finished", timeout=60)
    kinds = [m["kind"] for m in seen]
    assert "unit_started" in kinds and "progress" in kinds
    assert kinds.count("image_saved") == 4
    assert all(m["job"] == job.pk for m in seen)
    assert Job.objects.get(pk=job.pk).status == Job.Status.COMPLETED
