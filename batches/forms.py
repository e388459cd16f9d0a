"""The submission form: what the artist types, turned into one `job_submit` call.

The form parses (prompts from the textarea and the uploaded file) and offers choices; the service
validates. Every problem, the form's and the service's, is shown next to its field at once, and
nothing is queued while anything is wrong.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.db import transaction

from batches.models import Job, Priority
from batches.profiles import SAMPLERS, SCHEDULERS, ProfileError, load_profiles
from batches.services.submission import LIMITS, SubmissionError, job_submit, parse_prompts_file
from batches.workflows import list_workflows

log = logging.getLogger("batches.forms")

BATCH_SIZES = ("1", "4", "8")
# Fields a profile fills in; the JS copies a profile's values into them when the profile changes.
PROFILE_FIELDS = ("batch_size", "steps", "cfg", "sampler", "scheduler", "width", "height")
_CACHE_SECONDS = 30.0  # what ComfyUI offers changes rarely; a form load must stay fast
_DOWN_CACHE_SECONDS = 10.0  # and an unreachable ComfyUI must not cost every page load a timeout
_cache: dict[str, tuple[float, "ComfyOffer"]] = {}


@dataclass
class ComfyOffer:
    """What ComfyUI offers, or why we could not ask it."""

    url: str
    checkpoints: list[str] | None = None
    loras: list[str] | None = None
    samplers: list[str] | None = None
    schedulers: list[str] | None = None
    error: str = ""

    @property
    def reachable(self) -> bool:
        return not self.error

    def client(self):
        """The client job_submit checks names with; None (skip the check) when ComfyUI is down."""
        if not self.reachable:
            return None
        from batches.services.submission import default_client

        return default_client()


def comfyui_offer(*, refresh: bool = False) -> ComfyOffer:
    """Ask ComfyUI (at settings.COMFYUI_URL) for its checkpoints, LoRAs, samplers and schedulers."""
    from batches.comfyui import ComfyUIClient, ComfyUIError

    url = settings.COMFYUI_URL
    hit = _cache.get(url)
    if hit and not refresh:
        age = time.monotonic() - hit[0]
        if age < (_CACHE_SECONDS if hit[1].reachable else _DOWN_CACHE_SECONDS):
            return hit[1]
    offer = ComfyOffer(url=url)
    client = ComfyUIClient(url, timeout=2.0, retries=0)
    try:
        # Checkpoints first: if ComfyUI is down, this one call says so and the rest is skipped.
        offer.checkpoints = client.checkpoints()
        offer.loras = client.loras()
        try:
            offer.samplers = client.samplers()
            offer.schedulers = client.schedulers()
        except ComfyUIError:  # an old or odd ComfyUI: fall back to the known lists
            offer.samplers = offer.schedulers = None
    except ComfyUIError as exc:
        offer = ComfyOffer(url=url, error=str(exc))
        log.info("ComfyUI offers nothing for the form: %s", exc)
    except Exception as exc:  # never let the form crash on ComfyUI
        offer = ComfyOffer(url=url, error=f"{type(exc).__name__}: {exc}")
        log.warning("asking ComfyUI for the form's choices failed", exc_info=True)
    finally:
        client.close()
    _cache[url] = (time.monotonic(), offer)
    return offer


def _choices(values, *, blank: str | None = None) -> list[tuple[str, str]]:
    out = [("", blank)] if blank is not None else []
    return out + [(v, v) for v in values]


def _lines(text: str) -> list[str]:
    """One prompt per line; blank lines and '#' comments are skipped (as in a prompts file)."""
    lines = (line.strip() for line in (text or "").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


class _NotQueued(Exception):
    """Roll the submission back: the form found a problem the service does not check."""


class JobForm(forms.Form):
    prompts = forms.CharField(
        label="Prompts", required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false",
                                     "placeholder": "pixel art knight, 16-bit, side view\npixel art slime, idle pose"}),
        help_text="One prompt per line. Lines starting with # are skipped.",
    )
    prompts_file = forms.FileField(
        label="Prompts file", required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".txt,text/plain"}),
        help_text="A UTF-8 text file, one prompt per line; added to the prompts above.",
    )
    negative_prompt = forms.CharField(
        label="Negative prompt", required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false",
                                     "placeholder": "blurry, 3d render, photo, antialiased"}),
    )
    name = forms.CharField(label="Job name", required=False, max_length=200,
                           widget=forms.TextInput(attrs={"placeholder": "optional, e.g. forest tiles v2"}))
    count = forms.CharField(label="Images per prompt", initial="1",
                            widget=forms.NumberInput(attrs={"min": 1, "step": 1}))
    profile = forms.CharField(label="Profile", widget=forms.Select())
    batch_size = forms.CharField(label="Batch size", required=False,
                                 widget=forms.Select(choices=_choices(BATCH_SIZES)),
                                 help_text="Images per ComfyUI prompt.")
    steps = forms.CharField(label="Steps", required=False, widget=forms.NumberInput(attrs={"min": 1, "step": 1}))
    cfg = forms.CharField(label="CFG", required=False, widget=forms.NumberInput(attrs={"min": 0, "step": 0.5}))
    sampler = forms.CharField(label="Sampler", required=False, widget=forms.Select())
    scheduler = forms.CharField(label="Scheduler", required=False, widget=forms.Select())
    width = forms.CharField(label="Width", required=False, widget=forms.NumberInput(attrs={"min": 64, "step": 8}))
    height = forms.CharField(label="Height", required=False, widget=forms.NumberInput(attrs={"min": 64, "step": 8}))
    seed = forms.CharField(label="Seed", required=False,
                           widget=forms.NumberInput(attrs={"min": 0, "step": 1, "placeholder": "random"}),
                           help_text="Blank: a random seed per unit. A number: the same seeds every run.")
    checkpoint = forms.CharField(label="Checkpoint", required=False)
    lora = forms.CharField(label="LoRA", required=False)
    lora_strength = forms.CharField(label="LoRA strength", required=False, initial="1.0",
                                    widget=forms.NumberInput(attrs={"step": 0.05}))
    lora_strength_clip = forms.CharField(label="LoRA CLIP strength", required=False,
                                         widget=forms.NumberInput(attrs={"step": 0.05, "placeholder": "same"}),
                                         help_text="Blank: the same as the LoRA strength.")
    workflow = forms.CharField(label="Workflow", widget=forms.Select())
    priority = forms.CharField(label="Priority", widget=forms.Select(
        choices=[(p.label, p.label.capitalize()) for p in sorted(Priority, reverse=True)]))

    def __init__(self, *args, offer: ComfyOffer | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer = offer if offer is not None else comfyui_offer()
        self.prompt_list: list[str] = []
        try:
            self.config = load_profiles()
            self.config_error = ""
        except ProfileError as exc:  # the page still renders; job_submit reports it on the field
            self.config, self.config_error = None, str(exc)
        self._setup_choices()
        self._setup_initial()

    # --- choices ----------------------------------------------------------------------------
    def _setup_choices(self) -> None:
        f = self.fields
        profiles = self.config.profiles if self.config else {}
        f["profile"].widget.choices = [
            (name, f"{p.title or name.capitalize()} — batch {p.batch_size}, {p.steps} steps")
            for name, p in profiles.items()
        ]
        f["profile"].widget.attrs["data-defaults"] = json.dumps({
            name: {"batch_size": p.batch_size, "steps": p.steps, "cfg": p.cfg, "sampler": p.sampler,
                   "scheduler": p.scheduler, "width": p.width, "height": p.height,
                   "description": p.description, "ipm": p.expected_images_per_minute}
            for name, p in profiles.items()
        })
        samplers = self.offer.samplers or sorted(SAMPLERS)
        schedulers = self.offer.schedulers or sorted(SCHEDULERS)
        f["sampler"].widget.choices = _choices(samplers)
        f["scheduler"].widget.choices = _choices(schedulers)
        workflows = list_workflows()
        f["workflow"].widget.choices = _choices(workflows)
        if self.offer.reachable:
            f["checkpoint"].widget = forms.Select(choices=_choices(self.offer.checkpoints or [],
                                                                   blank="the workflow's checkpoint"))
            f["lora"].widget = forms.Select(choices=_choices(self.offer.loras or [], blank="no LoRA"))
        else:
            f["checkpoint"].widget = forms.TextInput(attrs={"placeholder": "e.g. sd_xl_base_1.0.safetensors",
                                                            "spellcheck": "false"})
            f["lora"].widget = forms.TextInput(attrs={"placeholder": "blank: no LoRA", "spellcheck": "false"})
        # Keep a value that came in (a requeue, a typo) selectable, so the error can sit next to it.
        for name in ("sampler", "scheduler", "checkpoint", "lora", "workflow"):
            widget = f[name].widget
            value = self.data.get(name) if self.is_bound else self.initial.get(name)
            if isinstance(widget, forms.Select) and value and value not in dict(widget.choices):
                widget.choices = [*widget.choices, (value, f"{value} (not offered)")]

    def _setup_initial(self) -> None:
        if self.is_bound:
            return
        if self.config is not None:
            name = self.initial.get("profile") or self.config.default_profile
            prof = self.config.profiles.get(name)
            self.initial.setdefault("profile", name)
            self.initial.setdefault("priority", self.config.default_priority)
            if prof is not None:
                for key in PROFILE_FIELDS:
                    self.initial.setdefault(key, str(getattr(prof, key)))
        self.initial.setdefault("workflow", "batch_optimized")
        self.initial.setdefault("priority", "normal")

    # --- parsing ----------------------------------------------------------------------------
    def clean_prompts_file(self):
        upload = self.cleaned_data.get("prompts_file")
        if not upload:
            return []
        data = upload.read(LIMITS["prompts_file_bytes"] + 1)
        try:
            return parse_prompts_file(data, name=upload.name or "the prompts file")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        data = super().clean()
        prompts = _lines(data.get("prompts", "")) + list(data.get("prompts_file") or [])
        if not prompts and "prompts_file" not in self.errors:
            self.add_error("prompts", "Write at least one prompt (one per line), or upload a prompts file.")
        self.prompt_list = prompts
        for name, offered in (("sampler", self.offer.samplers or SAMPLERS),
                              ("scheduler", self.offer.schedulers or SCHEDULERS)):
            value = (data.get(name) or "").strip()
            if value and value not in offered:
                self.add_error(name, f"ComfyUI has no {name} {value!r}: pick one from the list")
        return data

    def submission(self) -> dict:
        """The keyword arguments for job_submit (strings: the service parses and checks them)."""
        data = self.cleaned_data
        # With a prompt problem already on the form, a stand-in prompt lets the service report
        # everything else in the same answer; the job is rolled back anyway.
        prompts = self.prompt_list if "prompts" not in self.errors and "prompts_file" not in self.errors \
            else ["(stand-in)"]
        get = lambda key: (data.get(key) or "").strip()  # noqa: E731
        return {
            "prompts": prompts, "count": get("count"), "profile": get("profile") or None,
            "batch_size": get("batch_size") or None, "steps": get("steps") or None, "cfg": get("cfg") or None,
            "sampler": get("sampler") or None, "scheduler": get("scheduler") or None,
            "width": get("width") or None, "height": get("height") or None, "seed": get("seed") or None,
            "negative_prompt": data.get("negative_prompt") or "", "checkpoint": get("checkpoint") or None,
            "lora": get("lora") or None,
            "lora_strength": (get("lora_strength") or None) if get("lora") else None,
            "lora_strength_clip": (get("lora_strength_clip") or None) if get("lora") else None,
            "workflow": get("workflow") or None, "priority": get("priority") or "normal", "name": get("name"),
        }

    def submit(self, *, owner) -> Job | None:
        """Queue the job, or put every problem on the form and queue nothing."""
        self.is_valid()  # fills cleaned_data and the form's own errors
        try:
            with transaction.atomic():
                job = job_submit(owner=owner, client=self.offer.client(), **self.submission())
                if self.errors:
                    raise _NotQueued
        except SubmissionError as exc:
            for name, messages in exc.errors.items():
                target = name if name in self.fields else None
                for message in messages:
                    self.add_error(target, message if target else f"{name}: {message}")
            return None
        except _NotQueued:
            return None
        return job


def initial_from_job(job: Job) -> dict:
    """Form values that repeat a job (the "new job like this" link)."""
    return {
        "prompts": "\n".join(job.prompts), "negative_prompt": job.negative_prompt, "name": job.name,
        "count": str(job.count), "profile": job.profile, "batch_size": str(job.batch_size),
        "steps": str(job.steps), "cfg": f"{job.cfg:g}", "sampler": job.sampler, "scheduler": job.scheduler,
        "width": str(job.width), "height": str(job.height),
        "seed": "" if job.base_seed is None else str(job.base_seed),
        "checkpoint": job.checkpoint, "lora": job.lora,
        "lora_strength": f"{job.lora_strength_model:g}",
        "lora_strength_clip": f"{job.lora_strength_clip:g}" if job.lora_strength_clip != job.lora_strength_model else "",
        "workflow": job.workflow, "priority": job.priority_name,
    }
