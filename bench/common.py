"""What the benchmarks share: a private workspace, the processes they start, and the tables they print.

A benchmark never touches the developer's database or outputs: `Workspace` makes a temp folder
with its own database (a fresh SQLite file, or a fresh PostgreSQL database that is dropped
afterwards), its own OUTPUT_ROOT, and configures Django for them *before* Django is set up, so
the benchmark process and every process it starts (simulators, qclusters, daphne, workers)
share that database and nothing else.

Nothing here imports Django at module level: the modules must import cleanly before the
workspace has chosen the settings.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.processes import (
    ROOT,
    Proc,
    free_port,
    manage_proc,
    start_daphne,
    start_qcluster,
    start_simulator,
    wait_until,
)

__all__ = [
    "ROOT", "Proc", "Workspace", "Table", "free_port", "wait_until", "sim_stats", "busy_ratio", "verdict",
    "fmt", "percentile", "rss_kib", "PG_URL", "REDIS_URL",
]

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CHECKPOINT_A = "sd_xl_base_1.0.safetensors"
CHECKPOINT_B = "pixel_art_xl.safetensors"


# --- the workspace ----------------------------------------------------------------------------


class Workspace:
    """A temp folder with a fresh database and OUTPUT_ROOT, and the processes started in it."""

    def __init__(self, name: str, *, postgres: bool = False, redis: bool = False, keep: bool = False):
        self.name = name
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.outputs = self.dir / "outputs"
        self.outputs.mkdir()
        # DEBUG is off (below), so every process needs a real key; this one lives as long as the run.
        self.secret_key = secrets.token_urlsafe(50)
        self.pg_db: str | None = None
        if postgres:
            self.pg_db = f"bench_{name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            _pg_admin(f'CREATE DATABASE "{self.pg_db}"')
            self.database_url = f"{PG_URL}/{self.pg_db}"
        else:
            self.database_url = "sqlite:///" + str(self.dir / "db.sqlite3")  # sqlite:////tmp/... (absolute)
        self.redis_url = REDIS_URL if redis else None
        if redis:
            import redis as redis_lib

            redis_lib.Redis.from_url(self.redis_url).flushdb()
        self.procs: list[Proc] = []
        self._closed = False

    @property
    def env(self) -> dict[str, str]:
        """The environment every process of this benchmark runs with (ours included)."""
        env = {
            "DATABASE_URL": self.database_url,
            "OUTPUT_ROOT": str(self.outputs),
            # Production-like: DEBUG off (no query log growing in the worker), quiet logs.
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DJANGO_SETTINGS_MODULE": "dgxpixels.settings",
            "PYTHONUNBUFFERED": "1",
        }
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def child_env(self, **extra: str) -> dict[str, str]:
        env = {**self.env, **{k: str(v) for k, v in extra.items()}}
        if not self.redis_url and "REDIS_URL" not in extra:
            env["REDIS_URL"] = ""  # never inherit a REDIS_URL from the shell into an embedded run
        return env

    def activate(self, **extra: str) -> None:
        """Point this process's Django at the workspace, set it up, and migrate the fresh database."""
        os.environ.update(self.child_env(**extra))
        if not self.redis_url and not extra.get("REDIS_URL"):
            os.environ.pop("REDIS_URL", None)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        # The worker logs at INFO in production; keep that cost but send it to a file, not the table.
        handler = logging.FileHandler(self.dir / "in-process.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("batches", "django_q", "django-q"):
            logger = logging.getLogger(name)
            logger.handlers = [handler]
            logger.propagate = False

    # --- processes -------------------------------------------------------------------------------
    def simulator(self, *extra: str, step_ms: float = 25, env: dict | None = None) -> tuple[Proc, str]:
        proc, url = start_simulator(self.dir, *extra, step_ms=step_ms, env=self.child_env(**(env or {})))
        self.procs.append(proc)
        return proc, url

    def qcluster(self, name: str, **env: str) -> Proc:
        proc = start_qcluster(self.dir, self.child_env(**env), name=name)
        self.procs.append(proc)
        return proc

    def daphne(self, **env: str) -> tuple[Proc, str]:
        proc, url = start_daphne(self.dir, self.child_env(**env))
        self.procs.append(proc)
        return proc, url

    def python(self, module: str, *args: str, name: str, **env: str) -> Proc:
        """`python -m <module> args` (e.g. the bench worker) sharing the workspace."""
        full_env = {**os.environ, **self.child_env(**env)}
        proc = Proc([sys.executable, "-m", module, *args], full_env, self.dir / f"{name}.log").start()
        self.procs.append(proc)
        return proc

    def manage_background(self, *args: str, name: str, **env: str) -> Proc:
        """Start `manage.py args` as a long-running process of this workspace (stopped at close)."""
        proc = manage_proc(*args, env=self.child_env(**env), log_path=self.dir / f"{name}.log").start()
        self.procs.append(proc)
        return proc

    def manage(self, *args: str, timeout: float = 120, **env: str) -> tuple[subprocess.CompletedProcess, float]:
        """Run `manage.py args` to completion; returns the result and its wall time in seconds."""
        full_env = {**os.environ, **self.child_env(**env)}
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=full_env, cwd=str(ROOT),
                                capture_output=True, text=True, timeout=timeout)
        return result, time.perf_counter() - started

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception:  # keep stopping the others
                pass
        self.procs.clear()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if self.pg_db:
            try:
                _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
            except Exception as exc:
                print(f"warning: could not drop PostgreSQL database {self.pg_db}: {exc}", file=sys.stderr)
        if self.redis_url:
            try:
                import redis as redis_lib

                redis_lib.Redis.from_url(self.redis_url).flushdb()
            except Exception:
                pass
        if self.keep:
            print(f"(workspace kept: {self.dir})")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, proc: Proc, lines: int = 30) -> str:
        return "\n".join(proc.log().splitlines()[-lines:])


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def services_available() -> str | None:
    """None when PostgreSQL and Redis answer; otherwise why not."""
    try:
        import psycopg

        psycopg.connect(f"{PG_URL}/postgres", connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} does not answer: {exc}"
    try:
        import redis as redis_lib

        redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} does not answer: {exc}"
    return None


