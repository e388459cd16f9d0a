"""Figure 7, model-affinity scheduling: checkpoint switches and total time, affinity vs plain FIFO.

The queue mixes two checkpoints at the same priority: --units one-unit jobs submitted
alternately with checkpoint A and B (the worst case for FIFO: every unit needs the other model).
The simulator charges --model-load-ms whenever a sampler needs a checkpoint other than the loaded
one, and counts the loads (GET /sim/stats checkpoint_loads; switches = loads - 1).

The same queue runs twice, each time on a fresh simulator, through the GPU worker in a process of
its own (`python -m bench._drain`) configured by the environment as in production:
DGX_AFFINITY_MAX_SKIPS=--max-skips (affinity) and DGX_AFFINITY_MAX_SKIPS=0 (plain FIFO: the
baseline). Fairness is shown as the most units that ran ahead of a unit beyond its FIFO turn.

Target (issue 8): affinity <= 0.5x the switches of FIFO.
"""
from __future__ import annotations

import time

from bench.common import CHECKPOINT_A, CHECKPOINT_B, Table, Workspace, header, make_user, sim_stats, submit_units, \
    verdict, wait_until

TARGET_RATIO = 0.5


def add_arguments(parser) -> None:
    parser.add_argument("--units", type=int, default=40, help="one-unit jobs, alternating checkpoints (40)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--step-ms", type=float, default=25)
    parser.add_argument("--model-load-ms", type=float, default=300, help="simulated checkpoint load (300)")
    parser.add_argument("--max-skips", type=int, default=8, help="DGX_AFFINITY_MAX_SKIPS for the affinity run (8)")
    parser.add_argument("--size", type=int, default=64)


def run_queue(ws: Workspace, user, args, *, label: str, max_skips: int) -> dict:
    from batches.models import Unit

    sim, url = ws.simulator("--model-load-ms", str(args.model_load_ms), step_ms=args.step_ms)
    jobs = [submit_units(user, units=1, steps=args.steps, size=args.size, name=f"{label} {i}",
                         checkpoint=CHECKPOINT_A if i % 2 == 0 else CHECKPOINT_B) for i in range(args.units)]
    started = time.perf_counter()
    worker = ws.python("bench._drain", "--node", f"affinity-{max_skips}", "--url", url, name=f"worker-{label}",
                       DGX_AFFINITY_MAX_SKIPS=str(max_skips))
    wait_until(lambda: not worker.alive(), timeout=110, interval=0.05, message=f"the {label} run")
    wall = time.perf_counter() - started
    if worker.popen.returncode != 0:
        raise RuntimeError(f"the worker failed:\n{ws.log_tail(worker)}")
    stats = sim_stats(url)
    ws.stop(sim)
    units = list(Unit.objects.filter(job__in=jobs).order_by("started_at", "id").values("id", "status", "passed_over"))
    if any(u["status"] != Unit.Status.DONE for u in units):
        raise RuntimeError(f"{label}: not every unit finished")
    fifo_rank = {u["id"]: i for i, u in enumerate(sorted(units, key=lambda u: u["id"]))}
    # How far behind its FIFO turn each unit ran (0: on time or early).
    late = [max(0, ran - fifo_rank[u["id"]]) for ran, u in enumerate(units)]
    return {"switches": max(0, stats["checkpoint_loads"] - 1), "loads": stats["checkpoint_loads"],
            "gpu_span": (stats["last_end"] or 0) - (stats["first_start"] or 0), "busy": stats["busy_seconds"],
            "wall": wall, "max_late": max(late), "max_passed_over": max(u["passed_over"] for u in units),
            "executed": stats["executed"]}


def main(args) -> list[tuple[str, bool | None]]:
    header("Figure 7: model-affinity scheduling", {
        "units": args.units, "checkpoints": f"{CHECKPOINT_A} / {CHECKPOINT_B}, alternating", "steps": args.steps,
        "step_ms": args.step_ms, "model_load_ms": args.model_load_ms, "max_skips": args.max_skips})
    ws = Workspace("affinity", keep=args.keep)
    try:
        ws.activate()
        user = make_user()
        affinity = run_queue(ws, user, args, label="affinity", max_skips=args.max_skips)
        fifo = run_queue(ws, user, args, label="fifo", max_skips=0)
        table = Table("Checkpoint switches and time, same queue", [
            "claim order", "units", "switches", "x FIFO", "GPU span s", "x FIFO", "wall s", "max units late",
            "max passed over"])
        for label, r in ((f"affinity (DGX_AFFINITY_MAX_SKIPS={args.max_skips})", affinity),
                         ("plain FIFO (DGX_AFFINITY_MAX_SKIPS=0), baseline", fifo)):
            table.add(label, r["executed"], r["switches"], r["switches"] / max(fifo["switches"], 1), r["gpu_span"],
                      r["gpu_span"] / fifo["gpu_span"], r["wall"], r["max_late"], r["max_passed_over"])
        ratio = affinity["switches"] / max(fifo["switches"], 1)
        ok = ratio <= TARGET_RATIO
        table.note(f"target: affinity <= {TARGET_RATIO}x FIFO's switches; measured {ratio:.2f}x: {verdict(ok)}")
        table.note(f"bound: no unit is passed over more than {args.max_skips} times (max passed over "
                   f"{affinity['max_passed_over']}: {'ok' if affinity['max_passed_over'] <= args.max_skips else 'VIOLATED'}); "
                   f"'max units late' counts units that ran before it beyond its FIFO turn")
        table.note("switches = the simulator's checkpoint loads - 1; GPU span = first start to last end on the "
                   "simulator, wall = the worker process from start to exit")
        table.print()
        return [(f"affinity switches {ratio:.2f}x FIFO <= 0.5x", ok)]
    finally:
        ws.close()
