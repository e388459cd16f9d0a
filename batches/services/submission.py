"""Submitting a job: validate everything first, then write the job and its units in one go."""
from __future__ import annotations

import difflib
import logging
import math
import random
import re
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from batches.models import Job, Priority, Unit
from batches.numbers import NumberError, parse_int

log = logging.getLogger("batches.submission")

BATCH_SIZES = (1, 4, 8)
AUTO = "auto"  # batch size "auto": each unit runs at what the free VRAM allows (services/auto_batch)


def is_auto(value) -> bool:
    return isinstance(value, str) and value.strip().lower() == AUTO
LIMITS = {
    "prompts": 5000,  # prompts per job
    "prompt_length": 2000,  # characters per prompt
    "count": 1000,  # images per prompt
    "images": 100_000,  # images per job
    "steps": (1, 150),
    "cfg": (0.0, 30.0),
    "width": (64, 4096),
    "height": (64, 4096),
    "multiple": 8,
    "lora_strength": (-10.0, 10.0),
    "denoise": (0.0, 1.0),
    "seed": (0, 2**53),
    "prompts_file_bytes": 2 * 1024 * 1024,
}
SEED_SPACE = 2**32
# C0 controls but tab and newline, DEL and C1: ESC, BEL or CSI in a name or prompt would reach the
# operator's terminal (batch_status) and the logs as commands, not text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def control_character(text: str) -> str | None:
    """The first control character a text field refuses, as U+XXXX; None when there is none."""
    found = _CONTROL.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def _text(value) -> str:
    """A text field's value, stripped, with Windows line breaks (a browser's textarea) as newlines."""
    return str(value).replace("\r\n", "\n").strip() if value is not None else ""


