"""`python -m batches.comfyui_sim [flags]`: the simulator without loading Django's apps.

The same flags and checks as `manage.py comfyui_sim` (its Command parses and runs them); the
simulator itself needs no settings or database, and skipping Django's set-up starts it in about a
third of the time, which the tests and benchmarks, starting hundreds of simulators, notice.
"""
from __future__ import annotations

import argparse
import sys

from django.core.management.base import CommandError

from batches.management.commands.comfyui_sim import Command


def main(argv: list[str] | None = None) -> int:
    command = Command()
    parser = argparse.ArgumentParser(prog="python -m batches.comfyui_sim", description=command.help)
    command.add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        command.handle(**options)
    except CommandError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
