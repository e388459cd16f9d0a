"""Is everything in place to make images? `manage.py batch_doctor [--json]`.

The checks of `GET /healthz` (batches/services/health.py), for a person: one line per check,
and under each failure what to do. Exit code 0 when healthy, 1 otherwise; --json prints the same
document as /healthz.
"""
from __future__ import annotations

import sys

from batches import cli
from batches.services.health import health_report

ORDER = ("database", "comfyui", "workers", "disk", "models", "queue")


class Command(cli.CliCommand):
    help = ("Check the database, ComfyUI, the GPU workers, free disk space at OUTPUT_ROOT, the checkpoints "
            "and the queue, and say how to fix what fails. Exit code 0 when healthy, 1 otherwise.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the document GET /healthz answers")

    def handle(self, *args, **options) -> None:
        report = health_report()
        if options["json"]:
            self.write_json(report)
        else:
            self.stdout.write(self.render(report))
        if not report["ok"]:
            sys.exit(1)

    def render(self, report: dict) -> str:
        checks = report["checks"]
        names = [n for n in ORDER if n in checks] + [n for n in checks if n not in ORDER]
        lines = []
        for name in names:
            check = checks[name]
            mark = "ok  " if check["ok"] else "FAIL"
            lines.append(f"{mark}  {name:<9} {cli.printable(check['detail'])}")
            if not check["ok"] and check.get("fix"):
                lines.append(f"      {'':<9} fix: {cli.printable(check['fix'])}")
        failed = [n for n in names if not checks[n]["ok"]]
        lines.append("")
        lines.append("Healthy." if not failed else f"Not healthy: {', '.join(failed)} failed.")
        return "\n".join(lines)
