"""Real ZeroMQ clients for tests/test_zmq_gateway.py, run as their own processes (no Django here).

    python tests/zmq_clients.py req tcp://127.0.0.1:5555      # one request spec per stdin line,
                                                              # one reply per stdout line
    python tests/zmq_clients.py sub tcp://127.0.0.1:5556 job.12 queue   # one line per message

A request spec is a JSON object: {"json": <any value, sent as JSON>}, {"text": "..."} (sent as
UTF-8), {"hex": "..."} (raw bytes), {"parts": ["...", "..."]} (a multi-part message) or
{"size": N} (a ping padded to N bytes). The reply line is {"reply": <the reply object>}, or
{"timeout": true} when none came within the timeout (the REQ socket is then replaced, as a
real client must do).
"""
from __future__ import annotations

import json
import signal
import sys

import zmq
import zmq.auth


def request_frames(spec: dict) -> list[bytes]:
    if "json" in spec:
        return [json.dumps(spec["json"]).encode()]
    if "text" in spec:
        return [spec["text"].encode()]
    if "hex" in spec:
        return [bytes.fromhex(spec["hex"])]
    if "parts" in spec:
        return [p.encode() for p in spec["parts"]]
    head = b'{"command": "ping", "pad": "'
    return [head + b"x" * (spec["size"] - len(head) - 2) + b'"}']


def req(endpoint: str, timeout_ms: int = 10_000, server_key: str | None = None) -> None:
    context = zmq.Context()

    def connect():
        sock = context.socket(zmq.REQ)
        sock.linger = 0
        sock.rcvtimeo = timeout_ms
        if server_key:
            sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
            sock.curve_serverkey = zmq.auth.load_certificate(server_key)[0]
        sock.connect(endpoint)
        return sock

    sock = connect()
    for line in sys.stdin:
        if not line.strip():
            continue
        sock.send_multipart(request_frames(json.loads(line)))
        try:
            out = {"reply": json.loads(sock.recv())}
        except zmq.Again:
            out = {"timeout": True}
            sock.close(linger=0)
            sock = connect()
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def sub(endpoint: str, topics: list[str]) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = zmq.Context().socket(zmq.SUB)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    sock.connect(endpoint)
    sys.stdout.write(json.dumps({"subscribed": topics}) + "\n")
    sys.stdout.flush()
    while True:
        topic, payload = sock.recv_multipart()
        sys.stdout.write(json.dumps({"topic": topic.decode(), "event": json.loads(payload)}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    mode, address, *rest = sys.argv[1:]
    if mode == "req":  # req ENDPOINT [TIMEOUT_MS [SERVER_PUBLIC_KEY_FILE]] (CURVE when a key file is given)
        req(address, timeout_ms=int(rest[0]) if rest else 10_000, server_key=rest[1] if len(rest) > 1 else None)
    else:
        sub(address, rest)
