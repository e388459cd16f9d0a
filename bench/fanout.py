"""Figure 5, live fan-out: 100 WebSocket clients on the queue group while the GPU worker runs.

A real daphne (dgxpixels.asgi) serves ws/queue/; --clients signed-in sockets connect to it (one
asyncio websockets client each, in a thread of this process). Then the GPU worker runs a job in
a process of its own (`python -m bench._drain`, GpuWorker.drain) against a simulator, and
publishes what it always publishes (unit submitted/started, progress, image saved, unit done,
job progress...). Latency = receipt time - the event's "at" timestamp (taken when the worker
creates the event, before it is stored); lost = events published while the clients listened
that a client never got (counted per client).

Two channel layers, same run: the embedded default (SQLite + the relay in daphne, which polls
the events table every 25 ms) and Redis (REDIS_URL for daphne and the worker: channels-redis).
Baseline, same run: the same layer with 1 client (the pipeline without the fan-out).

Target (issue 8): p95 < 100 ms and none lost, on both layers.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime

from bench.common import REDIS_URL, Table, Workspace, cpu_seconds, header, make_user, percentile, \
    services_available, session_cookie, submit_units, verdict, wait_until

TARGET_P95_MS = 100.0


def _events(raw: str) -> list[dict]:
    """A frame carries one event (an object) or a burst of them (an array)."""
    data = json.loads(raw)
    return data if isinstance(data, list) else [data]


def add_arguments(parser) -> None:
    parser.add_argument("--clients", type=int, default=100, help="WebSocket clients (100)")
    parser.add_argument("--units", type=int, default=10, help="units the worker runs per measurement (10)")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps per unit (20)")
    parser.add_argument("--step-ms", type=float, default=50,
                        help="ms per step (50): 1 s units and ~10 events/s, about twice a DGX Spark's event rate")
    parser.add_argument("--size", type=int, default=64, help="image size (64: the sockets are measured, not PNGs)")
    parser.add_argument("--layers", default="embedded,redis", help="embedded,redis (both)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the 1-client baseline runs")


class Listeners:
    """N WebSocket clients on one asyncio loop in a thread; each records (receipt time, raw frame)."""

    def __init__(self, ws_url: str, origin: str, cookie: str, clients: int):
        self.ws_url, self.origin, self.cookie, self.n = ws_url, origin, cookie, clients
        self.frames: list[list[tuple[float, str]]] = [[] for _ in range(clients)]
        self.cpu = 0.0  # CPU seconds of the listeners' thread while listening
        self.dropped = 0
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="ws-listeners", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self._thread.start()
        if not self.ready.wait(timeout) or self.error:
            raise RuntimeError(f"the WebSocket clients did not connect: {self.error}")

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()/the caller
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from websockets.asyncio.client import connect

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        headers = {"Origin": self.origin, "Cookie": self.cookie}
        sockets = []
        for i in range(self.n):  # one at a time: daphne on 2 cores dislikes 100 handshakes at once
            sockets.append(await connect(self.ws_url, additional_headers=headers, open_timeout=30,
                                         max_size=None, ping_interval=None))
        tasks = [asyncio.create_task(self._listen(i, ws)) for i, ws in enumerate(sockets)]
        self.ready.set()
        cpu0 = time.thread_time()
        await self._stop.wait()
        self.cpu = time.thread_time() - cpu0
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self, i: int, ws) -> None:
        frames = self.frames[i]
        clock = time.time
        try:
            async for raw in ws:
                frames.append((clock(), raw))
        except Exception:
            self.dropped += 1


def _at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class Layer:
    """daphne and a simulator for one channel layer, shared by that layer's runs."""

    def __init__(self, ws: Workspace, layer: str, args):
        self.ws, self.layer, self.args = ws, layer, args
        self.env = {"REDIS_URL": REDIS_URL} if layer == "redis" else {}
        if layer == "redis":
            import redis as redis_lib

            redis_lib.Redis.from_url(REDIS_URL).flushdb()
        self.daphne, self.base = ws.daphne(**self.env)
        self.sim, self.url = ws.simulator(step_ms=args.step_ms)

    def close(self) -> None:
        self.ws.stop(self.sim)
        self.ws.stop(self.daphne)


