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
from batches.services.rates import RateSnapshot, expected_rate
from batches.services.submission import LIMITS, SubmissionError, job_submit, parse_prompts_file
from batches.sprites import palette_names
from batches.sprites.palettes import MAX_PALETTE_FILE_BYTES
from batches.sprites.plan import FinishError, read_palette_upload
from batches.workflows import list_workflows

log = logging.getLogger("batches.forms")

BATCH_SIZES = ("1", "4", "8")
# Fields a profile fills in; the JS copies a profile's values into them when the profile changes.
PROFILE_FIELDS = ("batch_size", "steps", "cfg", "sampler", "scheduler", "width", "height")
_CACHE_SECONDS = 30.0  # what ComfyUI offers changes rarely; a form load must stay fast
_DOWN_CACHE_SECONDS = 10.0  # and an unreachable ComfyUI must not cost every page load a timeout
_cache: dict[str, tuple[float, "ComfyOffer"]] = {}
PALETTE_UPLOAD = "upload"  # the palette select's "upload…": the colours come from palette_file
# Where a finishing error that names a setting without a field of its own is shown.
FINISH_ERROR_FIELDS = {"palette_colors": "palette_file", "enabled": "make_sprites"}


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
                                 widget=forms.Select(choices=_choices(BATCH_SIZES) + [("auto", "auto")]),
                                 help_text="Images per ComfyUI prompt; auto: the largest the GPU's free VRAM "
                                           "allows, chosen per unit.")
    steps = forms.CharField(label="Steps", required=False, widget=forms.NumberInput(attrs={"min": 1, "step": 1}))
    cfg = forms.CharField(label="CFG", required=False, widget=forms.NumberInput(attrs={"min": 0, "step": 0.5}))
    sampler = forms.CharField(label="Sampler", required=False, widget=forms.Select())
    scheduler = forms.CharField(label="Scheduler", required=False, widget=forms.Select())
    width = forms.CharField(label="Width", required=False, widget=forms.NumberInput(attrs={"min": 64, "step": 8}))
    height = forms.CharField(label="Height", required=False, widget=forms.NumberInput(attrs={"min": 64, "step": 8}))
    seed = forms.CharField(label="Seed", required=False,
                           widget=forms.NumberInput(attrs={"min": 0, "step": 1, "placeholder": "random"}),
                           help_text="Blank: a random seed per unit. A number: the same seeds every run.")
    # "New job like this": the source job's seeds, unit by unit, unless unticked (then random).
    same_seeds = forms.BooleanField(label="Same seeds", required=False,
                                    help_text="Keep the seeds of the job this one repeats, so compare lines"
                                              " their images up seed by seed. Untick for new random seeds.")
    seeds_from = forms.CharField(required=False, widget=forms.HiddenInput())
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
    webhook_url = forms.CharField(
        label="Webhook URL", required=False, max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "optional, e.g. https://ci.example.com/hooks/dgx",
                                     "spellcheck": "false"}),
        help_text="A signed JSON POST goes here when the job ends (completed, partial, failed or cancelled).")
    # Finishing: each image also becomes a game-ready sprite (batches.sprites.plan reads these).
    make_sprites = forms.BooleanField(label="Make sprites", required=False,
                                      help_text="Each image also becomes a game-ready sprite beside it; "
                                                "the original is kept.")
    colors = forms.CharField(label="Colours", required=False,
                             widget=forms.NumberInput(attrs={"min": 2, "max": 256, "step": 1,
                                                             "placeholder": "as recovered"}),
                             help_text="Reduce to K colours (2–256). A palette, when chosen, wins.")
    palette = forms.CharField(label="Palette", required=False, widget=forms.Select())
    palette_file = forms.FileField(label="Palette file", required=False,
                                   widget=forms.ClearableFileInput(attrs={"accept": ".hex,.gpl"}),
                                   help_text="A Lospec .hex or GIMP .gpl file, up to 64 KiB.")
    background = forms.CharField(label="Background", required=False,
                                 widget=forms.TextInput(attrs={"placeholder": "auto", "spellcheck": "false"}),
                                 help_text="auto (made transparent), keep, or a colour #rrggbb.")
    outline = forms.CharField(label="Outline", required=False,
                              widget=forms.TextInput(attrs={"placeholder": "none, e.g. #101010",
                                                            "spellcheck": "false"}))
    cell = forms.CharField(label="Cell", required=False,
                           widget=forms.TextInput(attrs={"placeholder": "none, e.g. 64x64", "spellcheck": "false"}),
                           help_text="Pad each sprite into W×H, bottom-centre.")
    pixel_size = forms.CharField(label="Pixel size", required=False,
                                 widget=forms.TextInput(attrs={"placeholder": "auto", "spellcheck": "false"}),
                                 help_text="auto, or the art-pixel size in image pixels.")
    lock_palette = forms.BooleanField(label="One palette for the job", required=False,
                                      help_text="Every sprite shares one palette from the whole batch; "
                                                "the sprites wait for the job to end.")

    def __init__(self, *args, offer: ComfyOffer | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer = offer if offer is not None else comfyui_offer()
        self.prompt_list: list[str] = []
        self.palette_colors: list[str] | None = None  # an uploaded palette, read by clean_palette_file
        try:
            self.config = load_profiles()
            self.config_error = ""
        except ProfileError as exc:  # the page still renders; job_submit reports it on the field
            self.config, self.config_error = None, str(exc)
        self._setup_choices()
        self._setup_initial()
        self._setup_compare()
        self.comparison = None  # set by submit() when the Compare section was filled

    # --- choices ----------------------------------------------------------------------------
    def _setup_choices(self) -> None:
        f = self.fields
        profiles = self.config.profiles if self.config else {}
        f["profile"].widget.choices = [
            (name, f"{p.title or name.capitalize()} — batch {'auto' if getattr(p, 'batch_auto', False) else p.batch_size}, "
                   f"{p.steps} steps")
            for name, p in profiles.items()
        ]
        # The estimate uses the one definition of images/min (services/rates): recent throughput
        # for the profile and batch size, else the profile's expected rate; "ipm_basis" says which.
        snapshot = RateSnapshot() if profiles else None
        rates = {name: expected_rate(profile=name, batch_size=p.batch_size, fallback=p.expected_images_per_minute,
                                     snapshot=snapshot) for name, p in profiles.items()}
        f["profile"].widget.attrs["data-defaults"] = json.dumps({
            name: {"batch_size": "auto" if getattr(p, "batch_auto", False) else p.batch_size, "steps": p.steps, "cfg": p.cfg, "sampler": p.sampler,
                   "scheduler": p.scheduler, "width": p.width, "height": p.height,
                   "description": p.description, "ipm": round(rates[name][0], 2), "ipm_basis": rates[name][1]}
            for name, p in profiles.items()
        })
        f["make_sprites"].widget.attrs["data-finish-defaults"] = json.dumps(
            {name: finish_initial(p.finish) for name, p in profiles.items()})
        f["palette"].widget.choices = palette_choices(blank="none: K colours or as recovered", upload=True)
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
                for key, value in finish_initial(prof.finish).items():
                    self.initial.setdefault(key, value)
        self.initial.setdefault("workflow", "batch_optimized")
        self.initial.setdefault("priority", "normal")

    def _setup_compare(self) -> None:
        """The Compare section: up to MAX_AXES rows of an axis and its values ("a, b, c")."""
        from batches.services.comparisons import AXES, MAX_AXES, NO_LORA, max_cells

        self.compare_rows = []
        for n in range(1, MAX_AXES + 1):
            self.fields[f"compare_axis_{n}"] = forms.CharField(
                label=f"Axis {n}", required=False,
                widget=forms.Select(choices=_choices(AXES, blank="-"), attrs={"data-compare-axis": n}))
            self.fields[f"compare_values_{n}"] = forms.CharField(
                label=f"Values {n}", required=False,
                widget=forms.TextInput(attrs={"placeholder": "a, b, c", "spellcheck": "false",
                                              "data-compare-values": n}))
            self.compare_rows.append((self[f"compare_axis_{n}"], self[f"compare_values_{n}"]))
        # Where the service's "compare" problems go: next to the section, not on any one row.
        self.fields["compare"] = forms.CharField(label="Compare", required=False, widget=forms.HiddenInput)
        self.fields["compare"].widget.attrs.update({
            "data-max-cells": max_cells(),
            "data-suggestions": json.dumps({
                "checkpoint": self.offer.checkpoints or [],
                "lora": [NO_LORA, *(self.offer.loras or [])],
                "sampler": list(self.offer.samplers or sorted(SAMPLERS)),
            }),
        })

    def compare_axes(self) -> list[tuple[str, str]]:
        """The filled Compare rows as (axis, values text); a row with values but no axis is kept
        (as "") so the service names the mistake."""
        from batches.services.comparisons import MAX_AXES

        rows = []
        for n in range(1, MAX_AXES + 1):
            axis = (self.data.get(f"compare_axis_{n}") or "").strip()
            values = (self.data.get(f"compare_values_{n}") or "").strip()
            if axis or values:
                rows.append((axis or "(none chosen)", [v.strip() for v in values.split(",")] if values else []))
        return rows

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

    def clean_palette_file(self):
        """An uploaded palette is read here; its colours go to the job inline (palette_colors)."""
        upload = self.cleaned_data.get("palette_file")
        if not upload:
            return None
        data = upload.read(MAX_PALETTE_FILE_BYTES + 1)
        name = upload.name or "the palette file"
        if len(data) > MAX_PALETTE_FILE_BYTES:
            raise forms.ValidationError(f"{name}: larger than {MAX_PALETTE_FILE_BYTES // 1024} KiB: "
                                        "not a palette file")
        try:
            self.palette_colors = read_palette_upload(data.decode("utf-8-sig"), filename=name)
        except UnicodeDecodeError:
            raise forms.ValidationError(f"{name}: not UTF-8 text: give a .hex or .gpl palette file") from None
        except FinishError as exc:
            raise forms.ValidationError(str(exc)) from None
        return upload

    def clean(self):
        data = super().clean()
        if (data.get("make_sprites") and (data.get("palette") or "") == PALETTE_UPLOAD
                and not data.get("palette_file") and "palette_file" not in self.errors):
            self.add_error("palette_file", "Choose a .hex or .gpl file to upload, or pick a palette from the list.")
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
            "width": get("width") or None, "height": get("height") or None,
            "seed": self._seed(get("seed")),
            "negative_prompt": data.get("negative_prompt") or "", "checkpoint": get("checkpoint") or None,
            "lora": get("lora") or None,
            "lora_strength": (get("lora_strength") or None) if get("lora") else None,
            "lora_strength_clip": (get("lora_strength_clip") or None) if get("lora") else None,
            "workflow": get("workflow") or None, "priority": get("priority") or "normal", "name": get("name"),
            "finish": self.finish() if data.get("make_sprites") else False,
            "webhook_url": get("webhook_url") or None,
        }

    def seeds_source(self) -> int | None:
        """The job whose seeds "Same seeds" carries (the ?from= job) while its seed is still in the
        Seed field, else None: a seed typed over it wins, tick or no tick."""
        text = (self.cleaned_data.get("seeds_from") or "").strip() if hasattr(self, "cleaned_data") else ""
        if not text.isdigit():
            return None
        source = Job.objects.filter(pk=int(text)).first()
        typed = (self.cleaned_data.get("seed") or "").strip()
        return source.pk if source is not None and typed == carried_seed(source) else None

    def _seed(self, typed: str) -> str | None:
        """The Seed field, except that unticking "Same seeds" drops the carried seed (random seeds)."""
        if self.seeds_source() and not self.cleaned_data.get("same_seeds"):
            return None
        return typed or None

    def finish(self) -> dict:
        """The finishing settings typed, laid over the profile's by job_submit."""
        data = self.cleaned_data
        values = finish_values(data, palette_colors=self.palette_colors)
        values["lock_palette"] = "true" if data.get("lock_palette") else "false"
        return values

    def submit(self, *, owner) -> Job | None:
        """Queue the job (or, with the Compare section filled, the comparison: see self.comparison),
        or put every problem on the form and queue nothing."""
        self.is_valid()  # fills cleaned_data and the form's own errors
        axes = self.compare_axes() if self.is_bound else []
        try:
            with transaction.atomic():
                if axes:
                    from batches.services.comparisons import comparison_submit

                    self.comparison = comparison_submit(owner=owner, axes=axes, client=self.offer.client(),
                                                        **self.submission())
                    job = self.comparison.cells.order_by("id").first()
                else:
                    job = job_submit(owner=owner, client=self.offer.client(), **self.submission())
                    source = self.seeds_source()
                    if job is not None and source and self.cleaned_data.get("same_seeds"):
                        from batches.services.compare import job_reuse_seeds

                        job_reuse_seeds(job=job, source_id=source)
                if self.errors:
                    self.comparison = None
                    raise _NotQueued
        except SubmissionError as exc:
            for name, messages in exc.errors.items():
                name = FINISH_ERROR_FIELDS.get(name, name)
                target = name if name in self.fields else None
                for message in messages:
                    self.add_error(target, message if target else f"{name}: {message}")
            return None
        except _NotQueued:
            return None
        return job


