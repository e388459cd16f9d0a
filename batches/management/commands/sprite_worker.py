"""`manage.py sprite_worker`: finish images into sprites, off the GPU worker's path.

Run one beside each qcluster (the launcher of ./scripts/run.sh does); more than one may run, each
image is claimed by one. SIGTERM or SIGINT: the image in hand is finished, then it exits.
"""
from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from batches.checks import COMMAND_CHECKS
from batches.services.finishing import runner


class Command(BaseCommand):
    requires_system_checks = COMMAND_CHECKS  # the secret key only (batches/checks.py)
    help = ("Turn generated images into sprites (pixel grid, palette, transparency) as their jobs ask; "
            "runs until stopped (SIGTERM/SIGINT), or with --once until nothing is left.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="finish what is pending, then exit")

    def handle(self, *args, once: bool = False, **options):
        stopping = []

        def stop(signum, frame):
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if not once:
            self._say("sprite worker: finishing images as their jobs ask (Ctrl-C stops)")
        made = runner.run(stop=lambda: bool(stopping), once=once, say=self._say)
        self._say(f"sprite worker: {made} sprite(s) made; stopped.")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