def measure(layer: Layer, user, cookie: str, *, clients: int) -> dict:
    """One run: N clients listen, the worker runs a job, events counted and timed."""
    from batches.models import Event

    ws, args = layer.ws, layer.args
    name = f"{layer.layer}-{clients}"
    # The worker starts now (Django set-up overlaps the clients connecting) and waits for its job.
    worker = ws.python("bench._drain", "--node", f"fanout-{name}", "--url", layer.url,
                       "--wait-for-units", str(args.units), name=f"worker-{name}", **layer.env)
    listeners = Listeners(layer.base.replace("http", "ws", 1) + "/ws/queue/", layer.base, cookie, clients)
    try:
        listeners.start()
        time.sleep(0.5)  # the embedded relay starts with the first consumer and reads from the newest id
        submit_units(user, units=args.units, steps=args.steps, size=args.size, name=f"fanout {name}")
        # Counted: what the worker publishes from here on (the submission's own "job_queued" is published
        # by this process, which is not configured for the Redis layer).
        first_id = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        daphne_cpu0, window0 = cpu_seconds(layer.daphne.pid), time.perf_counter()
        wait_until(lambda: not worker.alive(), timeout=120, interval=0.1, message="the worker to drain the job")
        if worker.popen.returncode != 0:
            raise RuntimeError(f"the worker failed:\n{ws.log_tail(worker)}")
        last_id = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


        # Late is not lost: wait until every client has the last event, or nothing arrived for 3 s.
        quiet = {"frames": -1, "since": time.monotonic()}

        def delivered_or_quiet():
            if all(frames and _events(frames[-1][1])[-1].get("id", 0) >= last_id for frames in listeners.frames):
                return True
            total = sum(len(frames) for frames in listeners.frames)
            if total != quiet["frames"]:
                quiet.update(frames=total, since=time.monotonic())
            return time.monotonic() - quiet["since"] > 3.0

        wait_until(delivered_or_quiet, timeout=90, interval=0.05, message="the clients to receive the events")
        window = time.perf_counter() - window0
        daphne_cpu = cpu_seconds(layer.daphne.pid) - daphne_cpu0
    finally:
        listeners.stop()
        ws.stop(worker)
    expected = set(Event.objects.filter(id__gt=first_id, id__lte=last_id).values_list("id", flat=True))
    latencies, lost, duplicates = [], 0, 0
    for frames in listeners.frames:
        seen = set()
        for received, raw in frames:
            for message in _events(raw):
                event_id = message.get("id")
                if event_id not in expected:
                    continue
                if event_id in seen:
                    duplicates += 1
                    continue
                seen.add(event_id)
                latencies.append((received - _at(message["at"])) * 1000)
        lost += len(expected - seen)
    span = 0.0
    if expected:
        times = list(Event.objects.filter(id__in=[min(expected), max(expected)]).values_list("created_at", flat=True))
        span = (max(times) - min(times)).total_seconds()
    return {"events": len(expected), "clients": clients, "latencies": latencies, "lost": lost,
            "daphne_rate": len(latencies) / daphne_cpu if daphne_cpu else 0.0,
            "daphne_cpu": daphne_cpu / window, "clients_cpu": listeners.cpu / window,
            "duplicates": duplicates, "dropped": listeners.dropped, "rate": len(expected) / span if span else 0.0}


def main(args) -> list[tuple[str, bool | None]]:
    layers = [layer.strip() for layer in args.layers.split(",") if layer.strip()]
    header("Figure 5: live fan-out over WebSockets", {
        "clients": args.clients, "units per run": args.units, "steps": args.steps, "step_ms": args.step_ms,
        "layers": layers})
    if "redis" in layers and (why := services_available()):
        print(f"  Redis layer skipped: {why}\n")
        layers.remove("redis")
    ws = Workspace("fanout", keep=args.keep)
    try:
        ws.activate()
        user = make_user()
        cookie = session_cookie(user)
        table = Table("Publish-to-receipt latency on ws/queue/ (ms)",
                      ["layer", "clients", "events", "events/s", "deliveries", "p50", "p95", "max", "lost",
                       "dup", "daphne CPU", "msgs per daphne CPU s", "clients CPU", "target", "verdict"])
        verdicts = []
        for layer_name in layers:
            layer = Layer(ws, layer_name, args)
            try:
                for clients in ([1] if not args.no_baseline else []) + [args.clients]:
                    r = measure(layer, user, cookie, clients=clients)
                    lat = r["latencies"]
                    p95 = percentile(lat, 95)
                    ok = bool(lat) and p95 < TARGET_P95_MS and r["lost"] == 0 and r["dropped"] == 0
                    is_target = clients == args.clients
                    label = {"embedded": "embedded (SQLite + relay)", "redis": "Redis (channels-redis)"}[layer_name]
                    table.add(label + ("" if is_target else " baseline"), clients, r["events"], r["rate"], len(lat),
                              percentile(lat, 50), p95, max(lat) if lat else float("nan"), r["lost"],
                              r["duplicates"], f"{r['daphne_cpu']:.0%}", r["daphne_rate"],
                              f"{r['clients_cpu']:.0%}",
                              "p95 < 100, 0 lost" if is_target else "",
                              verdict(ok) if is_target else "")
                    if is_target:
                        verdicts.append((f"fan-out {layer_name}: p95 {p95:.0f} ms, {r['lost']} lost of "
                                         f"{r['events'] * clients} deliveries", ok))
            finally:
                layer.close()
        table.note("latency = receipt in the client - the event's 'at' (set by the worker before the row is "
                   "stored): it includes the database write, the layer, daphne and the client's own loop")
        table.note("CPU columns: share of one core over the run (daphne is one process, one core at most); "
                   "msgs per daphne CPU s = deliveries / daphne's CPU seconds, its fan-out capacity")
        from batches.relay import POLL_SECONDS

        table.note(f"the embedded relay polls the events table every {POLL_SECONDS:g} s and sends one frame per "
                   "page per tick; on Redis the worker sends each unit boundary's events as one frame")
        table.print()
        return verdicts
    finally:
        ws.close()
