"""Figure 10, GPU busy ratio with finishing on vs off: does making sprites slow the GPU down?

The same job (N units of 1024x1024 images) drained by the GPU worker (in this process, the code a
qcluster runs) on a fresh simulator, twice in each order: finishing off (no sprites), and finishing
on with `manage.py sprite_worker` running beside it, making each image's sprite as it lands.
Busy ratio = the simulator's busy seconds / first start..last end, from GET /sim/stats.

Target (issue 12): finishing on within 1 % of finishing off (ratio on / off >= 0.99).
"""
from __future__ import annotations

import time

from bench.common import (
    Table,
    Timer,
    Workspace,
    busy_ratio,
    cpu_seconds,
    drain_in_process,
    header,
    make_user,
    median,
    sim_stats,
    verdict,
)

TARGET = 0.99


def add_arguments(parser) -> None:
    parser.add_argument("--units", type=int, default=40, help="units per run (40)")
    parser.add_argument("--steps", type=int, default=8, help="sampler steps per unit (8)")
    parser.add_argument("--step-ms", type=float, default=25, help="simulated ms per step (25)")
    parser.add_argument("--batch-size", type=int, default=4, choices=(1, 4, 8),
                        help="images per unit (4: the balanced profile's)")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternating (2)")


def _submit(user, args, *, finish: bool, round_no: int):
    from batches.services.submission import job_submit

    return job_submit(owner=user, prompts=[f"pixel art bench knight {round_no}"], count=args.units * args.batch_size,
                      batch_size=args.batch_size, steps=args.steps, width=1024, height=1024, profile="balanced",
                      client=None, wake=False, finish=None if finish else False, seed=1000 * round_no)


def _run(ws: Workspace, user, args, *, finish: bool, round_no: int) -> dict:
    from batches.models import Image

    sim, url = ws.simulator(step_ms=args.step_ms)
    job = _submit(user, args, finish=finish, round_no=round_no)
    sprites = None
    if finish:
        sprites = ws.manage_background("sprite_worker", name=f"sprite-worker-{round_no}")
    with Timer() as t:
        drain_in_process(f"bench-finish-{round_no}", url)
    stats = sim_stats(url)
    ws.stop(sim)
    result = {"finish": finish, "stats": stats, "wall": t.wall, "ratio": busy_ratio(stats), "lag": None,
              "sprites": 0, "sprite_cpu": None}
    if sprites is not None:
        gpu_done = time.monotonic()
        deadline = gpu_done + 300
        while Image.objects.filter(job=job, sprite_state__in=Image.SPRITE_OPEN).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        result["lag"] = time.monotonic() - gpu_done
        result["sprite_cpu"] = cpu_seconds(sprites.pid)
        result["sprites"] = Image.objects.filter(job=job, sprite_state=Image.Sprite.DONE).count()
        ws.stop(sprites)
    return result


def main(args) -> list[tuple[str, bool | None]]:
    header("Figure 10: GPU busy ratio with finishing on vs off", {
        "units": args.units, "batch_size": args.batch_size, "images per run": args.units * args.batch_size,
        "steps": args.steps, "step_ms": args.step_ms, "size": "1024x1024", "rounds": args.rounds,
    })
    ws = Workspace("finishing_busy", keep=args.keep)
    try:
        ws.activate()
        user = make_user()
        runs = []
        for n in range(args.rounds):
            order = (False, True) if n % 2 == 0 else (True, False)
            for finish in order:
                runs.append(_run(ws, user, args, finish=finish, round_no=len(runs) + 1))
        table = Table("GPU busy ratio, finishing off and on (same job, fresh simulator each run)",
                      ["run", "finishing", "images", "busy ratio", "wall s", "sprites", "sprite CPU ms/img",
                       "last sprite after GPU s"])
        for i, r in enumerate(runs, start=1):
            images = r["stats"]["executed"] * args.batch_size
            table.add(i, "on" if r["finish"] else "off", images, f"{r['ratio']:.4f}", r["wall"], r["sprites"] or "-",
                      (r["sprite_cpu"] * 1000 / r["sprites"]) if r["sprites"] else "-",
                      r["lag"] if r["lag"] is not None else "-")
        off = median([r["ratio"] for r in runs if not r["finish"]])
        on = median([r["ratio"] for r in runs if r["finish"]])
        ok = on >= TARGET * off
        table.note(f"median busy ratio: off {off:.4f}, on {on:.4f}: on / off = {on / off:.4f}; "
                   f"target >= {TARGET}: {verdict(ok)}")
        table.note("the sprite worker is a process of its own (manage.py sprite_worker), as ./scripts/run.sh "
                   "starts it; its CPU time is read from /proc")
        table.print()
        return [("GPU busy with finishing on >= 0.99 x off", ok)]
    finally:
        ws.close()
