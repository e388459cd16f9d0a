"""Show the queue: `manage.py batch_status [JOB_ID] [--watch] [--stats] [--all] [--json]`."""
from __future__ import annotations

import time

from django.db.models import Count
from django.utils import timezone

from batches import cli
from batches.models import Comparison, Job, QueueControl, WorkerNode
from batches.numbers import NumberError, parse_id
from batches.services import comparisons, finishing, outputs
from batches.services.rates import RateSnapshot
from batches.services.stats import queue_statistics

CLEAR = "\x1b[H\x1b[2J"
esc = cli.printable  # stored text as shown on a terminal
MAX_LIMIT = 10_000  # jobs listed with --all


def job_or_comparison_arg(value: str):
    """A job id, or cN / --comparison N: a comparison (its cells are jobs with ids of their own)."""
    import argparse

    text = value.strip()
    if text[:1] in ("c", "C"):
        try:
            return ("comparison", parse_id(text[1:], what="a comparison id"))
        except NumberError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return cli.job_id_arg(text)


def positive_seconds(value: str) -> float:
    import argparse

    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {value}")
    if number > 86400:  # also 'inf' and '1e400', which time.sleep() cannot take
        raise argparse.ArgumentTypeError(f"must be at most 86400 seconds (a day), got {value}")
    return number


