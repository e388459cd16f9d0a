"""A job request from another program (the HTTP API, the ZeroMQ gateway): one JSON object whose
keys are the CLI's long flags in snake_case. Every door ends in the same services as the form and
the CLI (check_job, job_submit, comparison_submit), so validation and ownership are the same;
this module only maps names and checks JSON types, and names every problem by the request's key.

    job = submit(owner=user, data={"prompt": "pixel art knight", "count": 8, "cfg_scale": 7})
"""
from __future__ import annotations

from django.conf import settings

from batches.models import Comparison, Job
from batches.services.submission import SubmissionError

# request key -> (check_job parameter, JSON type the key takes)
TEXT, WHOLE, NUMBER, PROMPTS, OBJECT, AXES = "text", "whole number", "number", "prompts", "object", "axes"
BATCH = "batch size"  # a whole number, or the string "auto"
FIELDS: dict[str, tuple[str, str]] = {
    "prompts": ("prompts", PROMPTS),
    "prompt": ("prompts", TEXT),
    "count": ("count", WHOLE),
    "batch_size": ("batch_size", BATCH),
    "steps": ("steps", WHOLE),
    "cfg_scale": ("cfg", NUMBER),
    "sampler": ("sampler", TEXT),
    "scheduler": ("scheduler", TEXT),
    "width": ("width", WHOLE),
    "height": ("height", WHOLE),
    "seed": ("seed", WHOLE),
    "negative_prompt": ("negative_prompt", TEXT),
    "model": ("checkpoint", TEXT),
    "lora": ("lora", TEXT),
    "lora_strength": ("lora_strength", NUMBER),
    "profile": ("profile", TEXT),
    "workflow": ("workflow", TEXT),
    "priority": ("priority", TEXT),
    "name": ("name", TEXT),
    "webhook_url": ("webhook_url", TEXT),
    "finish": ("finish", OBJECT),
    "compare": ("compare", AXES),
}
# check_job names a problem by its parameter; the request named it by its key.
KEY_FOR_PARAM = {"cfg": "cfg_scale", "checkpoint": "model", "lora_strength_clip": "lora_strength"}
MAX_TEXT = 100_000  # characters in one text value before any finer limit (the prompt limit is far lower)


def _type_problem(kind: str, value) -> str | None:
    """Why `value` is not of the JSON type `kind`, or None."""
    if value is None:
        return None
    if kind == TEXT:
        if not isinstance(value, str):
            return f"expected a string, got {_json_type(value)}"
        if len(value) > MAX_TEXT:
            return f"is {len(value):,} characters; far over any limit"
        return None
    if kind == WHOLE:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected a whole number, got {_json_type(value)}"
        return None
    if kind == BATCH:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return f'expected a whole number (1, 4 or 8) or "auto", got {_json_type(value)}'
        return None
    if kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {_json_type(value)}"
        return None
    if kind == PROMPTS:
        if isinstance(value, str):
            return None
        if not isinstance(value, list):
            return f"expected a list of strings, got {_json_type(value)}"
        for i, item in enumerate(value, start=1):
            if not isinstance(item, str):
                return f"prompt {i}: expected a string, got {_json_type(item)}"
        return None
    if kind == OBJECT:
        if not isinstance(value, (dict, bool)):
            return f"expected an object (finishing settings) or true/false, got {_json_type(value)}"
        return None
    if kind == AXES:
        if isinstance(value, dict):
            bad = [k for k, v in value.items() if not isinstance(v, list)]
            return f"axis {bad[0]!r}: expected a list of values" if bad else None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return None
        return 'expected axes as an object ({"cfg": [5, 8]}) or a list of "AXIS=V1,V2" strings'
    raise ValueError(kind)


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse(data) -> dict:
    """A request object as check_job's keyword arguments (without owner); raises SubmissionError
    naming each bad key (unknown keys, wrong JSON types, prompt and prompts together)."""
    if not isinstance(data, dict):
        raise SubmissionError({"body": [f"expected a JSON object of job fields, got {_json_type(data)}"]})
    errors: dict[str, list[str]] = {}
    params: dict = {}
    for key, value in data.items():
        if key not in FIELDS:
            known = ", ".join(sorted(FIELDS))
            errors.setdefault(str(key)[:100], []).append(f"unknown field: the fields are {known}")
            continue
        param, kind = FIELDS[key]
        problem = _type_problem(kind, value)
        if problem:
            errors.setdefault(key, []).append(problem)
            continue
        if value is not None:
            params[param] = value
    if "prompt" in data and "prompts" in data:
        errors.setdefault("prompt", []).append("give prompt (one text) or prompts (a list), not both")
    if "count" not in data and "count" not in errors:
        params.setdefault("count", 1)
    if errors:
        raise SubmissionError(errors)
    return params


