"""Jobs in the admin: list, filters, inlines, the add form (job_submit) and the operator actions."""
from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from batches.models import Image, Job, Priority, SheetExport, Unit
from batches.numbers import id_or_none
from batches.services import control
from batches.services.cleanup import job_delete
from batches.services.outputs import job_dir
from batches.services.quotas import QuotaError
from batches.services.rates import rate_for

# Units and images shown inline on a job page: a 5000-unit job would draw a page nobody can
# scroll. The rest are a click away (`children_links`: the changelists filtered to the job).
INLINE_ROWS = 50
from batches.admin.common import (_actor, _file_links, _plural, _pretty_json, _short, _swatches, _thumb,
                                  prompt_id_short)
from batches.services import finishing

# --- Jobs ------------------------------------------------------------------------------------


class _LimitedInline(admin.TabularInline):
    """A read-only inline showing the first INLINE_ROWS rows of the job's children."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    order_by: tuple[str, ...] = ("pk",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_formset(self, request, obj=None, **kwargs):
        # get_queryset(request) does not receive the job; remember it on this request only.
        request._admin_job = obj
        return super().get_formset(request, obj, **kwargs)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        job = getattr(request, "_admin_job", None)
        if job is None:
            return qs
        # The formset filters by job after this, and a sliced queryset cannot be filtered.
        first = list(qs.filter(job=job).order_by(*self.order_by).values_list("pk", flat=True)[:INLINE_ROWS])
        return qs.filter(pk__in=first).order_by(*self.order_by)


class UnitInline(_LimitedInline):
    model = Unit
    verbose_name_plural = f"units (the first {INLINE_ROWS})"
    order_by = ("index",)
    fields = ("index", "status", "prompt_short", "seed", "batch_size", "attempts", "node", "error_short",
              "prompt_id_short")
    readonly_fields = fields

    @admin.display(description="prompt")
    def prompt_short(self, unit: Unit) -> str:
        return _short(unit.prompt, 50)

    @admin.display(description="ComfyUI id")
    def prompt_id_short(self, unit: Unit) -> str:
        return prompt_id_short(unit)

    @admin.display(description="error")
    def error_short(self, unit: Unit) -> str:
        return _short(unit.error, 80)


class ImageInline(_LimitedInline):
    model = Image
    verbose_name_plural = f"images (the first {INLINE_ROWS})"
    order_by = ("sequence",)
    fields = ("thumbnail", "sequence", "seed", "prompt_short", "review", "starred", "files")
    readonly_fields = fields

    @admin.display(description="preview")
    def thumbnail(self, image: Image) -> str:
        return _thumb(image, 48)

    @admin.display(description="prompt")
    def prompt_short(self, image: Image) -> str:
        return _short(image.prompt, 50)

    @admin.display(description="files")
    def files(self, image: Image) -> str:
        return _file_links(image)


class SheetExportInline(_LimitedInline):
    """Sheets, animations and tilesets exported from the job (written by services/sheets: read-only)."""

    model = SheetExport
    verbose_name_plural = f"sheets (the newest {INLINE_ROWS})"
    order_by = ("-created_at", "-id")
    show_change_link = False  # no SheetExport admin of its own: everything is here
    fields = ("name", "kind", "frames", "size", "file_links", "by", "created_at")
    readonly_fields = fields

    @admin.display(description="size")
    def size(self, export: SheetExport) -> str:
        return f"{export.width}×{export.height}"

    @admin.display(description="files")
    def file_links(self, export: SheetExport) -> str:
        try:
            links = [(reverse("job-sheet-file", args=[export.job_id, export.pk, PurePosixPath(f).name]),
                      PurePosixPath(f).name) for f in export.files]
        except NoReverseMatch:  # the dashboard's URLs are not installed: the paths as stored
            return ", ".join(export.files) or "-"
        return format_html_join(" · ", '<a href="{}">{}</a>', links) or "-"


def _set_priority_action(level: Priority):
    @admin.action(description=f"Set priority: {level.label}", permissions=["change"])
    def action(modeladmin, request, queryset):
        jobs = list(queryset.filter(status__in=Job.ACTIVE))
        for job in jobs:
            control.job_set_priority(job, level.value, by=_actor(request))
        skipped = queryset.count() - len(jobs)
        modeladmin.message_user(request, f"{_plural(len(jobs), 'job')} now {level.label} priority"
                                         + (f"; {skipped} finished left as they were." if skipped else "."))

    action.__name__ = f"set_priority_{level.label}"
    return action


class JobActionForm(helpers.ActionForm):
    # A fresh key each time the list is drawn, sent back with the action: pressing "Go" twice
    # (a double click, a resent form) requeues or retries once.
    request_id = forms.CharField(required=False, widget=forms.HiddenInput, initial=lambda: uuid.uuid4().hex)


def _request_key(request) -> str:
    return request.POST.get("request_id", "")


def _job_submit_form():
    from batches.forms import JobForm  # the dashboard's form: the same parsing, the same job_submit call

    return JobForm


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "status", "priority_label", "owner", "profile", "progress_display",
                    "created_at")
    list_display_links = ("id", "title")
    list_filter = ("status", "priority", "profile", ("owner", admin.RelatedOnlyFieldListFilter), "checkpoint")
    search_fields = ("name", "prompts")
    search_help_text = "Prompt text or name; a number finds the job with that id."
    list_select_related = ("owner",)
    ordering = ("-created_at", "-id")
    list_per_page = 50
    inlines = (UnitInline, ImageInline, SheetExportInline)
    action_form = JobActionForm
    actions = ["cancel_jobs", "stop_after_current", "retry_failed", "requeue", "refinish_sprites",
               *(_set_priority_action(level) for level in sorted(Priority, reverse=True))]
    editable_fields = ("name", "priority")
    fieldsets = (
        (None, {"fields": ("name", "status", "priority", "owner", "profile", "workflow", "requeued_from",
                           "error")}),
        ("Prompts", {"fields": ("prompts", "count", "negative_prompt")}),
        ("Parameters", {"fields": (("checkpoint", "lora"), ("lora_strength_model", "lora_strength_clip"),
                                   ("steps", "cfg", "denoise"), ("sampler", "scheduler"),
                                   ("width", "height", "batch_size"), "base_seed")}),
        ("Progress", {"fields": ("progress_display", ("images_planned", "images_done", "images_failed"),
                                 "rate", "output_folder", "children_links")}),
        ("Finishing", {"fields": ("finish_summary", "sprites_display", "finish_pretty", "finish_palette_display")}),
        ("Times", {"fields": (("created_at", "started_at", "finished_at", "updated_at"),)}),
    )

    def get_readonly_fields(self, request, obj=None):
        names = [f.name for f in Job._meta.fields if f.name not in ("id", *self.editable_fields)]
        return (*names, "progress_display", "rate", "output_folder", "finish_summary", "sprites_display",
                "finish_pretty", "finish_palette_display", "children_links")

    @admin.display(description="all units and images")
    def children_links(self, job: Job) -> str:
        """The inlines show the first INLINE_ROWS; these open every one, filtered to this job."""
        if not job.pk:
            return "-"
        units = reverse("admin:batches_unit_changelist") + f"?job__id__exact={job.pk}"
        images = reverse("admin:batches_image_changelist") + f"?job__id__exact={job.pk}"
        return format_html('<a href="{}">All units of job {} →</a> · <a href="{}">All {} images →</a> '
                           '<span class="help">(the lists below show the first {})</span>',
                           units, job.pk, images, job.images_done, INLINE_ROWS)

    # --- columns -------------------------------------------------------------------------------
    @admin.display(description="job", ordering="name")
    def title(self, job: Job) -> str:
        first = job.prompts[0] if job.prompts else ""
        more = f" (+{len(job.prompts) - 1} more)" if len(job.prompts) > 1 else ""
        return job.name or _short(first, 50) + more

    @admin.display(description="priority", ordering="priority")
    def priority_label(self, job: Job) -> str:
        return job.priority_name

    @admin.display(description="progress")
    def progress_display(self, job: Job) -> str:
        failed = f", {job.images_failed} failed" if job.images_failed else ""
        return format_html('<progress value="{}" max="{}" style="width: 7em"></progress> {}/{}{}',
                           job.images_done + job.images_failed, job.images_planned or 1,
                           job.images_done, job.images_planned, failed)

    @admin.display(description="speed")
    def rate(self, job: Job) -> str:
        rate = rate_for(job=job)
        text = f"{rate.images_per_minute:.1f} images/min"
        return text + (f", about {int(rate.eta.total_seconds())} s left" if rate.eta else "") + f" (based on {rate.based_on})"

    @admin.display(description="output folder")
    def output_folder(self, job: Job) -> str:
        return str(job_dir(job))

    @admin.display(description="finishing")
    def finish_summary(self, job: Job) -> str:
        return finishing.describe(job.finish)

    @admin.display(description="sprites")
    def sprites_display(self, job: Job) -> str:
        counts = finishing.sprite_counts([job.pk]).get(job.pk)
        if not counts:
            return "-"
        return (f"{counts['done']} done, {counts['open']} to make, {counts['failed']} failed"
                + (" (finishing)" if counts["open"] else ""))

    @admin.display(description="settings (finish)")
    def finish_pretty(self, job: Job) -> str:
        return _pretty_json(job.finish)

    @admin.display(description="the job's palette (finish_palette)")
    def finish_palette_display(self, job: Job) -> str:
        if not job.finish_palette:
            return "-"
        return format_html("{}<br>{}", _swatches(job.finish_palette), ", ".join(job.finish_palette))

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lstrip("#")
        job_id = id_or_none(term)
        if job_id is not None:
            results = results | queryset.filter(pk=job_id)
        return results, may_have_duplicates

    # --- adding: the dashboard's submission form -----------------------------------------------
    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        JobForm = _job_submit_form()
        if request.method == "POST":
            form = JobForm(request.POST, request.FILES)
            job = form.submit(owner=request.user)
            if job is not None:
                self.log_addition(request, job, [{"added": {}}])
                self.message_user(request, f"Queued job {job.pk}: {_plural(job.images_planned, 'image')}.",
                                  messages.SUCCESS)
                if "_addanother" in request.POST:
                    return HttpResponseRedirect(request.path)
                return HttpResponseRedirect(reverse("admin:batches_job_change", args=[job.pk]))
        else:
            form = JobForm()
        admin_form = helpers.AdminForm(form, self._submit_fieldsets(form), {}, model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": "Queue a job",
            "subtitle": None,
            "adminform": admin_form,
            "object_id": None,
            "original": None,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        return self.render_change_form(request, context, add=True, form_url=form_url)

    @staticmethod
    def _submit_fieldsets(form) -> list:
        layout = [
            (None, ["prompts", "prompts_file", "negative_prompt", "name"]),
            ("Amount and order", [("count", "profile"), ("batch_size", "priority")]),
            ("Sampling", [("steps", "cfg"), ("sampler", "scheduler"), ("width", "height"), "seed"]),
            ("Model", ["workflow", "checkpoint", ("lora", "lora_strength", "lora_strength_clip")]),
            ("Finishing", ["make_sprites", ("colors", "palette", "palette_file"), ("background", "outline"),
                           ("cell", "pixel_size"), "lock_palette"]),
        ]
        present = set(form.fields)
        seen: set[str] = set()
        fieldsets = []
        for title, lines in layout:
            kept = []
            for line in lines:
                names = tuple(n for n in (line if isinstance(line, tuple) else (line,)) if n in present)
                seen.update(names)
                if names:
                    kept.append(names if len(names) > 1 else names[0])
            if kept:
                fieldsets.append((title, {"fields": kept}))
        rest = [name for name in form.fields if name not in seen]
        if rest:
            fieldsets.append(("More", {"fields": rest}))
        return fieldsets

    # --- changing: only what a person may change, through the services -------------------------
    def save_model(self, request, obj: Job, form, change: bool) -> None:
        if not change:  # the add view queues through job_submit; nothing else creates jobs
            return
        if "name" in form.changed_data:
            Job.objects.filter(pk=obj.pk).update(name=obj.name)
        if "priority" in form.changed_data:
            try:
                control.job_set_priority(obj, obj.priority, by=_actor(request))
            except control.ControlError as exc:  # a finished job: the saved priority stays as it was
                self.message_user(request, f"Priority not changed: {exc}.", messages.WARNING)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and not (obj.status in Job.FINISHED and obj.finished_at):
            return False  # a job that is running keeps its rows and files: cancel it first
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # A job's units, images and events are its own (they cannot be deleted one by one), and
        # listing 100,000 images on the confirmation page helps nobody: say what goes, in counts.
        jobs = list(objs)
        units = Unit.objects.filter(job__in=jobs).count()
        images = Image.objects.filter(job__in=jobs).count()
        lines = [f"{job}: {_plural(job.images.count(), 'image')} and the folder {job_dir(job)}" for job in jobs]
        counts = {"jobs": len(jobs), "units": units, "images": images}
        return lines, counts, set(), []

    def delete_model(self, request, obj: Job) -> None:
        job_delete(obj)  # its files go with its rows, as in batch_cleanup

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        kept = [job.pk for job in queryset if not job_delete(job).removed]
        if kept:
            self.message_user(request, f"Kept active jobs {', '.join(map(str, kept))}: cancel them first.",
                              messages.WARNING)

    # --- actions -------------------------------------------------------------------------------
    @admin.action(description="Cancel (images made are kept)", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        done = sum(control.job_cancel(job, by=_actor(request)) for job in queryset)
        skipped = queryset.count() - done
        self.message_user(request, f"Cancelled {_plural(done, 'job')}"
                                   + (f"; {skipped} had already finished." if skipped else "."))

    @admin.action(description="Stop after the current unit", permissions=["change"])
    def stop_after_current(self, request, queryset):
        jobs = list(queryset.filter(status__in=Job.ACTIVE))
        units = sum(control.job_stop_after_current(job, by=_actor(request)) for job in jobs)
        self.message_user(request, f"{_plural(len(jobs), 'job')} stop after the units running now; "
                                   f"{_plural(units, 'unit')} not started were cancelled.")

    @admin.action(description="Retry failed units", permissions=["change"])
    def retry_failed(self, request, queryset):
        units, problems = 0, []
        for job in queryset:
            try:
                units += control.job_retry_failed(job, by=_actor(request), request_key=_request_key(request))
            except QuotaError as exc:
                problems.append(f"job {job.pk}: {exc}")
        level = messages.SUCCESS if units else messages.WARNING
        self.message_user(request, f"{_plural(units, 'failed unit')} back in the queue.", level)
        for problem in problems:
            self.message_user(request, f"Cannot retry {problem}", messages.ERROR)

    @admin.action(description="Requeue (a new job with the same parameters)", permissions=["add"])
    def requeue(self, request, queryset):
        new, problems = [], []
        for job in queryset:
            try:
                copy = control.job_requeue(job, by=_actor(request), request_key=_request_key(request))
            except ValueError as exc:  # SubmissionError: a workflow or profile changed since
                problems.append(f"job {job.pk}: {exc}")
                continue
            new.append(f"{job.pk} → {copy.pk}")
        if new:
            self.message_user(request, f"Requeued {_plural(len(new), 'job')}: {', '.join(new)}.")
        for problem in problems:
            self.message_user(request, f"Cannot requeue {problem}", messages.ERROR)

    @admin.action(description="Re-finish sprites (job settings)", permissions=["change"])
    def refinish_sprites(self, request, queryset):
        images, problems = 0, []
        for job in queryset:
            try:
                images += finishing.job_refinish(job, finish=None, by=_actor(request))
            except finishing.FinishError as exc:
                problems.append(f"job {job.pk}: {exc}")
        if images or not problems:
            self.message_user(request, f"{_plural(images, 'sprite')} queued to be made again.")
        for problem in problems:
            self.message_user(request, f"Cannot re-finish {problem}", messages.ERROR)
