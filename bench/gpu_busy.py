"""Figure 1, GPU busy ratio: does the GPU ever wait on DGX Pixels?

N units on the simulator at a fixed execution time. Busy ratio = the simulator executor's busy
seconds / (last unit's end - first unit's start), from GET /sim/stats, each variant on a fresh
simulator with the same settings:

* DGX Pixels: the GPU worker (GpuWorker.drain, in this process) on a job of N units;
* (a) seed-style client: submit one, poll /history once a second, download, next;
* (b) plain client: queue all N into ComfyUI at once, then collect (the physical limit).

Target (issue 8): DGX Pixels >= 0.99 x (b).
"""
from __future__ import annotations

from bench import clients
from bench.common import (
    Table,
    Timer,
    Workspace,
    busy_ratio,
    drain_in_process,
    execution_windows,
    header,
    idle_gaps,
    make_user,
    sim_stats,
    submit_units,
    verdict,
    wait_sim_idle,
)

TARGET = 0.99


def add_arguments(parser) -> None:
    parser.add_argument("--units", type=int, default=100, help="units for DGX Pixels and the plain client (100)")
    parser.add_argument("--seed-units", type=int, default=20,
                        help="units for the seed-style client (20: it needs ~1 s a unit; its ratio does not "
                             "depend on the count)")
    parser.add_argument("--steps", type=int, default=8, help="sampler steps per unit (8)")
    parser.add_argument("--step-ms", type=float, default=25, help="simulated ms per step (25)")
    parser.add_argument("--size", type=int, default=1024, help="image width and height (1024, as SDXL)")
    parser.add_argument("--batch-size", type=int, default=1, choices=(1, 4, 8))


def main(args) -> list[tuple[str, bool | None]]:
    header("Figure 1: GPU busy ratio", {
        "units": args.units, "seed-style units": args.seed_units, "steps": args.steps,
        "step_ms": args.step_ms, "size": f"{args.size}x{args.size}", "batch_size": args.batch_size,
    })
    ws = Workspace("gpu_busy", keep=args.keep)
    try:
        ws.activate()
        user = make_user()
        rows = []

        # DGX Pixels: a real job through the service, drained by the real worker.
        sim, url = ws.simulator(step_ms=args.step_ms)
        submit_units(user, units=args.units, steps=args.steps, size=args.size, batch_size=args.batch_size)
        with Timer() as t:
            recorded = drain_in_process("bench-gpu", url)
        stats = sim_stats(url)
        windows = execution_windows(url)
        ws.stop(sim)
        rows.append(("DGX Pixels (GPU worker)", recorded, stats, t.wall, idle_gaps(windows)))
        # Was the next unit already waiting in ComfyUI's queue when the GPU finished the one before?
        from batches.models import Unit

        submitted = {str(u.comfy_prompt_id): u.submitted_at.timestamp() for u in Unit.objects.all()}
        ordered = sorted((w, pid) for pid, w in windows.items())
        ahead = sum(1 for (prev, _), (_, pid) in zip(ordered, ordered[1:]) if submitted[pid] < prev[1])

        # (b) the plain client: everything queued at once.
        graphs = clients.graphs_like_units(user, units=args.units, steps=args.steps, size=args.size,
                                           batch_size=args.batch_size)
        sim, url = ws.simulator(step_ms=args.step_ms)
        with Timer() as t:
            clients.plain(url, graphs, ws.dir / "plain")
        stats_plain = wait_sim_idle(url, len(graphs))
        gaps_plain = idle_gaps(execution_windows(url))
        ws.stop(sim)

        # (a) the seed-style client.
        seed_graphs = clients.graphs_like_units(user, units=args.seed_units, steps=args.steps, size=args.size,
                                                batch_size=args.batch_size)
        sim, url = ws.simulator(step_ms=args.step_ms)
        with Timer() as t_seed:
            clients.seed_style(url, seed_graphs, ws.dir / "seed")
        stats_seed = wait_sim_idle(url, len(seed_graphs))
        gaps_seed = idle_gaps(execution_windows(url))
        ws.stop(sim)

        plain_ratio = busy_ratio(stats_plain)
        table = Table("GPU busy ratio (simulator busy s / first start..last end)",
                      ["variant", "units", "busy s", "span s", "busy ratio", "vs (b)", "idle/unit ms",
                       "max idle ms", "wall s", "wall s/unit"])
        for label, n, st, wall, gaps in [
                rows[0], ("(b) plain client, all queued", len(graphs), stats_plain, t.wall, gaps_plain),
                ("(a) seed-style client, 1 s polling", len(seed_graphs), stats_seed, t_seed.wall, gaps_seed)]:
            span = (st["last_end"] or 0) - (st["first_start"] or 0)
            ratio = busy_ratio(st)
            table.add(label, st["executed"], st["busy_seconds"], span, f"{ratio:.4f}",
                      f"{ratio / plain_ratio:.4f}" if plain_ratio else "-",
                      sum(gaps) * 1000 / max(len(gaps), 1), max(gaps, default=0.0) * 1000,
                      wall, wall / max(st["executed"], 1))
        dgx_ratio = busy_ratio(stats)
        ok = dgx_ratio >= TARGET * plain_ratio
        table.note(f"target: DGX Pixels >= {TARGET} x (b) = {TARGET * plain_ratio:.4f}; "
                   f"measured {dgx_ratio:.4f} ({dgx_ratio / plain_ratio:.4f} x (b)): {verdict(ok)}")
        table.note(f"DGX Pixels had the next unit waiting in ComfyUI's queue when the previous one ended at "
                   f"{ahead} of {len(ordered) - 1} unit boundaries (one ahead); idle = the executor's gap between "
                   f"one prompt's end and the next one's start, from ComfyUI's history timestamps (ms)")
        table.note("each variant on a fresh simulator with the same --step-ms; the worker runs in this "
                   "process (GpuWorker.drain, the code a qcluster runs), with DEBUG off")
        table.print()
        return [("GPU busy ratio >= 0.99 x plain", ok)]
    finally:
        ws.close()

