"""Start the real processes that tests talk to (simulator, qcluster, daphne) and stop them cleanly."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
MANAGE = str(ROOT / "manage.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, *, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


@dataclass
class Proc:
    """A managed subprocess whose output goes to a log file (read it when a test fails)."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)

    def start(self) -> "Proc":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, as a power cut or the OOM killer would do it."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def discard(self) -> None:
        """The test is over and nothing it checks depends on a clean exit: SIGKILL the whole group at
        once. A graceful stop of a qcluster costs ~2 s a test; tests that check stopping call stop()."""
        self.kill()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the main process only (django-q2 cleans up its workers), then SIGKILL if stuck."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        else:
            try:  # reap anything the main process left behind in its group
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def manage_proc(*args: str, env: dict[str, str], log_path: Path) -> Proc:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    return Proc([sys.executable, MANAGE, *args], full_env, log_path)


def start_simulator(tmp_path: Path, *extra: str, port: int | None = None, step_ms: int = 10,
                    env: dict[str, str] | None = None) -> tuple[Proc, str]:
    """Start the simulator (`python -m batches.comfyui_sim`) on a free port; return the process and its base URL."""
    port = port or free_port()
    out = tmp_path / f"sim-{port}-output"
    # `python -m batches.comfyui_sim` is `manage.py comfyui_sim` without Django's set-up (~1.4 s less).
    proc = Proc([sys.executable, "-m", "batches.comfyui_sim", "--host", "127.0.0.1", "--port", str(port),
                 "--step-ms", str(step_ms), "--output-directory", str(out), *extra],
                {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, tmp_path / f"sim-{port}.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/system_stats", proc=proc.popen)
    proc.extra.update(port=port, output_dir=out)
    return proc, url


def wait_until(predicate, *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail with `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def start_qcluster(tmp_path: Path, env: dict[str, str], *, name: str = "qcluster") -> Proc:
    """A real `manage.py qcluster` (one GPU worker) sharing the test database."""
    return manage_proc("qcluster", env=env, log_path=tmp_path / f"{name}.log").start()


def start_daphne(tmp_path: Path, env: dict[str, str], *, port: int | None = None) -> tuple[Proc, str]:
    """A real daphne serving dgxpixels.asgi on a free port; returns the process and base URL."""
    port = port or free_port()
    daphne = str(Path(sys.executable).with_name("daphne"))
    proc = Proc([daphne, "-b", "127.0.0.1", "-p", str(port), "dgxpixels.asgi:application"],
                {**os.environ, "PYTHONUNBUFFERED": "1", **env}, tmp_path / f"daphne-{port}.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/accounts/login/", proc=proc.popen)
    return proc, url
