"""Figure 4, pages at scale: the queue page (/) and the gallery (/gallery/) with 100, 1 000 and
10 000 jobs and images in the database. Response time (median of --repeat requests, after a
warm-up request) and query count (CaptureQueriesContext) at each size.

Rows are made directly (bulk_create), growing one database from 100 to 10 000 and copying it at
each size: at size N there are N finished jobs with one image each (N images, N events) and 50
active jobs (1 running, 49 queued, as a busy studio queue). Requests go through Django's test
Client in this process, signed in as a staff user, with DEBUG off, round-robin over the copies
so that a busy machine slows every size alike.

A second table grows the *queue* instead (250, 1 000, 10 000 queued jobs on top of the 10 000
history): the page shows at most its first 200 rows, so its baseline is 250 (a full page).

Target (issue 8): query count constant, 10 000 within 1.3x of 100.
"""
from __future__ import annotations

import random
import time
from datetime import timedelta

from bench.common import CHECKPOINT_A, CHECKPOINT_B, Table, Workspace, header, make_user, median, verdict

TARGET_RATIO = 1.3
ACTIVE = 50
PAGES = [("queue page /", "/"), ("gallery /gallery/", "/gallery/")]


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default="100,1000,10000", help="database sizes, jobs and images (100,1000,10000)")
    parser.add_argument("--queue-sizes", default="250,1000,10000",
                        help="queued jobs for the deep-queue table ('' to skip) (250,1000,10000)")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per page and size (7)")


class Rows:
    """Makes jobs, units, images and events in bulk, continuing where it left off."""

    def __init__(self) -> None:
        from django.utils import timezone

        from batches.models import Job

        self.rng = random.Random(8)
        self.owners = [make_user(f"artist{i}", staff=False) for i in range(5)]
        self.now = timezone.now()
        self.jobs = Job.objects.count()
        self.images = 0

    def _job(self, status: str, images: int, *, minutes_ago: float):
        from batches.models import Job, Priority

        created = self.now - timedelta(minutes=minutes_ago)
        finished = status not in ("queued", "running")
        return Job(
            owner=self.rng.choice(self.owners), name=f"bench job {self.jobs}",
            prompts=[f"pixel art sprite {self.jobs}, 16-bit"], count=max(images, 1), profile="balanced",
            workflow="batch_optimized", checkpoint=self.rng.choice([CHECKPOINT_A, CHECKPOINT_B]), steps=20, cfg=8.0,
            sampler="euler_ancestral", scheduler="karras", width=1024, height=1024, batch_size=max(images, 1),
            priority=self.rng.choice(list(Priority)), status=status, images_planned=max(images, 1),
            images_done=images if finished else 0, created_at=created, updated_at=created,
            started_at=created + timedelta(seconds=5) if status != "queued" else None,
            finished_at=created + timedelta(seconds=60) if finished else None,
        )

    def add_active(self, queued: int, running: int = 0) -> None:
        from batches.models import Job, Unit, WorkerNode

        jobs = [self._job("running", 0, minutes_ago=1) for _ in range(running)]
        jobs += [self._job("queued", 0, minutes_ago=0.5) for _ in range(queued)]
        jobs = Job.objects.bulk_create(jobs, batch_size=500)
        self.jobs += len(jobs)
        units = []
        for job in jobs:
            status = Unit.Status.RUNNING if job.status == "running" else Unit.Status.PENDING
            units.append(Unit(job=job, index=0, prompt_index=0, prompt=job.prompts[0], seed=self.rng.randrange(2**32),
                              batch_size=job.batch_size, first_sequence=1, priority=job.priority,
                              checkpoint=job.checkpoint, status=status,
                              started_at=job.started_at if status == Unit.Status.RUNNING else None,
                              node="node-1" if status == Unit.Status.RUNNING else ""))
        units = Unit.objects.bulk_create(units, batch_size=500)
        running_units = [u for u in units if u.status == Unit.Status.RUNNING]
        if running_units:
            WorkerNode.objects.update_or_create(name="node-1", defaults={
                "comfyui_url": "http://127.0.0.1:8188", "heartbeat_at": self.now, "current_unit": running_units[0]})

    def add_history(self, images: int) -> None:
        """Finished jobs holding `images` images in all (one job per image, two for the first few)."""
        from batches.models import Event, Image, Job, Unit

        n_jobs = images
        jobs = Job.objects.bulk_create(
            [self._job("completed", 1, minutes_ago=60 * 24 - self.jobs * 0.01) for _ in range(n_jobs)],
            batch_size=500)
        self.jobs += len(jobs)
        units = Unit.objects.bulk_create(
            [Unit(job=job, index=0, prompt_index=0, prompt=job.prompts[0], seed=self.rng.randrange(2**32),
                  batch_size=1, first_sequence=1, priority=job.priority, checkpoint=job.checkpoint,
                  status=Unit.Status.DONE, node="node-1", started_at=job.started_at, finished_at=job.finished_at)
             for job in jobs], batch_size=500)
        rows = []
        for job, unit in zip(jobs, units):
            folder = f"batch_{job.created_at:%Y%m%d_%H%M%S}_{job.pk}"
            name = f"sprite_0001_{unit.seed}.png"
            rows.append(Image(
                job=job, unit=unit, sequence=1, batch_index=0, prompt=unit.prompt, seed=unit.seed,
                file_path=f"batches/{folder}/images/{name}", thumb_path=f"batches/{folder}/thumbs/{name}",
                metadata_path=f"batches/{folder}/metadata/sprite_0001.json", width=1024, height=1024,
                file_size=1_500_000, generation_time=2.5, node="node-1",
                review=self.rng.choice(["unreviewed", "unreviewed", "approved", "rejected"]),
                starred=self.rng.random() < 0.05, created_at=job.finished_at,
                metadata={"seed": unit.seed, "prompt": unit.prompt, "steps": 20, "cfg": 8.0,
                          "checkpoint": job.checkpoint, "sampler": "euler_ancestral"},
            ))
        Image.objects.bulk_create(rows, batch_size=500)
        Event.objects.bulk_create([Event(kind="image_saved", job=job, data={"sequence": 1}) for job in jobs],
                                  batch_size=500)
        self.images += len(rows)