class Command(cli.CliCommand):
    help = ("List the active jobs (--all: finished ones too), show one job by id, or the queue statistics "
            "(--stats). --watch redraws every --interval seconds until Ctrl-C (or, for one job, until it is done).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("job_id", nargs="?", type=job_or_comparison_arg, metavar="JOB_ID",
                            help="show this job in detail (cN: comparison N, as --comparison N)")
        parser.add_argument("--comparison", type=cli.job_id_arg, metavar="N",
                            help="show comparison N: each cell's progress (--json lists the cells)")
        parser.add_argument("--all", action="store_true", help="list finished jobs too (the newest 50)")
        parser.add_argument("--stats", action="store_true",
                            help="throughput, generation times, queue size, active jobs, nodes")
        parser.add_argument("--watch", action="store_true", help="redraw in place until Ctrl-C")
        parser.add_argument("--interval", type=positive_seconds, default=2.0, metavar="SECONDS",
                            help="seconds between --watch redraws (default 2)")
        parser.add_argument("--refreshes", type=cli.whole_number_arg, default=0, metavar="N",
                            help="with --watch: stop after N redraws (default: until Ctrl-C)")
        parser.add_argument("--limit", type=cli.whole_number_arg, default=50, metavar="N", help="jobs listed with --all (default 50)")
        parser.add_argument("--json", action="store_true",
                            help="machine-readable output (with --watch: one JSON document per line)")

    def handle(self, *args, job_id=None, **options) -> None:
        if isinstance(job_id, tuple):
            job_id, options["comparison"] = None, job_id[1]
        comparison = self.get_comparison(options["comparison"]) if options["comparison"] else None
        if job_id is not None and (options["stats"] or options["all"]):
            flag = "--stats" if options["stats"] else "--all"
            raise cli.UsageError(f"{flag}: not with a JOB_ID: give either a job id or {flag}")
        if options["refreshes"] < 0 or not 1 <= options["limit"] <= MAX_LIMIT:
            flag = "--refreshes" if options["refreshes"] < 0 else "--limit"
            raise cli.UsageError(f"{flag}: must be a positive number" + (f" up to {MAX_LIMIT}" if flag == "--limit" else ""))
        job = cli.get_job(job_id) if job_id is not None else None
        as_json = options["json"]

        def render() -> tuple[str, bool]:
            """The text (or JSON) to show now, and whether there is nothing left to watch."""
            if comparison is not None:
                data = comparisons.progress(comparison)
                return (cli.to_json(data, indent=None if options["watch"] else 2) if as_json
                        else self.comparison_detail(comparison, data)), data["done"]
            if job is not None:
                current = cli.get_job(job.pk)
                data = cli.job_payload(current, units=True)
                return (cli.to_json(data, indent=None if options["watch"] else 2) if as_json
                        else self.job_detail(current)), cli.is_done(current)
            if options["stats"]:
                data = {**queue_statistics(), "paused": QueueControl.is_paused()}
                return (cli.to_json(data, indent=None if options["watch"] else 2) if as_json
                        else self.statistics(data)), False
            jobs = self.jobs(all_jobs=options["all"], limit=options["limit"])
            if as_json:
                # One snapshot: the jobs, the queue and the nodes report the same rates as the pages.
                rates = RateSnapshot()
                data = {"jobs": [cli.job_payload(j, rates=rates) for j in jobs], "paused": QueueControl.is_paused(),
                        "queue": rates.queue().as_dict(),
                        "nodes": [{"name": name, **rates.node(name).as_dict()}
                                  for name in WorkerNode.objects.order_by("name").values_list("name", flat=True)]}
                return cli.to_json(data, indent=None if options["watch"] else 2), False
            return self.job_table(jobs, all_jobs=options["all"]), False

        if not options["watch"]:
            self.stdout.write(render()[0])
            return

        tty = self.stdout.isatty() and not as_json
        shown = 0
        try:
            while True:
                text, finished = render()
                if tty:
                    self.stdout.write(CLEAR + text, ending="\n")
                elif as_json:
                    self.stdout.write(text)
                else:
                    stamp = timezone.localtime().strftime("%H:%M:%S")
                    self.stdout.write(f"--- {stamp} ---\n{text}")
                self.stdout.flush()
                shown += 1
                if finished or (options["refreshes"] and shown >= options["refreshes"]):
                    return
                time.sleep(options["interval"])
        except KeyboardInterrupt:
            self.stdout.write("")

    # --- views ---------------------------------------------------------------------------------
    def jobs(self, *, all_jobs: bool, limit: int) -> list[Job]:
        qs = Job.objects.select_related("owner")
        if all_jobs:
            return list(qs.order_by("-created_at", "-id")[:limit])
        # Active jobs in the order the worker takes them.
        return list(qs.filter(status__in=Job.ACTIVE).order_by("-priority", "id"))

    def job_table(self, jobs: list[Job], *, all_jobs: bool) -> str:
        lines = []
        if jobs:
            rates = RateSnapshot()
            lines.append(cli.table(cli.TABLE_COLUMNS, [cli.job_row(j, rates=rates) for j in jobs]))
        else:
            lines.append("No jobs yet." if all_jobs else "No active jobs (--all shows finished jobs too).")
        counts = dict(Job.objects.filter(status__in=Job.ACTIVE).values_list("status").annotate(n=Count("id")))
        running, queued = counts.get(Job.Status.RUNNING, 0), counts.get(Job.Status.QUEUED, 0)
        footer = f"{running + queued} active job{'s' * (running + queued != 1)} ({running} running, {queued} queued)"
        control = QueueControl.objects.filter(pk=1, paused=True).first()
        if control:
            footer += f"; the queue is PAUSED{f' by {control.paused_by}' if control.paused_by else ''}"
        lines.append(footer + ".")
        lines.extend(self.outage_lines())
        return "\n".join(lines)

    def get_comparison(self, pk: int) -> Comparison:
        found = Comparison.objects.filter(pk=pk).first()
        if found is None:
            raise cli.UsageError(f"--comparison: no comparison {pk}: see the comparisons on the dashboard")
        return found

    def comparison_detail(self, comparison: Comparison, data: dict) -> str:
        axes = "; ".join(f"{a['axis']}: {', '.join(map(str, a['values']))}" for a in comparison.axes)
        fraction = data["images_done"] / data["images_planned"] if data["images_planned"] else 0.0
        lines = [f"Comparison {comparison.pk}{f' ({esc(comparison.name)})' if comparison.name else ''}: "
                 f"{len(data['cells'])} cells, seed {comparison.base_seed}",
                 f"  axes     {esc(axes)}",
                 f"  {cli.bar(fraction)} {data['images_done']}/{data['images_planned']} images"]
        for cell in data["cells"]:
            lines.append(f"  job {cell['job']:<6} {cell['status']:<10} {cell['images_done']:>4}/{cell['images_planned']:<4} "
                         f"{esc(comparisons.label(cell['cell'] or {}))}")
        return "\n".join(lines)

    def outage_lines(self) -> list[str]:
        lines = []
        for node in WorkerNode.objects.filter(comfyui_ok=False).order_by("name"):
            since = timezone.localtime(node.unreachable_since).strftime("%Y-%m-%d %H:%M:%S") if node.unreachable_since else "?"
            lines.append(f"ComfyUI unreachable since {since} (node {esc(node.name)}, {esc(node.comfyui_url)}): "
                         f"{esc(node.last_error or 'no answer')}; units wait and resume by themselves.")
        for node in WorkerNode.objects.exclude(hold_reason="").order_by("name"):
            lines.append(f"Node {esc(node.name)} claims nothing new: {esc(node.hold_reason)}. "
                         f"The running unit finishes; work resumes by itself once space is freed.")
        return lines

    def job_detail(self, job: Job) -> str:
        # Text from the rows is escaped: a name or prompt stored with ESC must not drive the terminal.
        prompts = len(job.prompts)
        params = [f"{job.steps} steps", f"cfg {job.cfg:g}", esc(f"{job.sampler}/{job.scheduler}"),
                  f"{job.width}x{job.height}", f"batch size {cli.batch_size_text(job)}",
                  f"seed {job.base_seed if job.base_seed is not None else 'random'}"]
        if job.checkpoint:
            params.append(f"model {esc(job.checkpoint)}")
        if job.lora:
            params.append(f"lora {esc(job.lora)} @ {job.lora_strength_model:g}")
        lines = [
            f"Job {job.pk}{f' ({esc(job.name)})' if job.name else ''}: {job.status}",
            f"  owner {esc(job.owner.get_username())}, priority {job.priority_name}, profile {esc(job.profile)}, "
            f"workflow {esc(job.workflow)}",
            f"  {prompts} prompt{'s' * (prompts != 1)} x {job.count} images: {', '.join(params)}",
            f"  {cli.progress_line(job)}",
        ]
        for label, value in (("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at)):
            if value:
                lines.append(f"  {label:<9}{timezone.localtime(value):%Y-%m-%d %H:%M:%S}")
        lines.append(f"  output   {outputs.job_dir(job)}")
        lines.append(f"  sprites  {self.sprites_line(job)}")
        units = dict(job.units.values_list("status").annotate(n=Count("id")))
        lines.append("  units    " + ", ".join(f"{n} {status}" for status, n in sorted(units.items())))
        for line in cli.unit_errors(job, limit=5):
            lines.append(f"    {line}")
        if job.error:
            lines.append(f"  note     {esc(job.error)}")
        for text in job.prompts[:5]:
            lines.append(f"  prompt   {esc(text)}")
        if prompts > 5:
            lines.append(f"  ... and {prompts - 5} more prompts")
        if job.is_active:
            lines.extend(self.outage_lines())
        return "\n".join(lines)

    def sprites_line(self, job: Job) -> str:
        if not job.finish:
            return "none (made without finishing)"
        counts = finishing.sprite_counts([job.pk]).get(job.pk, {"done": 0, "open": 0, "failed": 0})
        state = f"finishing {counts['done']}/{counts['done'] + counts['open'] + counts['failed']}" \
            if counts["open"] else f"{counts['done']} made"
        failed = f", {counts['failed']} failed" if counts["failed"] else ""
        return f"{state}{failed} ({esc(finishing.describe(job.finish))})"

    def statistics(self, stats: dict) -> str:
        times = stats["generation_times"]
        avg = stats["average_generation_time"]
        lines = [
            "Queue statistics",
            f"  throughput         {stats['throughput_per_minute']:.1f} images/min (last 10 minutes)",
            f"  images made        {stats['images_total']}",
            "  generation time    " + (
                f"{avg:.2f} s/image average, {min(times):.2f} fastest, {max(times):.2f} slowest "
                f"(last {len(times)} images)" if times else "no images yet"),
            f"  queue size         {stats['queue_size']} unit{'s' * (stats['queue_size'] != 1)} pending "
            f"({stats['images_queued']} images to make)",
            f"  active jobs        {stats['active_jobs']} ({stats['running_jobs']} running)",
            f"  failed units       {stats['units_failed']}",
            "  jobs by status     " + (", ".join(f"{s} {n}" for s, n in sorted(stats["jobs_by_status"].items()))
                                      or "none"),
            f"  queue              {'PAUSED' if stats['paused'] else 'running'}",
        ]
        if stats["by_profile_and_batch_size"]:
            lines.append("  by profile and batch size")
            for profile, sizes in sorted(stats["by_profile_and_batch_size"].items()):
                for size, row in sorted(sizes.items()):
                    rate = f", {row['images_per_minute']:.1f} images/min" if row["images_per_minute"] else ""
                    lines.append(f"    {profile:<10} batch {size}: {row['images']} images, "
                                 f"{row['seconds_per_image']:.2f} s/image{rate}")
        if stats["nodes"]:
            lines.append("  GPU nodes")
            now = timezone.now()
            for node in stats["nodes"]:
                beat = f"{(now - node['heartbeat_at']).total_seconds():.0f}s ago" if node["heartbeat_at"] else "never"
                health = "ok" if node["comfyui_ok"] else "UNREACHABLE"
                vram = f", {node['vram_free'] / 1024 ** 3:.1f} GB free" if node["vram_free"] else ""
                unit = node.get("current_unit")
                running = f", running job {unit['job']} unit {unit['index']}" if unit else ", idle"
                if node.get("hold_reason"):
                    running += f", HOLDING: {esc(node['hold_reason'])}"
                lines.append(f"    {node['name']:<12} {node['comfyui_url']}  {health}, heartbeat {beat}{vram}{running}, "
                             f"{node['images_per_minute']:.1f} img/min, {node['images_made']} images")
        return "\n".join(lines)

