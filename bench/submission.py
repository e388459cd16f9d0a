"""Figure 3, submission: time until a 1000-prompt x 8-image job is accepted (queued and committed).

Through the three doors, each timed from the call to its answer:

* service: `job_submit(...)` in this process (ComfyUI checkpoint check on, the worker nudge on);
* form view: POST /jobs/new/ through Django's test Client, until the redirect to the job page;
* CLI: `manage.py batch_generate --prompts-file F --count 8` called in this process
  (call_command), and as a real subprocess (which adds Python's and Django's start-up).

Baseline, same run, same doors: a 1-prompt x 1-image job. Every figure is the median of
--repeat runs. A simulator answers at COMFYUI_URL, as in production, so the form and the
service check the checkpoint name against it (answers are cached for 30 s, as they are live).

Target (issue 8): < 1 s to accepted.
"""
from __future__ import annotations

import io

from bench.common import CHECKPOINT_A, Table, Timer, Workspace, header, make_user, median, verdict

TARGET_S = 1.0


def add_arguments(parser) -> None:
    parser.add_argument("--prompts", type=int, default=1000, help="prompts in the big job (1000)")
    parser.add_argument("--count", type=int, default=8, help="images per prompt (8)")
    parser.add_argument("--batch-sizes", default="1,8",
                        help="comma list of batch sizes for the big job (1,8): 1 is the worst case, one unit "
                             "per image (8 000 units); 8 makes 1 000 units")
    parser.add_argument("--repeat", type=int, default=3, help="runs per door and size; the median is shown (3)")
    parser.add_argument("--no-subprocess", action="store_true", help="skip the CLI-as-a-subprocess door")


def main(args) -> list[tuple[str, bool | None]]:
    header("Figure 3: submission, time to accepted", {
        "job": f"{args.prompts} prompts x {args.count} images", "batch sizes": args.batch_sizes,
        "repeat": args.repeat,
    })
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    ws = Workspace("submission", keep=args.keep)
    try:
        sim, url = ws.simulator(step_ms=1)
        ws.activate(COMFYUI_URL=url)
        from django.core.management import call_command
        from django.test import Client

        from batches.models import Job, Unit
        from batches.services.submission import job_submit

        user = make_user()
        client = Client()
        client.force_login(user)
        client.get("/jobs/new/")  # warm: templates, the ComfyUI offer cache

        sizes = {"baseline": (["pixel art baseline sprite"], 1),
                 "big": ([f"pixel art sprite number {i}, 16-bit, side view" for i in range(args.prompts)],
                         args.count)}
        files = {}
        for key, (prompts, _) in sizes.items():
            path = ws.dir / f"prompts-{key}.txt"
            path.write_text("\n".join(prompts) + "\n")
            files[key] = path

        def expect_units(job_id: int, prompts: list[str], count: int, batch: int) -> None:
            units = Unit.objects.filter(job_id=job_id).count()
            want = len(prompts) * -(-count // batch)
            if units != want:
                raise RuntimeError(f"job {job_id} has {units} units, expected {want}")

        def via_service(key, batch):
            prompts, count = sizes[key]
            with Timer() as t:
                job = job_submit(owner=user, prompts=prompts, count=count, batch_size=batch,
                                 checkpoint=CHECKPOINT_A, priority="normal", wake=True)
            expect_units(job.pk, prompts, count, batch)
            return t.wall

        def via_form(key, batch):
            prompts, count = sizes[key]
            data = {"prompts": "\n".join(prompts), "count": str(count), "profile": "balanced",
                    "batch_size": str(batch), "steps": "20", "cfg": "8", "sampler": "euler_ancestral",
                    "scheduler": "karras", "width": "1024", "height": "1024", "checkpoint": CHECKPOINT_A,
                    "workflow": "batch_optimized", "priority": "normal", "lora_strength": "1.0"}
            last = Job.objects.order_by("-id").values_list("id", flat=True).first() or 0
            with Timer() as t:
                response = client.post("/jobs/new/", data)
            if response.status_code != 302:
                raise RuntimeError(f"POST /jobs/new/ answered {response.status_code}: "
                                   f"{response.content[:2000].decode(errors='replace')}")
            job_id = Job.objects.filter(id__gt=last).order_by("-id").values_list("id", flat=True).first()
            expect_units(job_id, prompts, count, batch)
            return t.wall

        def cli_args(key, count, batch):
            return ["--prompts-file", str(files[key]), "--count", str(count), "--batch-size", str(batch),
                    "--model", CHECKPOINT_A, "--user", user.username]

        def via_call_command(key, batch):
            prompts, count = sizes[key]
            with Timer() as t:
                call_command("batch_generate", *cli_args(key, count, batch), stdout=io.StringIO())
            expect_units(Job.objects.order_by("-id").first().pk, prompts, count, batch)
            return t.wall

        def via_subprocess(key, batch):
            prompts, count = sizes[key]
            result, wall = ws.manage("batch_generate", *cli_args(key, count, batch), COMFYUI_URL=url)
            if result.returncode != 0:
                raise RuntimeError(f"batch_generate failed ({result.returncode}): {result.stderr or result.stdout}")
            expect_units(Job.objects.order_by("-id").first().pk, prompts, count, batch)
            return wall

        doors = [
            ("service: job_submit()", via_service),
            ("form view: POST /jobs/new/", via_form),
            ("CLI: batch_generate (call_command)", via_call_command),
        ]
        if not args.no_subprocess:
            doors.append(("CLI: manage.py batch_generate (process)", via_subprocess))

        table = Table("Time to accepted (median seconds)",
                      ["door", "batch", "units", "1 x 1 baseline s", f"{args.prompts} x {args.count} s", "ratio",
                       "minus baseline s", "target", "verdict"])
        results = []
        for label, run in doors:
            base = median([run("baseline", 1) for _ in range(args.repeat)])
            for batch in batch_sizes:
                big = median([run("big", batch) for _ in range(args.repeat)])
                ok = big < TARGET_S
                results.append((f"submission via {label}, {args.prompts}x{args.count} at batch {batch}: < 1 s", ok))
                table.add(label, batch, args.prompts * -(-args.count // batch), base, big, big / base, big - base,
                          "< 1 s", verdict(ok))
        total_units = Unit.objects.count()
        table.note(f"{Job.objects.count()} jobs and {total_units:,} units in the database by the end; "
                   f"the process door includes starting Python and Django (its 1 x 1 baseline is mostly that); "
                   f"'minus baseline' is the time the job's size adds")
        table.print()
        return results
    finally:
        ws.close()