def carried_seed(job: Job) -> str:
    """The seed "New job like this" puts in the form: the job's base seed, or for a random-seeded
    job its first unit's seed (job_reuse_seeds copies the others unit by unit)."""
    if job.base_seed is not None:
        return str(job.base_seed)
    seed = job.units.order_by("index").values_list("seed", flat=True).first()
    return "" if seed is None else str(seed)


def initial_from_job(job: Job) -> dict:
    """Form values that repeat a job (the "new job like this" link)."""
    return {
        "prompts": "\n".join(job.prompts), "negative_prompt": job.negative_prompt, "name": job.name,
        "count": str(job.count), "profile": job.profile,
        "batch_size": "auto" if job.batch_auto else str(job.batch_size),
        "steps": str(job.steps), "cfg": f"{job.cfg:g}", "sampler": job.sampler, "scheduler": job.scheduler,
        "width": str(job.width), "height": str(job.height),
        # Same seeds by default: a random-seeded job's first seed stands as the base seed, and
        # job_reuse_seeds copies the rest unit by unit when the form is sent.
        "seed": carried_seed(job),
        "same_seeds": True, "seeds_from": str(job.pk),
        "checkpoint": job.checkpoint, "lora": job.lora,
        "lora_strength": f"{job.lora_strength_model:g}",
        "lora_strength_clip": f"{job.lora_strength_clip:g}" if job.lora_strength_clip != job.lora_strength_model else "",
        "workflow": job.workflow, "priority": job.priority_name, "webhook_url": job.webhook_url,
        **finish_initial(job.finish),
    }


