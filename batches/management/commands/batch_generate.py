"""Queue a batch job: `manage.py batch_generate --prompt "pixel art warrior" --count 10 [--monitor]`."""
from __future__ import annotations

import sys
from pathlib import Path

from batches import cli, finish_flags
from batches.models import Priority, QueueControl
from batches.services import outputs
from batches.services.submission import BATCH_SIZES, LIMITS, SubmissionError, job_submit, parse_prompts_file

PRIORITIES = [p.label for p in sorted(Priority, reverse=True)]

# job_submit names fields after the model; the user typed flags.
FLAG_FOR_FIELD = {
    "count": "--count", "batch_size": "--batch-size", "steps": "--steps", "cfg": "--cfg-scale",
    "sampler": "--sampler", "scheduler": "--scheduler", "width": "--width", "height": "--height",
    "seed": "--seed", "negative_prompt": "--negative-prompt", "checkpoint": "--model", "lora": "--lora",
    "lora_strength": "--lora-strength", "lora_strength_clip": "--lora-strength", "profile": "--profile",
    "workflow": "--workflow", "priority": "--priority", "name": "--name", "compare": "--compare",
    "webhook_url": "--webhook",
}


def profile_choices() -> list[str] | None:
    """The profiles file's names, so --help lists them; None (any name) when the file is broken."""
    from batches.profiles import ProfileError, load_profiles

    try:
        return sorted(load_profiles().profiles)
    except ProfileError:
        return None  # job_submit reports the broken file under --profile


def read_prompts_file(path: str) -> list[str]:
    # At most the limit and one byte, as the form does: /dev/zero or a pipe that never ends must
    # not be read until memory runs out; one byte more is enough to say the file is too big.
    size = LIMITS["prompts_file_bytes"] + 1
    try:
        if path == "-":
            data = sys.stdin.buffer.read(size)
        else:
            with Path(path).open("rb") as file:
                data = file.read(size)
    except FileNotFoundError:
        raise cli.UsageError(f"--prompts-file: no file {path!r}: give the path of a text file, one prompt per line") from None
    except IsADirectoryError:
        raise cli.UsageError(f"--prompts-file: {path!r} is a folder: give a text file, one prompt per line") from None
    except OSError as exc:
        raise cli.UsageError(f"--prompts-file: cannot read {path!r} ({exc.strerror or exc}): check the path and its permissions") from None
    try:
        return parse_prompts_file(data, name=path if path != "-" else "standard input")
    except ValueError as exc:
        raise cli.UsageError(f"--prompts-file: {exc}") from None


def submission_error_line(exc: SubmissionError, *, prompts_flag: str) -> str:
    parts = []
    for field, messages in exc.errors.items():
        flag = prompts_flag if field == "prompts" else FLAG_FOR_FIELD.get(field) or \
            finish_flags.FLAG_FOR_FIELD.get(field, field)
        for message in messages:
            parts.append(f"{flag}: {message}")
    return "; ".join(parts) + " (nothing was queued)"


