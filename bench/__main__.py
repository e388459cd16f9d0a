"""Run the benchmarks of issue 8: `python -m bench NAME [options]`, `python -m bench all`, `python -m bench list`.

(`python manage.py bench ...` runs the same thing.) Each benchmark makes its own temp workspace
(a fresh database and OUTPUT_ROOT), starts the processes it needs, prints its tables with the
baseline measured in the same run, the target and PASS/MISS, and cleans up. `all` runs each one
in a process of its own, one after the other, and ends with a summary.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import subprocess
import sys
import time

BENCHMARKS = {
    # name: (figure, what it measures)
    "gpu_busy": (1, "GPU busy ratio: DGX Pixels vs a seed-style client vs a plain client"),
    "orchestration": (2, "worker CPU ms per image, with a breakdown"),
    "submission": (3, "1000 prompts x 8 images through the service, the form and the CLI"),
    "pages": (4, "queue and gallery pages at 100 / 1 000 / 10 000 rows"),
    "fanout": (5, "100 WebSocket clients: publish-to-receipt latency and lost events"),
    "memory": (6, "worker RSS over 1 000 units"),
    "affinity": (7, "model-affinity claim vs plain FIFO: checkpoint switches"),
    "scale_out": (8, "1, 2, 3 GPU nodes on PostgreSQL + Redis: throughput"),
    "finishing": (9, "finishing cost per 1024x1024 image, by stage, one core (issue 12)"),
    "finishing_busy": (10, "GPU busy ratio with finishing (sprite worker) on vs off"),
    "sheets": (11, "packing 1000 64x64 sprites into one sheet + atlas"),
    "comparison": (12, "checkpoint loads of a 3-checkpoint x 20-prompt comparison vs submission order"),
    "integrations": (13, "1000 prompts x 8 through the HTTP API and ZeroMQ; ZeroMQ status round trip"),
}

RESULT_PREFIX = "RESULT "


def _usage() -> str:
    lines = ["usage: python -m bench NAME [options]   (or: python manage.py bench NAME [options])", "",
             "benchmarks:"]
    for name, (figure, what) in BENCHMARKS.items():
        lines.append(f"  {name:<14} figure {figure}: {what}")
    lines += ["  all            run every benchmark, each in its own process, then a summary",
              "  list           this list", "",
              "`python -m bench NAME --help` lists a benchmark's options."]
    return "\n".join(lines)


def _terminate(signum, frame):  # SIGTERM: unwind so the workspace stops its processes
    raise KeyboardInterrupt


def run_one(name: str, argv: list[str] | None = None) -> int:
    module = importlib.import_module(f"bench.{name}")
    figure, what = BENCHMARKS[name]
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temp workspace (logs, database) afterwards")
    args = parser.parse_args(argv if argv is not None else [])
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    try:
        results = module.main(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    for label, ok in results:
        state = "n/a" if ok is None else ("PASS" if ok else "MISS")
        print(f"{RESULT_PREFIX}{name}: {state}: {label}")
    print(f"{name} (figure {figure}) finished in {elapsed:.1f}s", flush=True)
    return 0


def run_all(extra: list[str]) -> int:
    summary = []
    started = time.perf_counter()
    for name, (figure, _) in BENCHMARKS.items():
        t0 = time.perf_counter()
        print(f"\n{'=' * 100}\n$ python -m bench {name} {' '.join(extra)}".rstrip(), flush=True)
        proc = subprocess.Popen([sys.executable, "-m", "bench", name, *extra], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=os.path.dirname(os.path.dirname(
                                    os.path.abspath(__file__))))
        results = []
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith(RESULT_PREFIX):
                results.append(line[len(RESULT_PREFIX):].strip())
        rc = proc.wait()
        summary.append((name, figure, rc, time.perf_counter() - t0, results))
    print(f"\n{'=' * 100}\nSummary ({time.perf_counter() - started:.0f}s in all)")
    worst = 0
    for name, figure, rc, elapsed, results in summary:
        if rc:
            worst = max(worst, 1)
            print(f"  fig {figure} {name:<14} ERROR (exit {rc}) after {elapsed:.0f}s")
            continue
        for line in results or ["(no target)"]:
            print(f"  fig {figure} {name:<14} {elapsed:5.0f}s  {re.sub(r'^[a-z_]+: ', '', line)}")
    return worst


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help", "list"):
        print(_usage())
        return 0 if argv else 64
    name, rest = argv[0], argv[1:]
    if name == "all":
        return run_all(rest)
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}\n\n{_usage()}", file=sys.stderr)
        return 64
    return run_one(name, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
