"""A webhook receiver for the tests, run as its own process: `python webhook_receiver.py PORT LOG SECRET PLAN`.

It verifies X-DGX-Signature itself, with the algorithm the README documents (not our code), and
writes one JSON line per request to LOG. PLAN is JSON: {path: ["500", "500", "200", ...]}; each
request to a path takes the next answer ("hang" waits a minute; "302" redirects to /elsewhere);
when a path's list is empty (or the path is not in the plan) the answer is 200. A GET answers 200
(a readiness probe) and is not logged.
"""
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG, SECRET, PLAN = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), json.loads(sys.argv[4])
lock = threading.Lock()


def verified(header: str, body: bytes) -> bool:
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    expected = hmac.new(SECRET, fields.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = fields.get("t", "").isdigit() and abs(time.time() - int(fields["t"])) <= 300
    return fresh and hmac.compare_digest(expected, fields.get("v1", ""))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            answers = PLAN.get(self.path, [])
            answer = answers.pop(0) if answers else "200"
            record = {"at": time.time(), "path": self.path, "answer": answer, "headers": dict(self.headers),
                      "body": body.decode("utf-8", "replace"),
                      "verified": verified(self.headers.get("X-DGX-Signature", ""), body)}
            with open(LOG, "a") as log:
                log.write(json.dumps(record) + "\n")
        if answer == "hang":
            time.sleep(60)
            return
        self.send_response(int(answer))
        if answer.startswith("3"):
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
