"""The sockets refuse what they cannot use with a 4000-range close code and one log line, never a
traceback, and a socket cannot ask for replays faster than a page ever would.

Close codes: 4400 a frame that is not {"since": <event id>}, 4404 no such socket or job, 4429 too
many replay requests. Driven through the project's router with Channels' WebsocketCommunicator.
"""
from __future__ import annotations

import json
import logging

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from batches import consumers
from batches.routing import websocket_urlpatterns
from batches.services.events import publish

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)


@pytest.fixture
def user(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


async def opened(path: str, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def closed_with(communicator: WebsocketCommunicator) -> int:
    """The close code the server sent, skipping replies that came before it."""
    for _ in range(50):
        message = await communicator.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return message.get("code")
    raise AssertionError("the socket was not closed")


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or "Exception inside application" in r.getMessage()]


@pytest.mark.parametrize("path", ["/ws/jobs/-1/", "/ws/nothing/", "/ws/jobs/abc/", "/", "/ws/queue/extra/"])
async def test_a_path_no_socket_serves_is_closed_with_4404(user, path, caplog):
    communicator = await opened(path, user)
    assert await closed_with(communicator) == 4404
    assert not tracebacks(caplog)


@pytest.mark.parametrize("job_id", ["99999999999999999999", "0", "424242"])
async def test_a_job_socket_for_a_job_that_cannot_exist_is_closed_with_4404(user, job_id, caplog):
    communicator = await opened(f"/ws/jobs/{job_id}/", user)
    assert await closed_with(communicator) == 4404
    assert not tracebacks(caplog)


async def test_anonymous_users_are_still_refused_at_the_handshake():
    communicator = WebsocketCommunicator(application, "/ws/queue/")
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect()
    assert not connected


BAD_FRAMES = [  # (the ASGI frame, words of the log line)
    ({"text": "not json"}, "not JSON"),
    ({"text": ""}, "empty"),
    ({"bytes": b"\x00\x01binary"}, "binary"),
    ({"text": "[" * 100_000 + "]" * 100_000}, "characters"),
    ({"text": "[" * 500 + "]" * 500}, "since"),
    ({"text": json.dumps({"since": "12"})}, "since"),
    ({"text": json.dumps({"since": -1})}, "since"),
    ({"text": json.dumps({"since": 2**64})}, "since"),
    ({"text": json.dumps([1, 2])}, "since"),
    ({"text": json.dumps({"since": 1, "x": "y" * 5000})}, "characters"),
]


@pytest.mark.parametrize("frame, words", BAD_FRAMES, ids=["not-json", "empty", "binary", "deep-and-huge", "nested",
                                                          "since-text", "since-negative", "since-huge", "array",
                                                          "oversized"])
async def test_a_frame_that_is_not_a_replay_request_closes_with_4400_and_one_log_line(user, frame, words, caplog):
    caplog.set_level(logging.INFO)
    communicator = await opened("/ws/queue/", user)
    await communicator.send_input({"type": "websocket.receive", **frame})
    assert await closed_with(communicator) == 4400
    assert not tracebacks(caplog)
    refusals = [r for r in caplog.records if r.name == "batches.consumers"]
    assert len(refusals) == 1 and words in refusals[0].getMessage()


async def test_frames_after_a_refusal_are_not_logged_again(user, caplog):
    communicator = await opened("/ws/queue/", user)
    await communicator.send_to(text_data="nope")
    await communicator.send_to(text_data="nope again")
    assert await closed_with(communicator) == 4400
    assert await communicator.receive_nothing(timeout=0.2)
    assert len([r for r in caplog.records if r.name == "batches.consumers"]) == 1


async def test_a_replay_request_is_answered_with_the_missed_events(user):
    events = [await publish_async("queue_paused", by="a"), await publish_async("queue_resumed", by="b")]
    communicator = await opened("/ws/queue/", user)
    await communicator.send_json_to({"since": events[0].pk})
    reply = await communicator.receive_json_from(timeout=5)
    replayed = reply if isinstance(reply, list) else [reply]
    assert [m["id"] for m in replayed] == [events[1].pk]
    await communicator.disconnect()


async def test_a_socket_asking_for_replays_too_fast_is_closed_with_4429(user, caplog):
    await publish_async("queue_paused", by="a")
    communicator = await opened("/ws/queue/", user)
    for _ in range(consumers.REPLAY_BURST + 20):
        await communicator.send_json_to({"since": 0})
    replies = 0
    while True:
        message = await communicator.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            break
        replies += 1
    assert message["code"] == 4429
    assert replies == consumers.REPLAY_BURST
    assert len([r for r in caplog.records if r.name == "batches.consumers"]) == 1


def test_the_replay_budget_refills_with_time():
    now = [100.0]
    bucket = consumers.TokenBucket(capacity=2, refill_seconds=5.0, clock=lambda: now[0])
    assert bucket.take() and bucket.take() and not bucket.take()
    now[0] += 5.0
    assert bucket.take() and not bucket.take()
    now[0] += 1000.0
    assert bucket.take() and bucket.take() and not bucket.take()  # never more than the capacity


async def publish_async(kind: str, **data):
    from channels.db import database_sync_to_async

    return await database_sync_to_async(publish)(kind, **data)



def test_a_real_daphne_answers_an_unknown_path_and_a_bad_frame_with_close_codes(daphne_server, session_cookie):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    _, cookie = session_cookie()
    headers = {"Origin": daphne_server, "Cookie": cookie}
    base = daphne_server.replace("http", "ws")
    for path, frame, code in (("/ws/jobs/-1/", None, 4404), ("/ws/queue/", "not json", 4400)):
        with connect(base + path, additional_headers=headers, open_timeout=10) as ws:
            if frame is not None:
                ws.send(frame)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == code
