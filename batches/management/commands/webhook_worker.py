"""`manage.py webhook_worker`: deliver webhooks (job ended, progress, pings), off the GPU worker's path.

Runs until SIGTERM/SIGINT (the POST in hand finishes first), or with --once sends what is due and
exits (cron, tests). The logic is in batches/services/webhooks/.
"""
from __future__ import annotations

from datetime import timedelta

from batches.cli import WorkerCommand
from batches.services.webhooks import worker
from batches.services.webhooks.signing import secret_is_derived, signing_key


class Command(WorkerCommand):
    help = ("Send signed webhooks for job events (job.completed/partial/failed/cancelled, job.progress, ping) "
            "with retries and back-off; runs until stopped, or with --once until nothing is due.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="read new events, send what is due now, then exit")
        parser.add_argument("--interval", type=float, default=worker.SLEEP, metavar="SECONDS",
                            help=f"pause between passes (default {worker.SLEEP})")
        parser.add_argument("--reclaim-after", type=float, default=None, metavar="SECONDS",
                            help="take back a delivery left 'sending' this long by a worker that died "
                                 "(default: twice DGX_WEBHOOK_TIMEOUT plus 5)")
        parser.add_argument("--catch-up-hours", type=float, default=24.0, metavar="H",
                            help="on start, read the events of the last H hours again (default 24; deliveries "
                                 "already made are not repeated)")
        parser.add_argument("--show-secret", action="store_true",
                            help="print the signing key receivers verify with (useful when DGX_WEBHOOK_SECRET "
                                 "is empty and the key is derived from SECRET_KEY), then exit")

    def handle(self, *args, once=False, interval=worker.SLEEP, reclaim_after=None, catch_up_hours=24.0,
               show_secret=False, **options):
        if show_secret:
            self._say(signing_key())
            if secret_is_derived():
                self.stderr.write("(derived from SECRET_KEY; set DGX_WEBHOOK_SECRET to choose your own)")
            return
        stop = self.stop_flag()
        if not once:
            self._say("webhook worker: delivering webhooks (Ctrl-C stops)")
        made = worker.run(stop=stop, once=once, say=self._say, interval=max(0.05, interval),
                          reclaim=reclaim_after, catch_up=timedelta(hours=max(0.0, catch_up_hours)))
        self._say(f"webhook worker: {made} attempt(s) made; stopped.")