class SubmissionError(ValueError):
    """Every problem with a submission, by field, each saying what to do."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        lines = [f"{field}: {msg}" for field, msgs in errors.items() for msg in msgs]
        super().__init__("The job was not queued:\n" + "\n".join(f"  - {line}" for line in lines))


@dataclass
class _Checker:
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def integer(self, name: str, value, *, low: int, high: int, allowed: tuple[int, ...] | None = None):
        if value is None or value == "":
            return None
        try:
            number = parse_int(value, field=name)  # ASCII digits only: int() also reads '٣' and '1_0'
        except NumberError as exc:
            self.add(name, str(exc))
            return None
        if allowed is not None and number not in allowed:
            self.add(name, f"must be one of {', '.join(map(str, allowed))}, got {number}")
            return None
        if not low <= number <= high:
            self.add(name, f"must be between {low} and {high}, got {number}")
            return None
        return number

    def number(self, name: str, value, *, low: float, high: float):
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            self.add(name, f"expected a number, got {value!r}")
            return None
        try:
            number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
        except ValueError:
            self.add(name, f"expected a number, got {value!r}")
            return None
        if math.isnan(number) or not low <= number <= high:
            self.add(name, f"must be between {low:g} and {high:g}, got {value}")
            return None
        return number


def parse_prompts_file(data: bytes, *, name: str = "prompts file") -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    if len(data) > LIMITS["prompts_file_bytes"]:
        raise ValueError(
            f"{name} is {len(data):,} bytes; the limit is {LIMITS['prompts_file_bytes']:,}: split it into several jobs"
        )
    if b"\x00" in data:
        raise ValueError(f"{name} looks binary (it contains NUL bytes): give a UTF-8 text file, one prompt per line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{name} is not UTF-8 text (bad byte at line {line}): save it as UTF-8") from None
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ValueError(f"{name} has no prompts: write one prompt per line")
    return prompts


def _limits(config) -> dict:
    """The limits of the profiles file (the one place a studio edits them), over our defaults."""
    q = config.queue.limits
    return {**LIMITS, "prompts": q.max_prompts_per_job, "prompt_length": q.max_prompt_length,
            "count": q.max_count_per_prompt, "steps": (q.steps.min, q.steps.max),
            "cfg": (q.cfg.min, q.cfg.max), "width": (q.width.min, q.width.max),
            "height": (q.height.min, q.height.max), "multiple": q.size_multiple_of}


def _available(kind: str, client) -> list[str] | None:
    """What ComfyUI offers (cached briefly), or None when it does not answer."""
    if client is None:
        return None
    cache = _available.__dict__.setdefault("cache", {})
    key = (client.base_url, kind)
    hit = cache.get(key)
    if hit and time.monotonic() - hit[0] < 30:
        return hit[1]
    try:
        values = getattr(client, kind)()
    except Exception as exc:  # unreachable ComfyUI must not block submission
        log.info("could not list %s from ComfyUI: %s", kind, exc)
        return None
    cache[key] = (time.monotonic(), values)
    return values


def default_client():
    from batches.comfyui import ComfyUIClient

    return ComfyUIClient(settings.COMFYUI_URL, timeout=2.0, retries=0)


def job_submit(*, owner, client="default", wake: bool = True, **params) -> Job:
    """Validate a submission completely, then queue it as one job with its units.

    Raises SubmissionError listing every problem at once; nothing is written then. The
    parameters are check_job's.
    """
    job = write_job(check_job(owner=owner, client=client, **params))
    announce_job(job)
    if wake:
        from batches.tasks import wake_workers

        transaction.on_commit(wake_workers)
    return job


def check_job(
    *,
    owner,
    prompts: list[str] | str | None = None,
    count=1,
    profile: str | None = None,
    batch_size=None,
    steps=None,
    cfg=None,
    sampler: str | None = None,
    scheduler: str | None = None,
    width=None,
    height=None,
    seed=None,
    negative_prompt: str = "",
    checkpoint: str | None = None,
    lora: str | None = None,
    lora_strength=None,
    lora_strength_clip=None,
    denoise=None,
    workflow: str | None = None,
    priority="normal",
    name: str = "",
    client="default",
    finish: dict | bool | None = None,
    webhook_url: str | None = None,
) -> dict:
    """Check a submission completely; return the new job's fields, or raise SubmissionError
    listing every problem at once (nothing is written either way).
    `client` is the ComfyUI client used to check checkpoint and LoRA names ("default": the
    configured COMFYUI_URL; None: skip the check). `finish`: None takes the profile's finishing,
    False makes no sprites, True the profile's (or the defaults), a dict changes the profile's.
    """
    from batches.profiles import ProfileError, load_profiles
    from batches.workflows import WorkflowError, check_injectable, load_workflow

    check = _Checker()
    try:
        limits = _limits(load_profiles())
    except ProfileError:
        limits = LIMITS

    # Prompts
    if isinstance(prompts, str):
        prompts = [prompts]
    prompt_list: list[str] = []
    if not prompts:
        check.add("prompts", "give at least one prompt (--prompt TEXT or --prompts-file FILE)")
    else:
        for i, text in enumerate(prompts, start=1):
            text = _text(text)
            where = f"prompt {i}" if len(prompts) > 1 else "the prompt"
            if not text:
                check.add("prompts", f"{where} is empty: write what the sprite should show")
            elif len(text) > limits["prompt_length"]:
                check.add("prompts", f"{where} is {len(text)} characters; the limit is {limits['prompt_length']}: shorten it")
            elif bad := control_character(text):
                check.add("prompts", f"{where} contains a control character ({bad}): remove it")
            else:
                prompt_list.append(text)
        if len(prompts) > limits["prompts"]:
            check.add("prompts", f"{len(prompts)} prompts; the limit is {limits['prompts']} per job: split the file")
    negative_prompt = _text(negative_prompt)
    if len(negative_prompt) > limits["prompt_length"]:
        check.add("negative_prompt", f"is {len(negative_prompt)} characters; the limit is {limits['prompt_length']}")
    name = _text(name)
    name_limit = Job._meta.get_field("name").max_length
    if len(name) > name_limit:
        check.add("name", f"is {len(name):,} characters; the limit is {name_limit}")

    # Profile: the defaults for everything not given
    prof = None
    try:
        config = load_profiles()
    except ProfileError as exc:
        check.add("profile", str(exc))
        config = None
    profile = (profile or (config.default_profile if config else "balanced")).strip()
    if config is not None:
        prof = config.profiles.get(profile)
        if prof is None:
            check.add("profile", f"unknown profile {profile!r}: choose one of {', '.join(sorted(config.profiles))}")

    count_n = check.integer("count", count, low=1, high=limits["count"])
    if count in (None, ""):
        check.add("count", "give how many images per prompt (1 or more)")
    batch_auto = is_auto(batch_size)
    batch_n = None if batch_auto else check.integer("batch_size", batch_size, low=1, high=8, allowed=BATCH_SIZES)
    if isinstance(batch_size, str) and not batch_auto and check.errors.get("batch_size"):
        check.errors["batch_size"][-1] += " (or auto: the largest size the free VRAM allows, per unit)"
    steps_n = check.integer("steps", steps, low=limits["steps"][0], high=limits["steps"][1])
    cfg_n = check.number("cfg", cfg, low=limits["cfg"][0], high=limits["cfg"][1])
    width_n = check.integer("width", width, low=limits["width"][0], high=limits["width"][1])
    height_n = check.integer("height", height, low=limits["height"][0], high=limits["height"][1])
    multiple = limits["multiple"]
    for label, value in (("width", width_n), ("height", height_n)):
        if value is not None and value % multiple:
            check.add(label, f"must be a multiple of {multiple} (SDXL latents are 1/8 size), got {value}")
    seed_n = check.integer("seed", seed, low=limits["seed"][0], high=limits["seed"][1])
    strength_n = check.number("lora_strength", lora_strength, low=limits["lora_strength"][0], high=limits["lora_strength"][1])
    strength_clip_n = check.number("lora_strength_clip", lora_strength_clip, low=limits["lora_strength"][0], high=limits["lora_strength"][1])
    denoise_n = check.number("denoise", denoise, low=limits["denoise"][0], high=limits["denoise"][1])

    try:
        priority_v = Priority.from_name(priority) if not isinstance(priority, int) else Priority(priority)
    except ValueError:
        check.add("priority", f"unknown priority {priority!r}: choose urgent, high, normal or low")
        priority_v = Priority.NORMAL

    if prompt_list and count_n and len(prompt_list) * count_n > limits["images"]:
        check.add("count", f"{len(prompt_list)} prompts x {count_n} = {len(prompt_list) * count_n:,} images; "
                           f"the limit is {limits['images']:,} per job: lower the count or split the prompts")

    sampler = (sampler or "").strip() or (prof.sampler if prof else None)
    scheduler = (scheduler or "").strip() or (prof.scheduler if prof else None)
    checkpoint = (checkpoint or "").strip() or None
    lora = (lora or "").strip() or None

    # Workflow
    workflow = (workflow or "batch_optimized").strip()
    for label, value in (("negative_prompt", negative_prompt), ("name", name), ("checkpoint", checkpoint),
                         ("lora", lora), ("sampler", sampler), ("scheduler", scheduler), ("workflow", workflow)):
        if bad := control_character(value or ""):
            check.add(label, f"contains a control character ({bad}): remove it")
    graph = None
    try:
        wf = load_workflow(workflow)
        graph, workflow_source = wf.graph, wf.source
        workflow = wf.name  # stored as its name in the workflows folder, however it was written
    except WorkflowError as exc:
        check.add("workflow", str(exc))

    # Models offered by ComfyUI (checked only when it answers)
    if client == "default":
        client = default_client()
    if checkpoint:
        offered = _available("checkpoints", client)
        if offered is not None and checkpoint not in offered:
            check.add("checkpoint", f"ComfyUI has no checkpoint {checkpoint!r}: choose one of {', '.join(offered) or '(none installed)'}")
    if lora:
        offered = _available("loras", client)
        if offered is not None and lora not in offered:
            check.add("lora", f"ComfyUI has no LoRA {lora!r}: choose one of {', '.join(offered) or '(none installed)'}")

    from batches.profiles import SAMPLERS, SCHEDULERS

    for label, value, kind, known in (("sampler", sampler, "samplers", SAMPLERS),
                                      ("scheduler", scheduler, "schedulers", SCHEDULERS)):
        if not value:
            continue
        offered = _available(kind, client)
        choices = set(offered) if offered is not None else known
        if value not in choices:
            close = difflib.get_close_matches(value, sorted(choices), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"see {kind} in ComfyUI"
            check.add(label, f"unknown {label} {value!r}: {hint}")

    if batch_size in (None, "") and prof is not None and getattr(prof, "batch_auto", False):
        batch_auto = True  # the profile says `batch_size: auto`
    # Auto: units are planned at the largest size and each is cut down when it is claimed.
    batch_v = max(BATCH_SIZES) if batch_auto else batch_n or (prof.batch_size if prof else None)
    values = {
        "steps": steps_n or (prof.steps if prof else None),
        "cfg": cfg_n if cfg_n is not None else (prof.cfg if prof else None),
        "width": width_n or (prof.width if prof else None),
        "height": height_n or (prof.height if prof else None),
        "batch_size": batch_v,
        "sampler": sampler,
        "scheduler": scheduler,
        "denoise": denoise_n if denoise_n is not None else 1.0,
    }

    if graph is not None and not check.errors.get("workflow"):
        params = {
            "positive": "x", "negative": negative_prompt or None, "seed": 0,
            "steps": values["steps"], "cfg": values["cfg"], "sampler": sampler, "scheduler": scheduler,
            "denoise": denoise_n, "width": values["width"], "height": values["height"],
            "batch_size": values["batch_size"], "checkpoint": checkpoint, "lora": lora,
            "lora_strength_model": strength_n, "lora_strength_clip": strength_clip_n,
            "filename_prefix": "dgxpixels/check",
        }
        for problem in check_injectable(graph, params, source=workflow_source):
            check.add("workflow", problem)
        if not checkpoint:
            checkpoint = _workflow_checkpoint(graph)

    finish_plan = _finish_plan(check, finish, prof)

    webhook_url = (webhook_url or "").strip()
    if webhook_url:
        from batches.services.webhooks.targets import url_problem

        if problem := url_problem(webhook_url):
            check.add("webhook_url", problem)

    if prompt_list and count_n:
        from batches.services.quotas import queue_quota_problem

        quota = queue_quota_problem(user=owner, adding=len(prompt_list) * count_n)
        if quota:
            check.add("count", quota)

    if check.errors:
        raise SubmissionError(check.errors)

    return dict(
        owner=owner, name=name, prompts=prompt_list, count=count_n, negative_prompt=negative_prompt,
        profile=profile, workflow=workflow, checkpoint=checkpoint or "", lora=lora or "",
        lora_strength_model=strength_n if strength_n is not None else 1.0,
        lora_strength_clip=(strength_clip_n if strength_clip_n is not None
                            else strength_n if strength_n is not None else 1.0),
        base_seed=seed_n, priority=priority_v, finish=finish_plan, webhook_url=webhook_url, batch_auto=batch_auto,
        **values,
    )


def _finish_plan(check: _Checker, finish, prof) -> dict | None:
    """The job's finishing plan: the profile's, switched off, or changed by the job's own settings."""
    from batches.sprites.plan import FinishError, build

    base = prof.finish if prof else None
    if finish is None:
        return base
    if finish is False:
        return None
    try:
        return build({} if finish is True else finish, base=base)
    except FinishError as exc:
        check.add(exc.field if exc.field != "finish" else "finish", str(exc))
        return None