# --- the simulator's own measurements ---------------------------------------------------------


def sim_stats(url: str) -> dict:
    return requests.get(url + "/sim/stats", timeout=5).json()


def busy_ratio(stats: dict) -> float:
    """Executor busy time / (last end - first start): 1.0 means the GPU never waited."""
    if not stats.get("first_start") or not stats.get("last_end"):
        return 0.0
    span = stats["last_end"] - stats["first_start"]
    return stats["busy_seconds"] / span if span > 0 else 0.0


def execution_windows(url: str) -> dict[str, tuple[float, float]]:
    """prompt_id -> (start, end) in epoch seconds, from ComfyUI's own history timestamps (ms)."""
    windows = {}
    for prompt_id, entry in requests.get(url + "/history", timeout=30).json().items():
        start = end = None
        for kind, data in (entry.get("status") or {}).get("messages") or []:
            if kind == "execution_start":
                start = data["timestamp"] / 1000.0
            elif kind in ("execution_success", "execution_error", "execution_interrupted"):
                end = data["timestamp"] / 1000.0
        if start is not None and end is not None:
            windows[prompt_id] = (start, end)
    return windows


def idle_gaps(windows: dict[str, tuple[float, float]]) -> list[float]:
    """Seconds the executor sat idle between one prompt's end and the next one's start."""
    ordered = sorted(windows.values())
    return [max(0.0, b[0] - a[1]) for a, b in zip(ordered, ordered[1:])]


def wait_sim_idle(url: str, executed: int, *, timeout: float = 120.0) -> dict:
    """Wait until the simulator has executed `executed` prompts in all."""
    return wait_until(lambda: (s := sim_stats(url))["executed"] >= executed and s, timeout=timeout,
                      interval=0.05, message=f"the simulator to execute {executed} prompts")


# --- measuring --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# --- printing ---------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{max(digits - 1, 1)}f}"
    return str(value)


@dataclass
class Table:
    """A titled table with aligned columns and notes under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells) -> None:
        self.rows.append([c if isinstance(c, str) else fmt(c) for c in cells])

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))

        def line(cells):
            out = []
            for i, cell in enumerate(cells):
                # Text left, numbers right.
                numeric = cell[:1].isdigit() or cell[:1] in "-+." and cell[1:2].isdigit()
                out.append(cell.rjust(widths[i]) if numeric and i else cell.ljust(widths[i]))
            return "  ".join(out).rstrip()

        bar = "-" * (sum(widths) + 2 * (len(widths) - 1))
        parts = [f"== {self.title} ==", line(self.columns), bar, *(line(r) for r in self.rows)]
        parts += [f"  * {n}" for n in self.notes]
        return "\n".join(parts)

    def print(self) -> None:
        print(self.render(), flush=True)
        print(flush=True)


def header(title: str, params: dict) -> None:
    settings = ", ".join(f"{k}={v}" for k, v in params.items())
    print(f"### {title}", flush=True)
    print(f"    {settings}", flush=True)
    print(f"    machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}", flush=True)
    print(flush=True)


class Timer:
    """Wall and CPU time of a block: `with Timer() as t: ...; t.wall, t.cpu`."""

    def __enter__(self) -> "Timer":
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def make_user(username: str = "bench", *, staff: bool = True):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create(username=username, password=make_password(None), is_staff=staff,
                                   is_superuser=staff)
    return user


def session_cookie(user) -> str:
    """Log `user` in through Django's session machinery; the Cookie header value (as tests do)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def submit_units(owner, *, units: int, steps: int, size: int, batch_size: int = 1, prompts: int = 1,
                 checkpoint: str | None = None, priority: str = "normal", name: str = ""):
    """Queue a job of `units` units (prompts x count/batch) through the real service, without a nudge."""
    from batches.services.submission import job_submit

    per_prompt = max(1, units // prompts) * batch_size
    return job_submit(owner=owner, prompts=[f"pixel art bench sprite {i}" for i in range(prompts)],
                      count=per_prompt, batch_size=batch_size, steps=steps, width=size, height=size,
                      checkpoint=checkpoint, priority=priority, name=name, client=None, wake=False)


def drain_in_process(node: str, url: str, *, budget: float = 600.0) -> int:
    """Run the GPU worker in this process until the queue is empty."""
    from batches.services.worker import GpuWorker

    return GpuWorker(node=node, comfyui_url=url, time_budget=budget).drain()
