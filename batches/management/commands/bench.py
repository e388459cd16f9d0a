"""Run the benchmarks of issue 8: `manage.py bench NAME [options]`, `manage.py bench all`, `manage.py bench list`.

The same as `python -m bench ...` (see bench/README.md). The benchmarks run in a process of their
own because each sets up Django for a fresh database of its own before Django starts: this
command's database (the developer's) is never touched.
"""
from __future__ import annotations

import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand


def run_bench(argv: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "bench", *argv], cwd=str(settings.BASE_DIR))


class Command(BaseCommand):
    help = "Run the issue-8 benchmarks (gpu_busy, orchestration, submission, pages, fanout, memory, affinity, " \
           "scale_out, or all); `manage.py bench list` lists them, `manage.py bench NAME --help` their options."

    def run_from_argv(self, argv: list[str]) -> None:
        # Every argument, --help included, belongs to the benchmark runner, not to Django's parser.
        sys.exit(run_bench(argv[2:]))

    def add_arguments(self, parser) -> None:
        parser.add_argument("bench_args", nargs="*", help="NAME [options], all, or list")

    def handle(self, *args, **options) -> None:  # call_command("bench", "submission", ...)
        code = run_bench([*args, *options.get("bench_args", [])])
        if code:
            raise SystemExit(code)
