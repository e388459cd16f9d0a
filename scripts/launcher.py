#!/usr/bin/env python3
"""Start DGX Pixels' processes, watch them, and stop them all: what `./scripts/run.sh` runs.

    python scripts/launcher.py        (PORT, HOST, COMFYUI_URL, SIM_STEP_MS from the environment)

- The ComfyUI simulator when nothing answers at COMFYUI_URL, the GPU worker (`manage.py
  qcluster`), the sprite worker (`manage.py sprite_worker`), the webhook worker (`manage.py
  webhook_worker`), the ZeroMQ gateway when DGX_ZMQ_REP is set (`manage.py zmq_gateway --rep
  $DGX_ZMQ_REP [--pub $DGX_ZMQ_PUB]`) and the web server (daphne). Each runs in a session of its
  own, so a Ctrl-C in the terminal reaches the launcher alone and the stop below happens in order.
- A component that dies is named with its exit status or signal and restarted with back-off; the
  others keep serving. A GPU worker refused because its node already has one is not restarted.
- SIGTERM, SIGINT or SIGHUP: SIGTERM to daphne and to the worker's leader (which finishes the unit
  on the GPU, at most DGX_STOP_GRACE seconds), then the simulator; anything still alive after its
  time is killed with its whole process group. The launcher exits once every child is gone.

Standard library only: it runs before anything could be imported from the project.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
MAX_RESTARTS = 5  # within RESTART_WINDOW seconds; then the component is left down, and said so
RESTART_WINDOW = 300.0
EXIT_NODE_BUSY = 3  # manage.py qcluster: another worker already serves this GPU node


def say(message: str) -> None:
    print(f"launcher: {message}", file=sys.stderr, flush=True)


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


@dataclass
class Component:
    name: str
    args: list[str]
    stop_timeout: float
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)
    given_up: bool = False
    restart_at: float | None = None

    def start(self) -> None:
        self.popen = subprocess.Popen(self.args, cwd=ROOT, env={**os.environ, **self.env}, start_new_session=True)
        say(f"started {self.name} (pid {self.popen.pid})")

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def terminate(self) -> None:
        if self.running():
            self.popen.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            say(f"{self.name} (pid {self.popen.pid}) did not stop in time; killing it")
        # Whatever it left behind in its session (a forked child) goes too.
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait()


class Launcher:
    def __init__(self) -> None:
        python = sys.executable
        port = os.environ.get("PORT", "8000")
        host = os.environ.get("HOST", "127.0.0.1")
        self.comfyui_url = os.environ.setdefault("COMFYUI_URL", "http://127.0.0.1:8188")
        grace = float(os.environ.get("DGX_STOP_GRACE", "30") or 30)
        self.web_url = f"http://{host}:{port}/"
        daphne = str(Path(python).with_name("daphne"))
        self.simulator: Component | None = None
        if not comfyui_answers(self.comfyui_url):
            sim_port = str(urlsplit(self.comfyui_url).port or 8188)
            say(f"no ComfyUI answers at {self.comfyui_url}: starting the ComfyUI simulator on port {sim_port}")
            self.simulator = Component("the ComfyUI simulator", [
                python, "manage.py", "comfyui_sim", "--host", "127.0.0.1", "--port", sim_port,
                "--step-ms", os.environ.get("SIM_STEP_MS", "50")], stop_timeout=10)
        self.worker = Component("the GPU worker (manage.py qcluster)", [python, "manage.py", "qcluster"],
                                stop_timeout=grace + 30)
        self.sprites = Component("the sprite worker (manage.py sprite_worker)",
                                 [python, "manage.py", "sprite_worker"], stop_timeout=15)
        self.webhooks = Component("the webhook worker (manage.py webhook_worker)",
                                  [python, "manage.py", "webhook_worker"], stop_timeout=15)
        self.gateway: Component | None = None
        if os.environ.get("DGX_ZMQ_REP"):
            args = [python, "manage.py", "zmq_gateway", "--rep", os.environ["DGX_ZMQ_REP"]]
            if os.environ.get("DGX_ZMQ_PUB"):
                args += ["--pub", os.environ["DGX_ZMQ_PUB"]]
            self.gateway = Component("the ZeroMQ gateway (manage.py zmq_gateway)", args, stop_timeout=10)
        self.web = Component("the web server (daphne)", [daphne, "-b", host, "-p", port, "dgxpixels.asgi:application"],
                             stop_timeout=10)
        self.stop_signal: int | None = None

    @property
    def components(self) -> list[Component]:
        return [c for c in (self.simulator, self.worker, self.sprites, self.webhooks, self.gateway, self.web)
                if c is not None]

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        for component in self.components:
            component.start()
        say(f"DGX Pixels: {self.web_url}  (admin: {self.web_url}admin/)  Ctrl-C stops everything.")
        while self.stop_signal is None:
            self._watch()
            time.sleep(0.2)
        return self._stop()

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def _watch(self) -> None:
        now = time.monotonic()
        for component in self.components:
            if component.given_up:
                continue
            if component.restart_at is not None:
                if now >= component.restart_at and self.stop_signal is None:
                    component.restart_at = None
                    component.start()
                continue
            if component.running():
                continue
            code = component.popen.returncode
            what = f"{component.name} (pid {component.popen.pid}) {describe(code)}"
            if component is self.worker and code == EXIT_NODE_BUSY:
                say(f"{what}: another GPU worker already serves this node (its message is above). "
                    f"Not restarting it; the dashboard keeps running.")
                component.given_up = True
                continue
            component.restarts = [t for t in component.restarts if now - t < RESTART_WINDOW] + [now]
            if len(component.restarts) > MAX_RESTARTS:
                say(f"{what}; it died {MAX_RESTARTS} times in {RESTART_WINDOW:.0f}s, so it stays down. "
                    f"The rest keeps running: read its output above, fix it, then restart ./scripts/run.sh.")
                component.given_up = True
                continue
            delay = 2 ** (len(component.restarts) - 1)
            say(f"{what}; its output is above. Restarting it in {delay}s "
                f"(restart {len(component.restarts)} of {MAX_RESTARTS}).")
            component.restart_at = now + delay

    def _stop(self) -> int:
        name = signal.Signals(self.stop_signal).name
        say(f"{name}: stopping the web server and the GPU worker (it finishes the unit on the GPU first)...")
        first = [c for c in (self.web, self.gateway, self.worker, self.sprites, self.webhooks) if c is not None]
        for component in first:
            component.terminate()
        for component in first:
            component.wait_or_kill(time.monotonic() + component.stop_timeout)
        if self.simulator is not None:  # last: the worker may still have been finishing a unit on it
            self.simulator.terminate()
            self.simulator.wait_or_kill(time.monotonic() + self.simulator.stop_timeout)
        say("every process has stopped.")
        return 0


def comfyui_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/system_stats", timeout=2):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(Launcher().run())