def snapshot(path) -> None:
    """Copy the database as it is now (SQLite's backup API: consistent, WAL included)."""
    import sqlite3

    from django.db import connection

    connection.close()
    source, target = sqlite3.connect(connection.settings_dict["NAME"]), sqlite3.connect(str(path))
    with target:
        source.backup(target)
    source.close()
    target.close()


def use_database(path) -> None:
    """Point the default connection at another SQLite file (each request opens its connection anew)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = str(path)


def measure_all(client, snapshots: dict, pages, repeat: int) -> dict:
    """Per page and size: status, query count, SQL, and the median/min of `repeat` requests.

    The timed requests go round-robin over the sizes (one request per size per round), so a
    busy machine slows every size alike instead of whichever size it happened to hit.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results = {page: {} for page, _ in pages}
    for size, db in snapshots.items():
        use_database(db)
        for page, path in pages:
            warm = client.get(path)
            if warm.status_code != 200:
                results[page][size] = {"status": warm.status_code}
                continue
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(path)
            # Read now: the next request resets the connection's query log.
            queries = [(float(q.get("time") or 0), q["sql"]) for q in ctx.captured_queries]
            results[page][size] = {"status": response.status_code, "queries": len(queries), "sql": queries,
                                   "bytes": len(response.content), "times": []}
    for _ in range(repeat):
        for size, db in snapshots.items():
            use_database(db)
            for page, path in pages:
                r = results[page][size]
                if r.get("status") != 200:
                    continue
                started = time.perf_counter()
                client.get(path)
                r["times"].append(time.perf_counter() - started)
    for page, _ in pages:
        for r in results[page].values():
            if r.get("times"):
                r["ms"], r["min_ms"] = median(r["times"]) * 1000, min(r["times"]) * 1000
    return results


def _sql_tail(sql: str, width: int = 150) -> str:
    """The part of a query that tells it apart: from FROM on (the column list is long and alike)."""
    sql = " ".join(sql.split())
    at = sql.find(" FROM ")
    return (sql[at:] if at >= 0 else sql)[:width]