# --- finishing: the submission form's fieldset and the re-finish forms --------------------------

def palette_choices(*, blank: str, upload: bool = False) -> list[tuple[str, str]]:
    """The shipped palettes (palettes/), after a blank choice and before "upload…"."""
    choices = [("", blank), *((name, name) for name in palette_names())]
    return choices + [(PALETTE_UPLOAD, "upload…")] if upload else choices


def finish_initial(plan: dict | None) -> dict:
    """A finishing plan as the form's values (a profile's defaults, or a job's settings)."""
    plan = plan or {}
    return {
        "make_sprites": bool(plan),
        "colors": str(plan["colors"]) if plan.get("colors") else "",
        "palette": plan.get("palette") or "",
        "background": plan.get("background") or "auto",
        "outline": plan.get("outline") or "",
        "cell": _size_text(plan.get("cell")),
        "pixel_size": f"{plan['pixel_size']:g}" if plan.get("pixel_size") else "auto",
        "lock_palette": bool(plan.get("lock_palette")),
    }


def finish_values(data: dict, *, palette_colors: list[str] | None = None) -> dict:
    """Finishing values for plan.build from form text: only what was given, so a blank field keeps
    the base's setting. A palette (chosen or uploaded) wins over a number of colours."""
    values = {key: str(data.get(key) or "").strip() for key in ("background", "outline", "cell", "pixel_size")}
    values = {key: value for key, value in values.items() if value}
    palette = str(data.get("palette") or "").strip()
    colors = str(data.get("colors") or "").strip()
    if palette_colors:
        values["palette_colors"] = palette_colors
    elif palette and palette != PALETTE_UPLOAD:
        values["palette"] = palette
    elif colors:
        values["colors"] = colors
    return values


