from __future__ import annotations

import pytest

from tests.processes import start_simulator


@pytest.fixture
def simulator(tmp_path):
    """A real ComfyUI simulator subprocess on a free port; yields its base URL."""
    proc, url = start_simulator(tmp_path)
    yield url
    proc.stop()


@pytest.fixture
def simulator_factory(tmp_path):
    """Start simulators with custom flags: `proc, url = simulator_factory("--step-ms", "250")`."""
    procs = []

    def start(*extra: str, **kwargs):
        proc, url = start_simulator(tmp_path, *extra, **kwargs)
        procs.append(proc)
        return proc, url

    yield start
    for proc in procs:
        proc.stop()