def announce_job(job: Job) -> None:
    """Every door (form, CLI, admin, API) tells the live pages about a new job the same way."""
    from batches.services.events import publish

    publish("job_queued", job_id=job.pk, owner=job.owner.get_username(), priority=job.priority_name,
            images_planned=job.images_planned)


def _workflow_checkpoint(graph: dict) -> str | None:
    for node in graph.values():
        if isinstance(node, dict) and node.get("class_type") == "CheckpointLoaderSimple":
            value = node.get("inputs", {}).get("ckpt_name")
            if isinstance(value, str):
                return value
    return None


def plan_units(job: Job) -> list[dict]:
    """Split a job into units of up to batch_size images of one prompt, each with its own seed."""
    rng = random.SystemRandom()
    units: list[dict] = []
    sequence = 1
    index = 0
    for prompt_index, text in enumerate(job.prompts):
        remaining = job.count
        while remaining > 0:
            size = min(job.batch_size, remaining)
            # A fixed base seed gives the same seeds on every run; each unit still gets its own
            # seed, because ComfyUI caches by inputs and would otherwise make no new image.
            seed = job.base_seed + index if job.base_seed is not None else rng.randrange(SEED_SPACE)
            units.append({"index": index, "prompt_index": prompt_index, "prompt": text, "seed": seed,
                          "batch_size": size, "first_sequence": sequence})
            sequence += size
            remaining -= size
            index += 1
    return units