class Command(cli.CliCommand):
    help = ("Queue a batch job of prompts x count images. --monitor draws a progress bar until it is done; "
            "--wait blocks silently. Both exit with 0 completed, 1 failed, 2 partly failed, 3 cancelled; "
            "a usage mistake exits with 64 and nothing is queued.")

    def add_arguments(self, parser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--prompt", action="append", metavar="TEXT",
                            help="a prompt; repeat the flag for several prompts in one job")
        source.add_argument("--prompts-file", metavar="FILE",
                            help="UTF-8 text, one prompt per line ('#' comments and blank lines skipped; - reads stdin)")
        parser.add_argument("--count", type=cli.whole_number_arg, default=1, metavar="N", help="images per prompt (default 1)")
        parser.add_argument("--batch-size", type=cli.batch_size_arg, choices=(*BATCH_SIZES, "auto"),
                            metavar="{" + ",".join(map(str, BATCH_SIZES)) + ",auto}",
                            help="images per ComfyUI prompt (default: the profile's); auto: the largest "
                                 "size the GPU's free VRAM allows, chosen per unit")
        parser.add_argument("--priority", choices=PRIORITIES, help="queue priority (default: the profiles file's, normally 'normal')")
        parser.add_argument("--steps", type=cli.whole_number_arg, metavar="N", help="sampler steps (default: the profile's)")
        parser.add_argument("--cfg-scale", type=float, metavar="X", help="CFG scale (default: the profile's)")
        parser.add_argument("--sampler", metavar="NAME", help="ComfyUI sampler_name, e.g. euler_ancestral")
        parser.add_argument("--scheduler", metavar="NAME", help="ComfyUI scheduler, e.g. karras")
        parser.add_argument("--width", type=cli.whole_number_arg, metavar="PX", help="image width, a multiple of 8")
        parser.add_argument("--height", type=cli.whole_number_arg, metavar="PX", help="image height, a multiple of 8")
        parser.add_argument("--seed", type=cli.whole_number_arg, metavar="N",
                            help="base seed: unit N gets SEED+N, so a rerun makes the same images (default: random)")
        parser.add_argument("--negative-prompt", default="", metavar="TEXT")
        parser.add_argument("--model", metavar="CHECKPOINT", help="checkpoint file name (default: the workflow's)")
        parser.add_argument("--lora", metavar="NAME", help="LoRA file name")
        parser.add_argument("--lora-strength", type=float, metavar="X", help="LoRA strength (model and clip; default 1.0)")
        parser.add_argument("--profile", choices=profile_choices(),
                            help="speed, balanced, quality, animation or tileset: the defaults for all of the above")
        parser.add_argument("--workflow", metavar="NAME",
                            help="the name of an API-format workflow in workflows/ ('.json' optional; default "
                                 "batch_optimized); files elsewhere are refused: copy them into workflows/ first")
        parser.add_argument("--name", default="", metavar="TEXT", help="a name for the job")
        parser.add_argument("--webhook", metavar="URL",
                            help="POST a signed JSON message to this http(s) URL when the job ends (see README: Webhooks)")
        parser.add_argument("--user", metavar="NAME",
                            help="queue as this user (default: the Django user named like you, else the first superuser)")
        parser.add_argument("--monitor", action="store_true", help="draw a live progress bar until the job is done")
        parser.add_argument("--wait", action="store_true", help="block until the job is done; the exit code tells how it went")
        parser.add_argument("--json", action="store_true", help="print the job as JSON (after it is done with --wait/--monitor)")
        parser.add_argument("--compare", action="append", metavar="AXIS=V1,V2",
                            help="queue a comparison: one job per combination of the values (repeat for up to 3 "
                                 "axes: checkpoint, lora (none for no LoRA), lora_strength, cfg, sampler "
                                 "(sampler/scheduler), steps, suffix); same prompts and seeds in every cell")
        finish_flags.add_arguments(parser)

    def handle(self, *args, **options) -> None:
        if options["prompts_file"]:
            prompts, prompts_flag = read_prompts_file(options["prompts_file"]), "--prompts-file"
        else:
            prompts, prompts_flag = options["prompt"], "--prompt"
        if options["lora_strength"] is not None and not options["lora"]:
            raise cli.UsageError("--lora-strength: give --lora NAME as well (the strength belongs to a LoRA)")
        finish = finish_flags.finish_from(options)
        owner = cli.resolve_user(options["user"])
        params = dict(
            owner=owner, prompts=prompts, count=options["count"], profile=options["profile"],
                batch_size=options["batch_size"], steps=options["steps"], cfg=options["cfg_scale"],
                sampler=options["sampler"], scheduler=options["scheduler"], width=options["width"],
                height=options["height"], seed=options["seed"], negative_prompt=options["negative_prompt"],
                checkpoint=options["model"], lora=options["lora"], lora_strength=options["lora_strength"],
                workflow=options["workflow"], priority=options["priority"] or default_priority(),
                name=options["name"], finish=finish,
        )
        if options.get("webhook"):
            params["webhook_url"] = options["webhook"]
        try:
            if options["compare"]:
                return self.compare(params, options)
            job = job_submit(**params)
        except SubmissionError as exc:
            raise cli.UsageError(submission_error_line(exc, prompts_flag=prompts_flag)) from None

        as_json = options["json"]
        waiting = options["wait"] or options["monitor"]
        if not as_json:
            self.report_queued(job)
        if not waiting:
            if as_json:
                self.write_json(cli.job_payload(job))
            return

        monitor = cli.JobMonitor(self.stdout, [job.pk], show=options["monitor"] and not as_json)
        try:
            (job,) = monitor.run()
        except KeyboardInterrupt:
            self.stdout.write("")
            self.stderr.write(f"Stopped watching; job {job.pk} goes on. Cancel it with: manage.py batch_cancel {job.pk}")
            raise SystemExit(cli.EXIT_INTERRUPTED) from None
        if as_json:
            self.write_json(cli.job_payload(job, units=True))
        else:
            self.stdout.write(cli.summary_line(job))
            for line in cli.unit_errors(job):
                self.stdout.write(f"  {line}")
        code = cli.exit_code_for([job])
        if code:
            raise SystemExit(code)

    def compare(self, params: dict, options: dict) -> None:
        from batches.services import comparisons

        comparison = comparisons.comparison_submit(axes=options["compare"], **params)
        cells = list(comparison.cells.order_by("id"))
        if options["json"] and not (options["wait"] or options["monitor"]):
            self.write_json(comparisons.progress(comparison))
            return
        if not options["json"]:
            self.stdout.write(f"Queued comparison {comparison.pk}: {len(cells)} cells x {cells[0].images_planned} "
                              f"images, seed {comparison.base_seed} in every cell (jobs {cells[0].pk}-{cells[-1].pk}). "
                              f"Progress: manage.py batch_status c{comparison.pk}")
        if not (options["wait"] or options["monitor"]):
            return
        monitor = cli.JobMonitor(self.stdout, [c.pk for c in cells], show=options["monitor"] and not options["json"])
        try:
            done = monitor.run()
        except KeyboardInterrupt:
            self.stdout.write("")
            self.stderr.write(f"Stopped watching; comparison {comparison.pk} goes on.")
            raise SystemExit(cli.EXIT_INTERRUPTED) from None
        if options["json"]:
            self.write_json(comparisons.progress(comparison))
        code = cli.exit_code_for(done)
        if code:
            raise SystemExit(code)

    def report_queued(self, job) -> None:
        prompts = len(job.prompts)
        self.stdout.write(
            f"Queued job {job.pk} for {job.owner.get_username()}: {prompts} prompt{'s' * (prompts != 1)} x "
            f"{job.count} = {job.images_planned} images (profile {job.profile}, batch size {cli.batch_size_text(job)}, "
            f"{job.steps} steps, cfg {job.cfg:g}, priority {job.priority_name})."
        )
        self.stdout.write(f"Output: {outputs.job_dir(job)}")
        if QueueControl.is_paused():
            self.stdout.write("Note: the queue is paused; nothing runs until manage.py batch_queue --resume.")


def default_priority() -> str:
    from batches.profiles import ProfileError, load_profiles

    try:
        return load_profiles().default_priority
    except ProfileError:
        return "normal"
