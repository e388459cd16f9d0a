"""Figure 6, worker memory: RSS of the GPU worker process over 1 000 units.

The worker runs in a process of its own (`python -m bench._drain`: GpuWorker.drain, what the
qcluster's worker process runs) on one job of --units units against a fast simulator (1 step of
1 ms, 64x64 images: the worker's own work per unit is what is exercised, 1 000 times). This
process samples the worker's VmRSS from /proc and counts the units done, every 0.1 s.

Baseline, same run: the worker's RSS once it is warm (after --warmup units: modules imported,
connections open, caches filled). Growth = RSS at the end / RSS at the baseline - 1. The time
per unit in each stretch is printed too: a cost that grows with the job's size shows there.

Target (issue 8): growth < 10 %.
"""
from __future__ import annotations

import time

from bench.common import Table, Workspace, cpu_seconds, header, make_user, rss_kib, submit_units, verdict

TARGET_GROWTH = 0.10


def add_arguments(parser) -> None:
    parser.add_argument("--units", type=int, default=1000, help="units in the job (1000)")
    parser.add_argument("--warmup", type=int, default=50, help="units before the baseline sample (50)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--step-ms", type=float, default=1)
    parser.add_argument("--size", type=int, default=64, help="image size (64)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="split the units over this many jobs (1: one big job, the worst case)")


def main(args) -> list[tuple[str, bool | None]]:
    header("Figure 6: worker memory over a long run", {
        "units": args.units, "jobs": args.jobs, "warm-up units": args.warmup, "steps": args.steps,
        "step_ms": args.step_ms, "size": f"{args.size}x{args.size}"})
    ws = Workspace("memory", keep=args.keep)
    try:
        ws.activate()
        from batches.models import Unit

        user = make_user()
        sim, url = ws.simulator(step_ms=args.step_ms)
        per_job = args.units // args.jobs
        for j in range(args.jobs):
            submit_units(user, units=per_job if j < args.jobs - 1 else args.units - per_job * (args.jobs - 1),
                         steps=args.steps, size=args.size, name=f"memory {j}")
        total = Unit.objects.count()
        ready = ws.dir / "worker-ready"
        worker = ws.python("bench._drain", "--node", "bench-mem", "--url", url, "--ready-file", str(ready),
                           name="worker")
        samples = []  # (seconds, units done, rss KiB, cpu s), from Django being set up in the worker
        while not ready.exists() and worker.alive():
            time.sleep(0.02)
        started = time.perf_counter()
        while worker.alive():
            try:
                rss, cpu = rss_kib(worker.pid), cpu_seconds(worker.pid)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                break
            done = Unit.objects.filter(status=Unit.Status.DONE).count()
            samples.append((time.perf_counter() - started, done, rss, cpu))
            time.sleep(0.1)
        worker.popen.wait()
        done = Unit.objects.filter(status=Unit.Status.DONE).count()
        if worker.popen.returncode != 0 or done != total:
            raise RuntimeError(f"the worker stopped after {done} of {total} units:\n{ws.log_tail(worker)}")
        ws.stop(sim)

        def at(units: int):
            """The first sample with at least `units` done."""
            return next((s for s in samples if s[1] >= units), samples[-1])

        marks = sorted({0, 1, args.warmup, total // 10, total // 4, total // 2, 3 * total // 4, total})
        base = at(args.warmup)
        table = Table(f"Worker RSS over {total:,} units", ["units done", "RSS MiB", "vs warm", "ms/unit since last",
                                                          "CPU ms/unit since last"])
        previous = None
        for mark in marks:
            s = at(mark)
            per_unit = cpu_per_unit = ""
            if previous is not None and s[1] > previous[1]:
                per_unit = f"{(s[0] - previous[0]) * 1000 / (s[1] - previous[1]):.1f}"
                cpu_per_unit = f"{(s[3] - previous[3]) * 1000 / (s[1] - previous[1]):.1f}"
            label = f"{s[1]:,}" + (" (warm baseline)" if mark == args.warmup else
                                   " (Django set up)" if mark == 0 else "")
            table.add(label, s[2] / 1024, f"{s[2] / base[2] - 1:+.1%}", per_unit, cpu_per_unit)
            previous = s
        end = samples[-1]
        peak = max(s[2] for s in samples)
        growth = end[2] / base[2] - 1
        ok = growth < TARGET_GROWTH
        table.note(f"target: growth from the warm baseline < {TARGET_GROWTH:.0%}; measured {growth:+.1%} "
                   f"(peak {peak / 1024:.1f} MiB): {verdict(ok)}")
        table.note("the last sample is taken just before the worker exits; DEBUG is off (Django keeps no query "
                   "log), as in production")
        table.print()
        return [(f"worker RSS growth over {total:,} units {growth:+.1%} < 10%", ok)]
    finally:
        ws.close()