def _size_text(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value or "")


class RefinishForm(forms.Form):
    """Re-finish sprites (a job's, or a selection's): every blank field keeps the current setting.

    `lock_palette` is "true" / "false" (the page sends a hidden "false" before the checkbox), or
    absent where the choice is not offered (the gallery's selection).
    """

    palette = forms.CharField(label="Palette", required=False, widget=forms.Select())
    colors = forms.CharField(label="Colours", required=False,
                             widget=forms.NumberInput(attrs={"min": 2, "max": 256, "step": 1}))
    background = forms.CharField(label="Background", required=False,
                                 widget=forms.TextInput(attrs={"spellcheck": "false"}))
    outline = forms.CharField(label="Outline", required=False, widget=forms.TextInput(attrs={"spellcheck": "false"}))
    cell = forms.CharField(label="Cell", required=False, widget=forms.TextInput(attrs={"spellcheck": "false"}))
    lock_palette = forms.CharField(label="One palette for the job", required=False)

    def __init__(self, *args, job: Job | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        plan = (job.finish if job is not None else None) or {}
        now = "as now" if job is not None else "each job's palette"
        if plan.get("palette_colors"):
            now = f"as now (uploaded, {len(plan['palette_colors'])} colours)"
        elif plan.get("palette"):
            now = f"as now ({plan['palette']})"
        self.fields["palette"].widget.choices = palette_choices(blank=now)
        hints = {"colors": str(plan.get("colors") or ("as now" if job is not None else "colours")),
                 "background": plan.get("background") or "auto",
                 "outline": plan.get("outline") or "none", "cell": _size_text(plan.get("cell")) or "none"}
        for name, hint in hints.items():
            self.fields[name].widget.attrs["placeholder"] = hint
        self.locked = bool(plan.get("lock_palette"))

    def finish_values(self) -> dict:
        """The values to lay over the job's settings; {} keeps them all."""
        self.is_valid()  # text fields only: cleaned_data always fills
        data = self.cleaned_data
        values = finish_values(data)
        lock = (data.get("lock_palette") or "").strip().lower()
        if lock in ("true", "on", "1", "yes"):
            values["lock_palette"] = "true"
        elif lock in ("false", "off", "0", "no"):
            values["lock_palette"] = "false"
        return values
