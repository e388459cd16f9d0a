"""`manage.py sprite_worker`: finish images into sprites, off the GPU worker's path.

Run one beside each qcluster (the launcher of ./scripts/run.sh does); more than one may run, each
image is claimed by one. SIGTERM or SIGINT: the image in hand is finished, then it exits.
"""
from __future__ import annotations

from batches.cli import WorkerCommand
from batches.services.finishing import runner


class Command(WorkerCommand):
    help = ("Turn generated images into sprites (pixel grid, palette, transparency) as their jobs ask; "
            "runs until stopped (SIGTERM/SIGINT), or with --once until nothing is left.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="finish what is pending, then exit")

    def handle(self, *args, once: bool = False, **options):
        stop = self.stop_flag()
        if not once:
            self._say("sprite worker: finishing images as their jobs ask (Ctrl-C stops)")
        made = runner.run(stop=stop, once=once, say=self._say)
        self._say(f"sprite worker: {made} sprite(s) made; stopped.")