def _table(title: str, label: str, sizes: list[int], results: dict, pages) -> tuple[Table, list]:
    table = Table(title, ["page", label, "queries", "median ms", "min ms", "SQL ms", "KiB", f"x {sizes[0]}", "target",
                           "verdict"])
    verdicts = []
    for page, _ in pages:
        series = results[page]
        first = series[sizes[0]]
        if first.get("status") != 200:
            why = "page not available yet (404)" if first.get("status") == 404 else f"HTTP {first.get('status')}"
            table.add(page, "-", "-", "-", "-", "-", "-", "-", "-", why)
            verdicts.append((f"{page}: {why}", None))
            continue
        for size in sizes:
            r = series[size]
            if r.get("status") != 200:
                table.add(page, size, "-", "-", "-", "-", "-", "-", "", f"HTTP {r.get('status')}")
                continue
            table.add(page, size, r["queries"], r["ms"], r["min_ms"], sum(t for t, _ in r["sql"]) * 1000,
                      r["bytes"] / 1024, r["ms"] / first["ms"],
                      "" if size != sizes[-1] else f"<= {TARGET_RATIO}x, same queries", "")
        last = series[sizes[-1]]
        if last.get("status") == 200:
            same_queries = len({series[s].get("queries") for s in sizes}) == 1
            ratio = last["ms"] / first["ms"]
            ok = same_queries and ratio <= TARGET_RATIO
            table.rows[-1][-1] = verdict(ok)
            why = [] if same_queries else ["query count grows"]
            if ratio > TARGET_RATIO:
                why.append(f"{sizes[-1]:,} is {ratio:.2f}x {sizes[0]:,}")
            verdicts.append((f"{page} at {sizes[-1]:,} vs {sizes[0]:,} rows" + (f" ({'; '.join(why)})" if why else ""),
                             ok))
            slowest = sorted(last["sql"], reverse=True)[:3]
            table.note(f"{page} slowest queries at {sizes[-1]:,}: " + "; ".join(
                f"{t * 1000:.0f} ms ...{_sql_tail(sql)}" for t, sql in slowest))
    return table, verdicts


def main(args) -> list[tuple[str, bool | None]]:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    queue_sizes = [int(s) for s in args.queue_sizes.split(",") if s.strip()]
    header("Figure 4: pages at scale", {"sizes": sizes, "deep queue sizes": queue_sizes, "repeat": args.repeat})
    ws = Workspace("pages", keep=args.keep)
    try:
        ws.activate()
        from django.test import Client

        admin = make_user("bench", staff=True)
        client = Client()
        client.force_login(admin)
        rows = Rows()
        rows.add_active(queued=ACTIVE - 1, running=1)
        snapshots = {}
        for size in sizes:
            started = time.perf_counter()
            rows.add_history(max(0, size - rows.images))
            snapshots[size] = ws.dir / f"db-{size}.sqlite3"
            snapshot(snapshots[size])
            print(f"  {size:>6,} images, {rows.jobs:,} jobs in the database (made in "
                  f"{time.perf_counter() - started:.1f}s)", flush=True)
        deep = {}
        if queue_sizes:
            queued = ACTIVE - 1
            for size in queue_sizes:
                rows.add_active(queued=max(0, size - queued))
                queued = max(queued, size)
                deep[size] = ws.dir / f"db-queued-{size}.sqlite3"
                snapshot(deep[size])
            print(f"  deep queue: {queued:,} queued jobs on top", flush=True)
        results = measure_all(client, snapshots, PAGES, args.repeat)
        print(flush=True)
        table, verdicts = _table("Pages as history grows (50 active jobs, N finished jobs and N images)",
                                 "jobs/images", sizes, results, PAGES)
        table.note("query count includes the session and user lookups; KiB is the page's HTML size")
        table.print()

        if queue_sizes:
            queue_results = measure_all(client, deep, PAGES[:1], args.repeat)
            deep_table, deep_verdicts = _table(f"Deep queue: N queued jobs on top of {sizes[-1]:,} finished",
                                               "queued jobs", queue_sizes, queue_results, PAGES[:1])
            deep_table.note("the page lists at most its first 200 active jobs, so the baseline is a full page (250)")
            deep_table.print()
            verdicts += [(f"deep queue: {label}", ok) for label, ok in deep_verdicts]
        return verdicts
    finally:
        ws.close()
