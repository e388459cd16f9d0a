"""Helpers for the production-mode tests (tests/test_production.py, tests/browser/test_production_browser.py):
environments with DEBUG off, and one `manage.py collectstatic` shared by the whole pytest run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import MANAGE, ROOT

GOOD_KEY = "production-test-key-9b1e5c7a3f2d8e6b4a0c9f1d7e3b5a2c8f6d4e0b1a9c7e5"
_collected: dict[str, Path] = {}


def debug_off_env(**overrides: str) -> dict[str, str]:
    """This process's environment with DEBUG explicitly off (a developer's DJANGO_DEBUG=1 does not
    leak in); an override whose value is None removes the variable."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_DEBUG": "0"}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, MANAGE, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def collect_static(root: Path) -> Path:
    """`manage.py collectstatic` into `root` once per pytest run (about 10 s: hashing and gzip)."""
    if "root" not in _collected:
        result = manage("collectstatic", "--noinput", "-v0", env=debug_off_env(DJANGO_STATIC_ROOT=str(root)),
                        timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (root / "staticfiles.json").is_file()
        _collected["root"] = root
    return _collected["root"]


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory) -> Path:
    """A STATIC_ROOT that `collectstatic` filled: hashed names, .gz copies, staticfiles.json."""
    if "root" in _collected:
        return _collected["root"]
    return collect_static(tmp_path_factory.mktemp("staticfiles"))
