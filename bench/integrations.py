"""Figure 13, integrations: a 1000-prompt x 8-image job through the HTTP API and through ZeroMQ,
and the ZeroMQ status round trip.

Each door is timed from the request leaving this process to its answer (the job queued and
committed):

* service: `job_submit(...)` in this process (the baseline: what every door ends in);
* HTTP API: `POST /api/v1/jobs/` to a real daphne, with a Bearer token;
* ZeroMQ: a REQ socket to a real `manage.py zmq_gateway`, `{"command": "submit", ...}`.

Then `{"command": "status", "job_id": N}` round trips on the same REQ socket: p50 / p95 / max.
A simulator answers at COMFYUI_URL, as in production, so every door checks the checkpoint name.

Target (issue 16): < 1 s to accepted for each door.
"""
from __future__ import annotations

import json
import time

import requests

from bench.common import (
    CHECKPOINT_A,
    Table,
    Timer,
    Workspace,
    free_port,
    header,
    make_user,
    median,
    percentile,
    verdict,
)

TARGET_S = 1.0


def add_arguments(parser) -> None:
    parser.add_argument("--prompts", type=int, default=1000, help="prompts in the big job (1000)")
    parser.add_argument("--count", type=int, default=8, help="images per prompt (8)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the big job (8)")
    parser.add_argument("--repeat", type=int, default=3, help="submissions per door; the median is shown (3)")
    parser.add_argument("--status-calls", type=int, default=500, help="ZeroMQ status round trips timed (500)")


