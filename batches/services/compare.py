"""Comparing two to four jobs side by side: rows aligned by prompt and seed, differing parameters."""
from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

from batches.models import Image, Job, Unit
from batches.numbers import NumberError, parse_id_list
from batches.services.finishing import describe

MIN_COMPARE, MAX_COMPARE = 2, 4


class CompareError(ValueError):
    """A compare request that cannot be drawn (too few or many jobs, bad ids)."""


def parse_job_ids(params) -> list[int]:
    """`?jobs=1,2,3` or `?job=1&job=2` (the picker's checkboxes), order kept, duplicates dropped."""
    try:
        ids = parse_id_list([*params.getlist("jobs"), *params.getlist("job")], what="a job id")
    except NumberError as exc:
        raise CompareError(str(exc)) from None
    if len(ids) > MAX_COMPARE:
        raise CompareError(f"{len(ids)} jobs chosen: compare at most {MAX_COMPARE} at once")
    return ids


COMPARE_PARAMS = (
    ("profile", "Profile"),
    ("checkpoint", "Checkpoint"),
    ("lora", "LoRA"),
    ("lora_strength", "LoRA strength"),
    ("steps", "Steps"),
    ("cfg", "CFG"),
    ("sampler", "Sampler"),
    ("scheduler", "Scheduler"),
    ("size", "Size"),
    ("batch_size", "Batch size"),
    ("denoise", "Denoise"),
    ("negative_prompt", "Negative prompt"),
    ("workflow", "Workflow"),
    ("seed", "Seeds"),
    ("finish", "Finishing"),
)


def _g(value: float) -> str:
    return f"{value:g}"


def job_parameters_for_compare(job: Job) -> dict[str, str]:
    return {
        "profile": job.profile,
        "checkpoint": job.checkpoint or "(workflow default)",
        "lora": job.lora or "none",
        "lora_strength": (f"{_g(job.lora_strength_model)} / clip {_g(job.lora_strength_clip)}"
                          if job.lora else "-"),
        "steps": str(job.steps),
        "cfg": _g(job.cfg),
        "sampler": job.sampler,
        "scheduler": job.scheduler,
        "size": f"{job.width}×{job.height}",
        "batch_size": str(job.batch_size),
        "denoise": _g(job.denoise),
        "negative_prompt": job.negative_prompt or "-",
        "workflow": job.workflow,
        "seed": f"from {job.base_seed}" if job.base_seed is not None else "random",
        "finish": describe(job.finish),
    }


@dataclass
class ParamRow:
    key: str
    label: str
    values: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass
class CompareRow:
    prompt: str
    label: str
    cells: list[Image | None]


@dataclass
class Comparison:
    jobs: list[Job]
    params: list[ParamRow]
    rows: list[CompareRow]
    mode: str  # "seed": rows share (prompt, seed, batch index); "sequence": k-th image of a prompt
    unfinished: list[Job] = field(default_factory=list)

    @property
    def differing(self) -> list[ParamRow]:
        return [p for p in self.params if p.differs]

    @property
    def columns(self) -> list[tuple[Job, list[tuple[str, str]]]]:
        """Each job with its values of the differing parameters (the column headers' chips)."""
        differing = self.differing
        return [(job, [(p.label, p.values[i]) for p in differing]) for i, job in enumerate(self.jobs)]


def _seed_aligned(keys: list[set]) -> bool:
    """Seeds line up when, for every pair of jobs, the smaller one's keys all occur in the larger."""
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            small, large = (a, b) if len(a) <= len(b) else (b, a)
            if not small or not small <= large:
                return False
    return True


def compare_jobs(jobs: list[Job]) -> Comparison:
    """Line up the images of 2-4 jobs: by (prompt, seed, batch index) when the jobs used the same
    seeds, else by (prompt, n-th image of that prompt). Rows follow the prompt order of the jobs."""
    if not MIN_COMPARE <= len(jobs) <= MAX_COMPARE:
        raise CompareError(f"choose {MIN_COMPARE} to {MAX_COMPARE} jobs to compare")
    position = {job.pk: i for i, job in enumerate(jobs)}
    per_job: dict[int, list[Image]] = {job.pk: [] for job in jobs}
    images = (Image.objects.filter(job_id__in=list(position)).defer("metadata")
              .order_by("job_id", "sequence"))
    for image in images:
        per_job[image.job_id].append(image)

    seed_keys = [{(i.prompt, i.seed, i.batch_index) for i in per_job[job.pk]} for job in jobs]
    mode = "seed" if _seed_aligned(seed_keys) else "sequence"

    prompt_order: dict[str, int] = {}
    for job in jobs:
        for text in job.prompts or []:
            prompt_order.setdefault(text, len(prompt_order))
    rows: OrderedDict[tuple, CompareRow] = OrderedDict()
    for job in jobs:
        nth: dict[str, int] = defaultdict(int)
        for image in per_job[job.pk]:
            prompt_order.setdefault(image.prompt, len(prompt_order))
            nth[image.prompt] += 1
            if mode == "seed":
                key = (image.prompt, image.seed, image.batch_index)
                label = f"seed {image.seed}" + (f" · #{image.batch_index + 1} in batch" if job.batch_size > 1 else "")
            else:
                key = (image.prompt, nth[image.prompt])
                label = f"#{nth[image.prompt]}"
            row = rows.get(key)
            if row is None:
                row = rows[key] = CompareRow(prompt=image.prompt, label=label, cells=[None] * len(jobs))
            row.cells[position[job.pk]] = image
    ordered = sorted(rows.values(), key=lambda r: prompt_order[r.prompt])  # stable: keeps seed order
    values = [job_parameters_for_compare(job) for job in jobs]
    params = [ParamRow(key, label, [v[key] for v in values]) for key, label in COMPARE_PARAMS]
    return Comparison(jobs=jobs, params=params, rows=ordered, mode=mode,
                      unfinished=[j for j in jobs if j.status not in Job.FINISHED])


def compare_candidates(*, limit: int = 60) -> list[Job]:
    """Finished jobs with images, newest first, for the job picker."""
    return list(
        Job.objects.filter(status__in=Job.FINISHED, images_done__gt=0).select_related("owner")
        .defer("prompts", "error").order_by("-finished_at", "-id")[:limit]
    )


def jobs_for_compare(ids: list[int]) -> list[Job]:
    """The jobs oldest first, whatever order they were asked in: the baseline is the first column,
    the jobs made from it follow. Raises Job.DoesNotExist naming a missing id."""
    found = {job.pk: job for job in Job.objects.filter(pk__in=ids).select_related("owner")}
    for pk in ids:
        if pk not in found:
            raise Job.DoesNotExist(f"there is no job {pk}")
    return sorted(found.values(), key=lambda job: (job.created_at, job.pk))


def job_reuse_seeds(*, job: Job, source_id: int) -> int:
    """Give a new job's units the seeds of the source job's units with the same index and prompt
    ("New job like this" with "Same seeds"): a random-seeded source cannot be repeated from a base
    seed alone. Call before the job's transaction commits, so no unit has run yet. Returns how
    many units changed."""
    seeds = {(index, prompt): seed for index, prompt, seed
             in Unit.objects.filter(job_id=source_id).values_list("index", "prompt", "seed")}
    changed = []
    for unit in Unit.objects.filter(job=job).only("pk", "index", "prompt", "seed"):
        seed = seeds.get((unit.index, unit.prompt))
        if seed is not None and seed != unit.seed:
            unit.seed = seed
            changed.append(unit)
    Unit.objects.bulk_update(changed, ["seed"], batch_size=500)
    return len(changed)
