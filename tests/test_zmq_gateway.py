"""The ZeroMQ gateway with real processes and real sockets: `manage.py zmq_gateway` on the test
database, a REQ client and SUB subscribers each in a process of its own (tests/zmq_clients.py),
and for the end-to-end test a real simulator and qcluster. One gateway serves the whole module."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from batches.cli import UsageError, resolve_user
from batches.models import ApiToken, Job, QueueControl
from batches.services.events import publish
from batches.tasks import wake_workers
from batches.zmq_gateway import handlers, protocol, security
from batches.zmq_gateway.server import split_envelope
from tests.processes import MANAGE, ROOT, free_port, manage_proc, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = str(ROOT / "tests" / "zmq_clients.py")
SMALL = {"profile": "speed", "steps": 4, "width": 64, "height": 64}


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return "sqlite:///" + str(db["NAME"])
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def gateway_env(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        url = database_url()
    return {"DATABASE_URL": url, "OUTPUT_ROOT": str(tmp_path_factory.mktemp("zmq-outputs")),
            "GPU_NODE": "gpu-test", "COMFYUI_URL": f"http://127.0.0.1:{free_port()}"}  # nothing answers


@pytest.fixture(scope="module")
def gateway(gateway_env, tmp_path_factory):
    rep, pub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proc = manage_proc("zmq_gateway", "--rep", rep, "--pub", pub, env=gateway_env,
                       log_path=tmp_path_factory.mktemp("zmq") / "gateway.log").start()
    wait_until(lambda: "zmq_gateway: requests on" in proc.log() or not proc.alive(), timeout=30,
               message="the gateway to start")
    assert proc.alive(), proc.log()
    yield {"rep": rep, "pub": pub, "proc": proc}
    proc.stop()


class ReqClient:
    """A REQ client in its own process: one request spec in, one reply out."""

    def __init__(self, endpoint: str, *options: str):
        self.popen = subprocess.Popen([sys.executable, CLIENTS, "req", endpoint, *options], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, cwd=str(ROOT))

    def send(self, spec: dict) -> dict:
        self.popen.stdin.write(json.dumps(spec) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        assert line, "the client process died"
        return json.loads(line)

    def ask(self, request: dict) -> dict:
        out = self.send({"json": request})
        assert "reply" in out, f"no reply to {request}"
        return out["reply"]

    def close(self):
        self.popen.stdin.close()
        self.popen.wait(timeout=10)


@pytest.fixture(scope="module")
def client(gateway):
    c = ReqClient(gateway["rep"])
    yield c
    c.close()


class Subscriber:
    """A SUB client in its own process, writing each [topic, json] it receives to a file."""

    def __init__(self, endpoint: str, topics: list[str], path: Path):
        self.path = path
        with open(path, "w") as out:
            self.popen = subprocess.Popen([sys.executable, CLIENTS, "sub", endpoint, *topics], stdout=out,
                                          cwd=str(ROOT))

    def messages(self) -> list[dict]:
        lines = self.path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith('{"topic"')]

    def events(self, kind: str, job_id: int | None = None) -> list[dict]:
        return [m for m in self.messages() if m["event"]["kind"] == kind
                and (job_id is None or m["event"]["job"] == job_id)]

    def stop(self):
        self.popen.terminate()
        self.popen.wait(timeout=10)


def token_for(name: str, *, staff: bool = False) -> tuple[object, str]:
    user = get_user_model().objects.create_user(name, password="pw", is_staff=staff)
    return user, ApiToken.issue(user, name="zmq test")[1]


# --- the wire format, in-process ---------------------------------------------------------------


def test_protocol_reads_good_requests_and_names_the_key_of_bad_ones():
    req = protocol.decode([b'{"command": "status", "job_id": 12, "token": "t"}'])
    assert (req.command, req.args, req.token) == ("status", {"job_id": 12}, "t")
    assert protocol.decode([b'{"command": "list"}']).args == {"limit": protocol.LIST_DEFAULT}
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.parse({"command": "list", "limit": 0, "status": "nope", "x": 1})
    assert set(exc.value.errors) == {"limit", "status", "x"} and "more in errors" in exc.value.message
    with pytest.raises(protocol.ProtocolError, match="NaN is not a JSON number"):
        protocol.decode([b'{"command": "submit", "job": {"prompt": "x", "cfg_scale": NaN}}'])
    assert set(protocol.STATUSES) == set(Job.Status.values)
    assert split_envelope([b"id", b"", b"req"]) == ([b"id", b""], [b"req"])
    assert split_envelope([b"id", b"req"]) == ([b"id"], [b"req"])
    assert json.loads(protocol.encode(protocol.error("a\nb", {"k": ["v"]}))) == {
        "ok": False, "error": "a b", "errors": {"k": ["v"]}}


def test_a_failing_service_still_gets_a_reply(monkeypatch):
    def broken(request, user):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(handlers.COMMANDS, "list", broken)
    reply = handlers.handle([b'{"command": "list"}'], handlers.Config())
    assert reply["ok"] is False and "RuntimeError: disk on fire" in reply["error"]


def test_only_loopback_addresses_bind_without_a_key():
    for address in ("tcp://127.0.0.1:5555", "tcp://[::1]:5555", "tcp://localhost:*", "ipc:///tmp/x",
                    "inproc://gw", "tcp://127.0.0.2:1"):
        assert security.is_loopback(address), address
    for address in ("tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://eth0:5555", "tcp://10.0.0.5:5555",
                    "tcp://[::]:5555", "tcp://gpu-box:5555", "udp://127.0.0.1:1"):
        assert not security.is_loopback(address), address
    with pytest.raises(security.SecurityError, match="--require-token"):
        security.check_binding(rep="tcp://*:1", pub="tcp://127.0.0.1:2", curve=None, require_token=False)
    security.check_binding(rep="tcp://*:1", pub="tcp://127.0.0.1:2", curve=None, require_token=True)
    with pytest.raises(security.SecurityError, match="--pub: '127.0.0.1:5556' is not a ZeroMQ address"):
        security.check_binding(rep="tcp://127.0.0.1:1", pub="127.0.0.1:5556", curve=None, require_token=False)
    with pytest.raises(security.SecurityError, match="--curve-secret-key"):
        security.check_binding(rep="tcp://*:1", pub="tcp://*:2", curve=None, require_token=True)


# --- the real gateway --------------------------------------------------------------------------

BAD_MESSAGES = [  # (what is sent, a phrase the error must contain)
    ({"text": "not json at all"}, "not JSON"),
    ({"hex": "fffe007b"}, "not UTF-8"),
    ({"text": ""}, "empty message"),
    ({"text": '{"command": "ping"} trailing'}, "not JSON"),
    ({"text": "[" * 100_000}, "nested too deeply"),
    ({"text": '{"command": "list", "limit": Infinity}'}, "Infinity is not a JSON number"),
    ({"json": [1, 2]}, "expected a JSON object"),
    ({"json": "status"}, "expected a JSON object"),
    ({"json": None}, "expected a JSON object"),
    ({"json": {}}, "command: missing"),
    ({"json": {"command": "explode"}}, "unknown command"),
    ({"json": {"command": 5}}, "unknown command"),
    ({"json": {"command": "status"}}, "job_id: missing"),
    ({"json": {"command": "status", "job_id": "abc"}}, "expected a job id"),
    ({"json": {"command": "status", "job_id": True}}, "expected a job id"),
    ({"json": {"command": "status", "job_id": 1.5}}, "expected a job id"),
    ({"json": {"command": "cancel", "job_id": -3}}, "ids run from 1"),
    ({"json": {"command": "status", "job_id": 2**70}}, "ids run from 1"),
    ({"json": {"command": "cancel", "job_id": 999_999}}, "no job 999999"),
    ({"json": {"command": "status", "job_id": 1, "extra": True}}, "unknown key"),
    ({"json": {"command": "submit"}}, "job: missing"),
    ({"json": {"command": "submit", "job": "pixel art"}}, "expected an object of job fields"),
    ({"json": {"command": "submit", "job": {"prompt": "knight", "count": "many"}}}, "nothing queued: count"),
    ({"json": {"command": "submit", "job": {"prompt": "knight", "bogus": 1}}}, "unknown field"),
    ({"json": {"command": "list", "limit": 1000}}, "from 1 to 200"),
    ({"json": {"command": "list", "status": "sleeping"}}, "expected one of queued"),
    ({"json": {"command": "list", "token": 123}}, "token"),
    ({"json": {"command": "list", "token": "dgx_not_a_token"}}, "unknown or revoked"),
    ({"parts": ['{"command": "ping"}', "second part"]}, "2 parts"),
    ({"size": 4 * 1024 * 1024}, "bytes; the limit is 1,048,576"),
]


def test_every_bad_message_gets_an_error_reply_and_the_gateway_keeps_serving(client):
    assert client.ask({"command": "ping"})["ok"] is True
    for spec, phrase in BAD_MESSAGES:
        out = client.send(spec)
        assert "reply" in out, f"no reply to {str(spec)[:80]}"
        reply = out["reply"]
        assert reply["ok"] is False and phrase in reply["error"], (str(spec)[:80], reply)
        assert "\n" not in reply["error"]
    assert client.ask({"command": "submit", "job": {"prompt": "knight", "count": "many"}})["errors"]["count"]
    assert client.ask({"command": "ping"}) == {"ok": True, "pong": "dgx-pixels zmq_gateway"}
    assert client.ask({"command": "list"}) == {"ok": True, "jobs": []}


def test_tokens_act_as_their_user_and_users_see_only_their_own_jobs(client):
    alice, alice_token = token_for("alice")
    bob, bob_token = token_for("bob")
    _, boss_token = token_for("boss", staff=True)
    QueueControl.set_paused(True, by="test")  # nothing runs: no worker here anyway
    reply = client.ask({"command": "submit", "token": alice_token, "job": {"prompt": "pixel art knight", **SMALL}})
    assert reply["ok"] is True, reply
    job_id = reply["job_id"]
    assert Job.objects.get(pk=job_id).owner == alice

    status = client.ask({"command": "status", "job_id": job_id, "token": alice_token})
    assert status["ok"] and status["job"]["owner"] == "alice" and status["job"]["status"] == "queued"
    assert status["job"]["links"]["self"].endswith(f"/api/v1/jobs/{job_id}/")
    for command in ("status", "cancel"):  # another user's job reads like a missing one
        reply = client.ask({"command": command, "job_id": job_id, "token": bob_token})
        assert reply["ok"] is False and reply["error"].startswith(f"no job {job_id}")
    assert client.ask({"command": "list", "token": bob_token})["jobs"] == []
    assert [j["id"] for j in client.ask({"command": "list", "token": boss_token})["jobs"]] == [job_id]
    assert client.ask({"command": "status", "job_id": job_id, "token": "dgx_wrong"})["ok"] is False

    # Without a token the gateway acts as the CLI's user, who is not alice.
    mine = client.ask({"command": "submit", "job": {"prompt": "pixel art mage", **SMALL}})
    assert Job.objects.get(pk=mine["job_id"]).owner == resolve_user(None)

    comparison = client.ask({"command": "submit", "token": alice_token,
                             "job": {"prompt": "pixel art slime", **SMALL, "compare": {"cfg": [5, 8]}}})
    assert comparison["ok"] and len(comparison["job_ids"]) == 2, comparison

    assert client.ask({"command": "cancel", "job_id": job_id, "token": alice_token}) == {
        "ok": True, "job_id": job_id, "cancelled": True}
    assert client.ask({"command": "cancel", "job_id": job_id, "token": alice_token})["cancelled"] is False
    listed = client.ask({"command": "list", "token": alice_token, "status": "cancelled"})["jobs"]
    assert [j["id"] for j in listed] == [job_id]


def test_end_to_end_submit_watch_status_and_cancel(gateway, client, simulator_factory, qcluster_factory,
                                                   tmp_path):
    _, token = token_for("artist")
    QueueControl.set_paused(True, by="test")
    reply = client.ask({"command": "submit", "token": token,
                        "job": {"prompts": ["pixel art knight"], "count": 4, "batch_size": 4, **SMALL}})
    assert reply["ok"], reply
    job_id = reply["job_id"]
    job_sub = Subscriber(gateway["pub"], [f"job.{job_id}"], tmp_path / "job.jsonl")
    queue_sub = Subscriber(gateway["pub"], ["queue"], tmp_path / "queue.jsonl")
    try:
        _, url = simulator_factory("--step-ms", "25")
        qcluster_factory(url)

        def both_hear_hello():  # PUB-SUB has no handshake: publish until both subscribers hear one
            publish("zmq_hello", job_id=job_id)
            return job_sub.events("zmq_hello") and queue_sub.events("zmq_hello")

        wait_until(both_hear_hello, timeout=15, interval=0.2, message="the subscribers to be connected")
        QueueControl.set_paused(False, by="test")
        wake_workers()
        finished = wait_until(lambda: job_sub.events("job_finished", job_id), timeout=60,
                              message="job_finished on the job's topic")
        event = finished[0]["event"]
        assert set(event) == {"id", "kind", "job", "data", "at"} and event["job"] == job_id
        assert {m["topic"] for m in job_sub.messages()} == {f"job.{job_id}"}
        assert job_sub.events("image_saved", job_id) and job_sub.events("job_started", job_id)
        status = client.ask({"command": "status", "job_id": job_id, "token": token})["job"]
        assert status["status"] == "completed" and status["done"] and status["images_done"] == 4

        readme_client(gateway, token, tmp_path)

        long_id = client.ask({"command": "submit", "token": token, "job": {
            "prompt": "pixel art castle", "count": 40, "batch_size": 1, **SMALL, "steps": 30}})["job_id"]
        wait_until(lambda: queue_sub.events("job_started", long_id), timeout=30, message="the long job to start")
        assert client.ask({"command": "cancel", "job_id": long_id, "token": token}) == {
            "ok": True, "job_id": long_id, "cancelled": True}
        wait_until(lambda: client.ask({"command": "status", "job_id": long_id, "token": token})["job"]["status"]
                   == "cancelled", timeout=30, message="the long job to end cancelled")
        cancelling = wait_until(lambda: queue_sub.events("job_cancelling", long_id), timeout=5,
                                message="job_cancelling on the queue topic")
        assert cancelling[0]["topic"] == "queue"
        assert Job.objects.get(pk=long_id).images_done < 40
    finally:
        job_sub.stop()
        queue_sub.stop()


def readme_client(gateway, token: str, tmp_path: Path) -> None:
    """README's copy-paste client runs as written (our addresses, a token, a small job)."""
    text = (ROOT / "README.md").read_text()
    code = next(block for block in re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
                if "zmq.Context()" in block)
    code = (code.replace('"dgx_..."', repr(token))
            .replace("tcp://127.0.0.1:5555", gateway["rep"]).replace("tcp://127.0.0.1:5556", gateway["pub"])
            .replace('"count": 4}', '"count": 4, "profile": "speed", "steps": 4, "width": 64, "height": 64}'))
    (tmp_path / "readme_client.py").write_text(code)
    done = subprocess.run([sys.executable, str(tmp_path / "readme_client.py")], capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("job_finished {'status': 'completed'"), done.stdout


def test_refuses_to_start_on_an_unguarded_address(gateway_env):
    env = {**os.environ, **gateway_env}
    done = subprocess.run([sys.executable, MANAGE, "zmq_gateway", "--rep", f"tcp://0.0.0.0:{free_port()}",
                           "--pub", f"tcp://127.0.0.1:{free_port()}"], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 64, done
    assert len(done.stderr.strip().splitlines()) == 1 and "--require-token" in done.stderr \
        and "--curve-secret-key" in done.stderr and "0.0.0.0" in done.stderr, done.stderr
    # The same checks in-process (no socket is opened before them): a token guards requests only,
    # and --user must name a user.
    with pytest.raises(UsageError, match="--pub .*--curve-secret-key") as exc:
        call_command("zmq_gateway", "--rep", "tcp://*:1", "--pub", "tcp://*:2", "--require-token")
    assert exc.value.returncode == 64
    with pytest.raises(UsageError, match="--user: there is no user"):
        call_command("zmq_gateway", "--user", "nobody-here", "--rep", "inproc://a", "--pub", "inproc://b")


def test_curve_guards_both_sockets_and_allows_any_address(gateway_env, tmp_path):
    import zmq.auth

    public_file, secret_file = zmq.auth.create_certificates(tmp_path, "server")
    rep, pub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proc = manage_proc("zmq_gateway", "--rep", rep, "--pub", pub, "--curve-secret-key", secret_file,
                       env=gateway_env, log_path=tmp_path / "curve-gateway.log").start()
    try:
        wait_until(lambda: "CURVE on" in proc.log() or not proc.alive(), timeout=30, message="the gateway")
        assert proc.alive(), proc.log()
        with_key, without = ReqClient(rep, "5000", public_file), ReqClient(rep, "1000")
        assert with_key.ask({"command": "ping"})["ok"] is True
        assert without.send({"json": {"command": "ping"}}) == {"timeout": True}  # no key, no answer
        with_key.close()
        without.close()
    finally:
        proc.stop()
    assert proc.popen.returncode == 0


def test_sigterm_stops_the_gateway_cleanly(gateway):
    proc = gateway["proc"]
    start = time.monotonic()
    proc.popen.terminate()
    assert proc.popen.wait(timeout=10) == 0
    assert time.monotonic() - start < 5 and "zmq_gateway: stopped" in proc.log()
