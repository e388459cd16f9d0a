"""The GPU worker as a process of its own: `python -m bench._drain --node N --url U`.

What a qcluster's worker process runs for one nudge (GpuWorker.drain, the same code), without
django-q around it, so a benchmark can watch one process (its RSS, its CPU) and start it on
cue. Configured by the environment like every DGX Pixels process (DATABASE_URL, REDIS_URL,
OUTPUT_ROOT, DGX_AFFINITY_MAX_SKIPS, ...). Waits for --wait-for-units pending units first, so
the caller can start it before the queue is filled.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._drain")
    parser.add_argument("--node", required=True)
    parser.add_argument("--url", required=True, help="the ComfyUI (simulator) base URL")
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--wait-for-units", type=int, default=0,
                        help="wait until this many units are pending before draining")
    parser.add_argument("--ready-file", default="", help="touch this file once Django is set up")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dgxpixels.settings")
    import django

    django.setup()
    from batches.models import Unit
    from batches.services.worker import GpuWorker

    if args.ready_file:
        open(args.ready_file, "w").close()
    deadline = time.monotonic() + 120
    while args.wait_for_units and Unit.objects.filter(status=Unit.Status.PENDING).count() < args.wait_for_units:
        if time.monotonic() > deadline:
            print("no units to drain", file=sys.stderr)
            return 1
        time.sleep(0.05)
    started = time.perf_counter()
    recorded = GpuWorker(node=args.node, comfyui_url=args.url, time_budget=args.budget).drain()
    print(f"drained {recorded} unit(s) in {time.perf_counter() - started:.2f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
