"""Figure 12, comparison scheduling: checkpoint loads for a 3-checkpoint x 20-prompt comparison.

The same comparison (3 checkpoints x 20 prompts, one image each: 60 units) runs on a fresh
simulator that charges --model-load-ms for every checkpoint load, through the GPU worker in a
process of its own, three ways:

* DGX Pixels: `comparison_submit`'s grid order (cells sharing a checkpoint together; inside them
  prompt by prompt) with the usual model affinity;
* baseline (a): the cells' units in submission order prompt by prompt across every cell
  (A1 B1 C1 A2 ...), affinity off: what a naive grid scheduler does;
* baseline (b): one job per checkpoint queued by hand, one after the other, affinity off.

Target (issue 14): DGX Pixels loads each checkpoint once (3 loads).
"""
from __future__ import annotations

import time

from bench.common import Table, Workspace, header, make_user, sim_stats, verdict, wait_until

CHECKPOINTS = ("sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors", "pixel_art_xl.safetensors")


def add_arguments(parser) -> None:
    parser.add_argument("--prompts", type=int, default=20, help="prompts per cell (20)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--step-ms", type=float, default=10)
    parser.add_argument("--model-load-ms", type=float, default=300, help="simulated checkpoint load (300)")
    parser.add_argument("--size", type=int, default=64)


def _queue(user, args, variant: str) -> list:
    from batches.models import Unit
    from batches.services import comparisons
    from batches.services.submission import check_job, insert_units, job_submit, plan_units, write_job

    prompts = [f"pixel art bench hero {i}" for i in range(args.prompts)]
    common = dict(count=1, batch_size=1, steps=args.steps, width=args.size, height=args.size, client=None,
                  finish=False, seed=4242)
    if variant == "dgx":
        comparison = comparisons.comparison_submit(owner=user, axes=[f"checkpoint={','.join(CHECKPOINTS)}"],
                                                   prompts=prompts, wake=False, **common)
        return list(comparison.cells.all())
    if variant == "by-hand":
        return [job_submit(owner=user, prompts=prompts, checkpoint=c, wake=False, **common) for c in CHECKPOINTS]
    jobs = [write_job(check_job(owner=user, prompts=prompts, checkpoint=c, **common), with_units=False)
            for c in CHECKPOINTS]
    plans = [(job, plan_units(job)) for job in jobs]
    insert_units([(job, units[k]) for k in range(args.prompts) for job, units in plans])
    assert Unit.objects.filter(job__in=jobs).count() == 3 * args.prompts
    return jobs


def _run(ws: Workspace, user, args, variant: str, *, max_skips: int) -> dict:
    sim, url = ws.simulator("--model-load-ms", str(args.model_load_ms), step_ms=args.step_ms)
    jobs = _queue(user, args, variant)
    started = time.perf_counter()
    worker = ws.python("bench._drain", "--node", f"cmp-{variant}", "--url", url, name=f"worker-{variant}",
                       DGX_AFFINITY_MAX_SKIPS=str(max_skips))
    wait_until(lambda: not worker.alive(), timeout=110, interval=0.05, message=f"the {variant} run")
    wall = time.perf_counter() - started
    stats = sim_stats(url)
    ws.stop(sim)
    from batches.models import Image

    return {"loads": stats["checkpoint_loads"], "executed": stats["executed"], "wall": wall,
            "span": (stats["last_end"] or 0) - (stats["first_start"] or 0),
            "images": Image.objects.filter(job__in=jobs).count()}


def main(args) -> list[tuple[str, bool | None]]:
    header("Figure 12: comparison scheduling, checkpoint loads", {
        "checkpoints": len(CHECKPOINTS), "prompts": args.prompts, "units": len(CHECKPOINTS) * args.prompts,
        "step_ms": args.step_ms, "steps": args.steps, "model_load_ms": args.model_load_ms})
    ws = Workspace("comparison", keep=args.keep)
    try:
        ws.activate()
        user = make_user()
        dgx = _run(ws, user, args, "dgx", max_skips=8)
        naive = _run(ws, user, args, "naive", max_skips=0)
        by_hand = _run(ws, user, args, "by-hand", max_skips=0)
        table = Table("Checkpoint loads for one 3-checkpoint comparison (fresh simulator each run)",
                      ["variant", "units", "images", "checkpoint loads", "GPU span s", "wall s"])
        for label, r in (("DGX Pixels: comparison_submit (grid order + affinity)", dgx),
                         ("(a) submission order, prompt by prompt across cells, no affinity", naive),
                         ("(b) one job per checkpoint by hand, FIFO", by_hand)):
            table.add(label, r["executed"], r["images"], r["loads"], r["span"], r["wall"])
        ok = dgx["loads"] <= len(CHECKPOINTS)
        table.note(f"target: one load per checkpoint ({len(CHECKPOINTS)}); measured {dgx['loads']}: {verdict(ok)}; "
                   f"(a) loads {naive['loads'] / max(dgx['loads'], 1):.0f}x as often")
        table.note("loads include the first one; each costs --model-load-ms on the simulator")
        table.print()
        return [("comparison loads each checkpoint once", ok)]
    finally:
        ws.close()