def main(args) -> list[tuple[str, bool | None]]:
    header("Figure 13: integrations, time to accepted and status round trip", {
        "job": f"{args.prompts} prompts x {args.count} images at batch {args.batch_size}",
        "repeat": args.repeat, "status calls": args.status_calls,
    })
    ws = Workspace("integrations", keep=args.keep)
    try:
        _, comfyui_url = ws.simulator(step_ms=1)
        ws.activate(COMFYUI_URL=comfyui_url)
        import zmq

        from batches.models import ApiToken, Job, Unit
        from batches.services.submission import job_submit

        user = make_user()
        _, token = ApiToken.issue(user, name="bench")
        _, base_url = ws.daphne(COMFYUI_URL=comfyui_url)
        rep = f"tcp://127.0.0.1:{free_port()}"
        pub = f"tcp://127.0.0.1:{free_port()}"
        gateway = ws.manage_background("zmq_gateway", "--rep", rep, "--pub", pub, "--user", user.username,
                                       name="zmq_gateway", COMFYUI_URL=comfyui_url)

        context = zmq.Context.instance()
        req = context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.setsockopt(zmq.RCVTIMEO, 60_000)
        req.connect(rep)

        def ask(message: dict) -> dict:
            req.send_string(json.dumps(message))
            return json.loads(req.recv_string())

        deadline = time.monotonic() + 30
        while True:  # the gateway is up once it answers a ping
            try:
                if ask({"command": "ping"}).get("ok"):
                    break
            except zmq.Again:
                req.close()
                req = context.socket(zmq.REQ)
                req.setsockopt(zmq.LINGER, 0)
                req.setsockopt(zmq.RCVTIMEO, 2_000)
                req.connect(rep)
            if time.monotonic() > deadline or gateway.popen.poll() is not None:
                raise RuntimeError(f"the gateway did not answer: {ws.log_tail(gateway)}")
            time.sleep(0.2)
        req.setsockopt(zmq.RCVTIMEO, 60_000)

        sizes = {
            "baseline": (["pixel art baseline sprite"], 1, 1),
            "big": ([f"pixel art sprite number {i}, 16-bit, side view" for i in range(args.prompts)], args.count,
                    args.batch_size),
        }
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"

        def expect_units(job_id: int, key: str) -> None:
            prompts, count, batch = sizes[key]
            want = len(prompts) * -(-count // batch)
            got = Unit.objects.filter(job_id=job_id).count()
            if got != want:
                raise RuntimeError(f"job {job_id} has {got} units, expected {want}")

        def request(key: str) -> dict:
            prompts, count, batch = sizes[key]
            return {"prompts": prompts, "count": count, "batch_size": batch, "model": CHECKPOINT_A,
                    "priority": "low"}

        def via_service(key: str) -> float:
            prompts, count, batch = sizes[key]
            with Timer() as t:
                job = job_submit(owner=user, prompts=prompts, count=count, batch_size=batch,
                                 checkpoint=CHECKPOINT_A, priority="low")
            expect_units(job.pk, key)
            return t.wall

        def via_http(key: str) -> float:
            body = request(key)
            with Timer() as t:
                response = session.post(base_url + "/api/v1/jobs/", json=body, timeout=60)
            if response.status_code != 201:
                raise RuntimeError(f"POST /api/v1/jobs/ answered {response.status_code}: {response.text[:2000]}")
            expect_units(response.json()["id"], key)
            return t.wall

        def via_zmq(key: str) -> float:
            message = {"command": "submit", "job": request(key)}
            with Timer() as t:
                reply = ask(message)
            if not reply.get("ok"):
                raise RuntimeError(f"the gateway refused the job: {reply}")
            expect_units(reply["job_id"], key)
            return t.wall

        table = Table("Time to accepted (median seconds)",
                      ["door", "units", "1 x 1 baseline s", f"{args.prompts} x {args.count} s", "ratio to service",
                       "target", "verdict"])
        results = []
        service_big = None
        for label, run in (("service: job_submit()", via_service), ("HTTP API: POST /api/v1/jobs/", via_http),
                           ("ZeroMQ: submit", via_zmq)):
            run("baseline")  # warm: imports, templates, the ComfyUI answer cache
            base = median([run("baseline") for _ in range(args.repeat)])
            big = median([run("big") for _ in range(args.repeat)])
            service_big = service_big or big
            ok = big < TARGET_S
            if label.startswith("service"):
                table.add(label, args.prompts * -(-args.count // args.batch_size), base, big, 1.0, "baseline", "")
                continue
            results.append((f"submission via {label}, {args.prompts}x{args.count}: < 1 s", ok))
            table.add(label, args.prompts * -(-args.count // args.batch_size), base, big, big / service_big,
                      "< 1 s", verdict(ok))
        table.note(f"{Job.objects.count()} jobs and {Unit.objects.count():,} units in the database by the end; "
                   "every door ends in the same job_submit(), so the ratio is each door's own cost")
        table.print()

        job_id = Job.objects.order_by("-id").values_list("id", flat=True).first()
        ask({"command": "status", "job_id": job_id})
        times = []
        for _ in range(args.status_calls):
            with Timer() as t:
                reply = ask({"command": "status", "job_id": job_id})
            if not reply.get("ok"):
                raise RuntimeError(f"status failed: {reply}")
            times.append(t.wall * 1000)
        http_times = []
        for _ in range(min(args.status_calls, 200)):
            with Timer() as t:
                response = session.get(f"{base_url}/api/v1/jobs/{job_id}/", timeout=30)
            response.raise_for_status()
            http_times.append(t.wall * 1000)
        rtt = Table("Status round trip (ms)", ["door", "calls", "p50", "p95", "max"])
        rtt.add("ZeroMQ: status", len(times), percentile(times, 50), percentile(times, 95), max(times))
        rtt.add("HTTP API: GET /api/v1/jobs/N/", len(http_times), percentile(http_times, 50),
                percentile(http_times, 95), max(http_times))
        rtt.note("same job, same machine, one after the other; the reply is the same job document")
        rtt.print()
        results.append((f"ZeroMQ status round trip p50 {percentile(times, 50):.1f} ms, "
                        f"p95 {percentile(times, 95):.1f} ms", None))
        req.close()
        return results
    finally:
        ws.close()
