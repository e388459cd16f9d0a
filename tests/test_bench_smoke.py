"""The benchmarks (bench/) import, and the cheapest one runs end to end and prints its table.

The figures themselves are not asserted: timed assertions do not belong in tests on shared
machines (issue 8). `python -m bench all` prints them.
"""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

BENCHMARKS = ["gpu_busy", "orchestration", "submission", "pages", "fanout", "memory", "affinity", "scale_out",
              "finishing", "finishing_busy", "sheets", "comparison", "integrations"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_module_imports_and_parses_its_options(name):
    from bench.__main__ import BENCHMARKS as listed

    assert name in listed
    module = importlib.import_module(f"bench.{name}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    parser.parse_args([])
    assert callable(module.main)


def test_the_submission_benchmark_runs_in_its_own_workspace_and_prints_its_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "OUTPUT_ROOT")}
    result = subprocess.run(
        [sys.executable, "-m", "bench", "submission", "--prompts", "20", "--count", "2", "--repeat", "1",
         "--batch-sizes", "1", "--no-subprocess"],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Time to accepted" in out
    for door in ("service: job_submit()", "form view: POST /jobs/new/", "CLI: batch_generate (call_command)"):
        assert door in out, out
    assert out.count("RESULT submission: ") == 3
    assert "finished in" in out


def test_the_finishing_benchmark_runs_and_prints_its_per_stage_table():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "OUTPUT_ROOT")}
    result = subprocess.run([sys.executable, "-m", "bench", "finishing", "--images", "2", "--repeat", "1"],
                            cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Grid detection" in result.stdout or "grid" in result.stdout.lower(), result.stdout
    assert "RESULT finishing: " in result.stdout
