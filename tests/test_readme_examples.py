"""Every `./dgx ...` example in README.md runs as written.

Each example's flags are parsed by its command's own parser, exactly as the README writes them
(placeholders like JOB_ID become an id); the wrapper itself is run for real, in subprocesses on
the test database, for a few examples that change nothing outside the test: the status, a
queued job (not waited for), a dry-run cleanup, and finishing two PNGs the test writes.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from PIL import Image as PILImage

from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
DGX = ROOT / "dgx"
PLACEHOLDERS = {"JOB_ID": "1", "JOB": "1", "LEVEL": "high", "[JOB_ID]": "1"}


def readme_examples() -> list[str]:
    """The `./dgx` commands in README.md's code blocks: comments dropped, continuations joined,
    `a && ./dgx b` split into its commands."""
    text = (ROOT / "README.md").read_text()
    examples = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:1] == ["./dgx"]:
                    examples.append(" ".join(shlex.quote(w) for w in words))
    return examples


EXAMPLES = readme_examples()


def test_the_readme_has_no_examples_left_that_bypass_the_wrapper():
    text = (ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M))
    assert "python manage.py" not in blocks and len(EXAMPLES) >= 15
    assert os.access(DGX, os.X_OK)


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_readme_example_names_a_command_whose_flags_parse(example):
    name, *args = shlex.split(example)[1:]
    commands = get_commands()
    assert name in commands, f"{example}: no command {name!r}"
    command = load_command_class(commands[name], name)
    parser = command.create_parser("dgx", name)
    args = [PLACEHOLDERS.get(a, a) for a in args]
    try:
        parser.parse_args(args)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{example}: its flags do not parse (exit {exc.code})")


@pytest.fixture
def dgx(worker_env, tmp_path):
    """Run `./dgx ...` for real from a folder of the test's, on the test database."""
    env = {**os.environ, **worker_env, "COMFYUI_URL": f"http://127.0.0.1:{free_port()}", "PYTHONUNBUFFERED": "1"}

    def run(command: str) -> subprocess.CompletedProcess:
        words = shlex.split(command)
        assert words[0] == "./dgx"
        return subprocess.run([str(DGX), *words[1:]], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=60)
    return run


def _pixel_art(seed: int) -> PILImage.Image:
    """A 16 x 16 sprite, three colours on a plain background, drawn at 4 screen pixels per art pixel."""
    import random

    rng = random.Random(seed)
    colours = [(20, 20, 30, 255), (200, 60, 50, 255), (60, 120, 220, 255)]
    small = PILImage.new("RGBA", (16, 16), (245, 245, 240, 255))
    for x in range(4, 12):
        for y in range(3, 13):
            small.putpixel((x, y), rng.choice(colours))
    return small.resize((64, 64), PILImage.NEAREST)


def _example(start: str) -> str:
    found = [e for e in EXAMPLES if e.startswith(start)]
    assert found, f"README.md has no example starting {start!r}"
    return found[0]


def test_the_wrapper_runs_four_readme_examples_for_real(dgx, tmp_path, django_user_model):
    from batches.models import Job

    django_user_model.objects.create_superuser("admin", password="pw")
    queued = dgx(_example("./dgx batch_generate --prompt 'pixel art warrior' --count 10") + " --json")
    assert queued.returncode == 0, queued.stderr
    job = Job.objects.get()
    assert job.prompts == ["pixel art warrior"] and job.count == 10 and job.status == Job.Status.QUEUED
    assert json.loads(queued.stdout)["id"] == job.pk

    status = dgx(_example("./dgx batch_status"))
    assert status.returncode == 0, status.stderr
    assert str(job.pk) in status.stdout

    cleanup = dgx(_example("./dgx batch_cleanup --older-than 30 --dry-run"))
    assert cleanup.returncode == 0, cleanup.stderr

    for name, seed in (("in.png", 1), ("other.png", 2)):
        _pixel_art(seed).save(tmp_path / name)
    finished = dgx(_example("./dgx sprite_finish in.png other.png"))
    assert finished.returncode == 0, finished.stderr
    assert (tmp_path / "sprites").is_dir() and len(list((tmp_path / "sprites").glob("*.png"))) == 2