# Columns written for a new unit; the others start NULL (timestamps, graph, errors in detail).
_UNIT_COLUMNS = ("job_id", "index", "prompt_index", "prompt", "seed", "batch_size", "first_sequence", "priority",
                 "checkpoint", "status", "comfy_prompt_id", "node", "comfyui_url", "attempts", "error",
                 "steps_done", "steps_total", "passed_over")


def insert_units(planned: list[tuple[Job, dict]]) -> None:
    """One executemany of plain tuples, in the order given (the queue's FIFO order): a 1000 x 8 job
    at batch size 1 is 8 000 rows, and building 8 000 model instances for bulk_create alone took
    longer than the whole submission may."""
    uuid_field = Unit._meta.get_field("comfy_prompt_id")
    table = connection.ops.quote_name(Unit._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(Unit._meta.get_field(c).column) for c in _UNIT_COLUMNS)
    placeholders = ", ".join(["%s"] * len(_UNIT_COLUMNS))
    rows = [
        (job.pk, u["index"], u["prompt_index"], u["prompt"], u["seed"], u["batch_size"], u["first_sequence"],
         job.priority, job.checkpoint, Unit.Status.PENDING.value,
         uuid_field.get_db_prep_value(uuid.uuid4(), connection), "", "", 0, "", 0, 0, 0)
        for job, u in planned
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)


def write_job(fields: dict, *, with_units: bool = True) -> Job:
    """Write a checked job (check_job's fields) and, unless told otherwise, its units.

    A comparison writes its cells' units itself (services/comparisons), in the grid's order.
    """
    from batches.services.outputs import job_dir_name

    with transaction.atomic():
        job = Job.objects.create(**fields, status=Job.Status.QUEUED)
        planned = plan_units(job)
        if with_units:
            insert_units([(job, unit) for unit in planned])
        job.output_dir = job_dir_name(job)
        job.images_planned = sum(u["batch_size"] for u in planned)
        job.updated_at = timezone.now()
        job.save(update_fields=["output_dir", "images_planned", "updated_at"])
    return job