def request_errors(exc: SubmissionError) -> dict[str, list[str]]:
    """A SubmissionError's problems under the request's keys (cfg_scale, model, ...)."""
    errors: dict[str, list[str]] = {}
    for field, messages in exc.errors.items():
        errors.setdefault(KEY_FOR_PARAM.get(field, field), []).extend(messages)
    return errors


def submit(*, owner, data, client="default") -> Job | Comparison:
    """Queue a job (or, with "compare", a comparison) from a request object.

    Raises SubmissionError with the problems under the request's keys; nothing is queued then.
    """
    from batches.services.comparisons import comparison_submit
    from batches.services.submission import job_submit

    try:
        params = parse(data)
        priority = params.pop("priority", None) or default_priority()
        axes = params.pop("compare", None)
        if axes is not None:
            if isinstance(axes, dict):
                axes = [f"{axis}={','.join(str(v) for v in values)}" for axis, values in axes.items()]
            return comparison_submit(owner=owner, axes=axes, priority=priority, client=client, **params)
        return job_submit(owner=owner, priority=priority, client=client, **params)
    except SubmissionError as exc:
        raise SubmissionError(request_errors(exc)) from None


def default_priority() -> str:
    from batches.profiles import ProfileError, load_profiles

    try:
        return load_profiles().default_priority
    except ProfileError:
        return "normal"


def visible_jobs(user):
    """The jobs a user may see and act on through the API or ZeroMQ: staff all, others their own."""
    jobs = Job.objects.select_related("owner")
    return jobs if user.is_staff else jobs.filter(owner=user)


def job_document(job: Job, *, base_url: str = "", rates=None) -> dict:
    """A job as the API's GET and the ZeroMQ status reply give it (the CLI's --json shape, plus links).

    Pass `rates` (one RateSnapshot) when reporting many jobs: one rate query for the lot."""
    from django.urls import reverse

    from batches import cli

    data = cli.job_payload(job, rates=rates)
    data["webhook_url"] = job.webhook_url
    data["comparison"] = job.comparison_id
    data["links"] = {
        "self": base_url + f"/api/v1/jobs/{job.pk}/",
        "images": base_url + f"/api/v1/jobs/{job.pk}/images/",
        "page": base_url + reverse("job-detail", args=[job.pk]),
        "zip": base_url + reverse("job-zip", args=[job.pk]),
    }
    return data


def public_base_url() -> str:
    """The dashboard's address for links in webhooks and ZeroMQ replies (DGX_PUBLIC_URL), or ''."""
    return getattr(settings, "PUBLIC_URL", "").rstrip("/")


def unit_documents(job: Job) -> list[dict]:
    """A job's work units in order, in the shape of `batch_status --json` with units."""
    return [
        {"index": u.index, "status": u.status, "prompt": u.prompt, "seed": u.seed, "batch_size": u.batch_size,
         "attempts": u.attempts, "node": u.node, "comfyui_prompt_id": u.prompt_id, "error": u.error,
         "downgraded_from": u.downgraded_from, "batch_size_chosen": u.batch_size_chosen,
         "vram_free_gb": round(u.vram_free / 1024**3, 1) if u.vram_free is not None else None,
         "started_at": u.started_at, "finished_at": u.finished_at}
        for u in job.units.order_by("index")
    ]


def image_document(image, *, base_url: str = "") -> dict:
    """An image for the API: what it is, its review and sprite state, and where its files are served
    (by id, through the API, never a path on disk). `sprite` is None until a sprite exists."""
    api = f"{base_url}/api/v1/images/{image.pk}"
    return {
        "id": image.pk, "job": image.job_id, "sequence": image.sequence, "batch_index": image.batch_index,
        "seed": image.seed, "prompt": image.prompt, "width": image.width, "height": image.height,
        "generation_time": image.generation_time, "node": image.node, "created_at": image.created_at,
        "review": image.review, "starred": image.starred,
        "sprite_state": image.sprite_state, "sprite_error": image.sprite_error,
        "urls": {"png": f"{api}/png", "thumb": f"{api}/thumb.png",
                 "sprite": f"{api}/sprite.png" if image.sprite_path else None,
                 "metadata": f"{api}/metadata"},
    }
