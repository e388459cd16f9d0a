"""The operator CLI: batch_generate, batch_status, batch_cancel, batch_queue and batch_cleanup.

Most tests go through call_command on the real database; the process tests run each command as
a real `manage.py` subprocess against a live qcluster and the ComfyUI simulator.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError, OutputWrapper
from django.utils import timezone

from batches import cli
from batches.models import Event, Image, Job, QueueControl, Unit
from batches.services import control, outputs
from batches.services.cleanup import cleanup_old_batches
from batches.services.submission import job_submit
from tests.processes import MANAGE, ROOT, free_port, wait_until

pytestmark = pytest.mark.django_db

SMALL = ["--width", "64", "--height", "64", "--steps", "4"]


class TTY(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_comfyui(settings):
    """Nothing answers at COMFYUI_URL unless a test starts a simulator (model names go unchecked)."""
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def artist(django_user_model):
    return django_user_model.objects.create_user("artist", password="pw")


def run(*args: str, stdout=None) -> str:
    out = stdout if stdout is not None else io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def usage_error(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert caught.value.returncode == cli.EXIT_USAGE
    message = str(caught.value)
    assert "\n" not in message  # one line
    return message


def submit(owner, prompts=("pixel art warrior",), **params) -> Job:
    defaults = {"profile": "speed", "steps": 4, "client": None, "width": 64, "height": 64, "wake": False}
    return job_submit(owner=owner, prompts=list(prompts), **{**defaults, **params})


def finish(job: Job, status: str = Job.Status.COMPLETED, *, ago: timedelta = timedelta(0)) -> Job:
    """Close a job as the worker would have (its units and the job's final state)."""
    unit_status = {Job.Status.COMPLETED: Unit.Status.DONE, Job.Status.FAILED: Unit.Status.FAILED,
                   Job.Status.CANCELLED: Unit.Status.CANCELLED}[status]
    when = timezone.now() - ago
    job.units.update(status=unit_status, finished_at=when)
    Job.objects.filter(pk=job.pk).update(status=status, started_at=when - timedelta(seconds=30), finished_at=when,
                                         images_done=job.images_planned if status == Job.Status.COMPLETED else 0)
    job.refresh_from_db()
    return job


# --- batch_generate ---------------------------------------------------------------------------


def test_generate_queues_one_job_with_every_flag_applied(artist):
    out = run("batch_generate", "--prompt", "pixel art warrior", "--prompt", "pixel art mage", "--count", "3",
              "--batch-size", "4", "--priority", "high", "--steps", "12", "--cfg-scale", "6.5", "--sampler", "euler",
              "--scheduler", "normal", "--width", "512", "--height", "256", "--seed", "42",
              "--negative-prompt", "blurry", "--model", "sd_xl_base_1.0.safetensors",
              "--lora", "pixel_art_lora.safetensors", "--lora-strength", "0.7", "--profile", "quality",
              "--workflow", "batch_optimized", "--name", "heroes", "--user", "artist")
    job = Job.objects.get()
    assert job.owner == artist and job.name == "heroes"
    assert job.prompts == ["pixel art warrior", "pixel art mage"] and job.count == 3
    assert (job.batch_size, job.priority_name, job.steps, job.cfg) == (4, "high", 12, 6.5)
    assert (job.sampler, job.scheduler, job.width, job.height, job.base_seed) == ("euler", "normal", 512, 256, 42)
    assert (job.negative_prompt, job.checkpoint, job.lora) == ("blurry", "sd_xl_base_1.0.safetensors",
                                                              "pixel_art_lora.safetensors")
    assert job.lora_strength_model == job.lora_strength_clip == 0.7
    assert (job.profile, job.workflow, job.images_planned) == ("quality", "batch_optimized", 6)
    assert sorted(job.units.values_list("batch_size", flat=True)) == [3, 3]
    assert f"Queued job {job.pk} for artist" in out and "6 images" in out and "priority high" in out
    assert str(Path(job.output_dir)) in out


def test_generate_takes_the_profiles_defaults_for_what_is_not_given(artist):
    run("batch_generate", "--prompt", "pixel art tree", "--profile", "speed", "--user", "artist")
    job = Job.objects.get()
    assert (job.batch_size, job.steps, job.cfg, job.priority_name, job.count) == (8, 15, 7.0, "normal", 1)


def test_generate_reads_prompts_from_a_file_skipping_comments_and_blank_lines(artist, tmp_path):
    prompts = tmp_path / "sprite_ideas.txt"
    prompts.write_text("# ideas\npixel art warrior\n\n  pixel art mage  \n", encoding="utf-8")
    run("batch_generate", "--prompts-file", str(prompts), "--batch-size", "4", "--count", "2", *SMALL)
    assert Job.objects.get().prompts == ["pixel art warrior", "pixel art mage"]


def test_generate_with_json_prints_the_queued_job_and_nothing_else(artist):
    out = run("batch_generate", "--prompt", "pixel art chest", "--count", "4", "--json", *SMALL)
    data = json.loads(out)
    job = Job.objects.get()
    assert data["id"] == job.pk and data["status"] == "queued" and data["images_planned"] == 4
    assert data["done"] is False and data["exit_code"] is None and data["parameters"]["steps"] == 4


def test_generate_says_when_the_queue_is_paused(artist):
    control.queue_pause(by="test")
    out = run("batch_generate", "--prompt", "pixel art chest", *SMALL)
    assert "queue is paused" in out and "batch_queue --resume" in out


BAD_FLAGS = [
    (["--prompt", "x", "--steps", "0"], "--steps: must be between 1 and 150"),
    (["--prompt", "x", "--steps", "many"], "--steps: expected a whole number"),
    (["--prompt", "x", "--cfg-scale", "99"], "--cfg-scale: must be between"),
    (["--prompt", "x", "--batch-size", "3"], "--batch-size: invalid choice"),
    (["--prompt", "x", "--priority", "asap"], "--priority: invalid choice"),
    (["--prompt", "x", "--profile", "turbo"], "--profile: invalid choice"),
    (["--prompt", "x", "--width", "100"], "--width: must be a multiple of 8"),
    (["--prompt", "x", "--height", "32"], "--height: must be between"),
    (["--prompt", "x", "--seed", "-1"], "--seed: must be between"),
    (["--prompt", "x", "--count", "0"], "--count: must be between"),
    (["--prompt", "x", "--sampler", "bogus"], "--sampler:"),
    (["--prompt", "x", "--scheduler", "bogus"], "--scheduler:"),
    (["--prompt", "x", "--workflow", "no_such_workflow"], "--workflow:"),
    (["--prompt", "x", "--lora-strength", "0.5"], "--lora-strength: give --lora NAME as well"),
    (["--prompt", "x", "--lora", "pixel_art_lora.safetensors", "--lora-strength", "99"], "--lora-strength: must be"),
    (["--prompt", "x", "--negative-prompt", "n" * 3000], "--negative-prompt:"),
    (["--prompt", "x", "--user", "nobody"], "--user: there is no user 'nobody'"),
    (["--prompt", "   "], "--prompt: the prompt is empty"),
    ([], "--prompt: give at least one prompt"),
    (["--prompt", "x", "--prompts-file", "p.txt"], "--prompts-file: not allowed with argument --prompt"),
]


@pytest.mark.parametrize("args, expected", BAD_FLAGS, ids=[" ".join(a)[:40] or "nothing" for a, _ in BAD_FLAGS])
def test_each_bad_flag_is_one_line_naming_the_flag_and_nothing_is_queued(artist, args, expected):
    message = usage_error("batch_generate", *args)
    assert expected in message
    assert not Job.objects.exists() and not Unit.objects.exists()


def _file(tmp_path, name, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


BAD_FILES = [
    ("missing", None, "--prompts-file: no file"),
    ("folder", "folder", "--prompts-file: "),
    ("binary", b"\x89PNG\x00\x00", "looks binary"),
    ("latin-1", "pixel art caf\xe9\n".encode("latin-1"), "is not UTF-8"),
    ("only comments", b"# nothing here\n\n", "has no prompts"),
    ("too big", b"x" * (2 * 1024 * 1024 + 1), "the limit is"),
]


@pytest.mark.parametrize("case, data, expected", BAD_FILES, ids=[c for c, _, _ in BAD_FILES])
def test_each_bad_prompts_file_is_one_line_naming_the_flag_and_nothing_is_queued(artist, tmp_path, case, data,
                                                                                 expected):
    if data is None:
        path = str(tmp_path / "nope.txt")
    elif data == "folder":
        path = str(tmp_path)
    else:
        path = _file(tmp_path, "prompts.txt", data)
    message = usage_error("batch_generate", "--prompts-file", path)
    assert message.startswith("--prompts-file:") and expected in message
    assert not Job.objects.exists()


def test_generate_acts_as_the_os_user_then_the_first_superuser_then_a_cli_user(monkeypatch, django_user_model):
    monkeypatch.setenv("LOGNAME", "nobody-here")
    run("batch_generate", "--prompt", "a", *SMALL)
    first = Job.objects.latest("id")
    assert first.owner.username == "cli" and not first.owner.has_usable_password()
    boss = django_user_model.objects.create_superuser("boss", "", "pw")
    run("batch_generate", "--prompt", "b", *SMALL)
    assert Job.objects.latest("id").owner == boss
    alice = django_user_model.objects.create_user("alice")
    monkeypatch.setenv("LOGNAME", "alice")
    run("batch_generate", "--prompt", "c", *SMALL)
    assert Job.objects.latest("id").owner == alice


def test_the_monitor_redraws_one_line_in_place_on_a_terminal(artist):
    job = submit(artist, count=4, batch_size=1)
    frames = iter([(1, Job.Status.RUNNING), (3, Job.Status.RUNNING), (4, Job.Status.COMPLETED)])

    def worker_progress(_seconds):  # stands in for the time the GPU spends between two looks
        done, status = next(frames)
        now = timezone.now()
        Job.objects.filter(pk=job.pk).update(images_done=done, status=status, started_at=now - timedelta(minutes=1),
                                             finished_at=now if status == Job.Status.COMPLETED else None)

    out = TTY()
    (final,) = cli.JobMonitor(OutputWrapper(out), [job.pk], sleep=worker_progress).run()
    text = out.getvalue()
    assert final.status == Job.Status.COMPLETED
    assert text.count("\r") == 4 and "\x1b[K" in text and text.endswith("\n")
    assert "0/4 images" in text and "3/4 images" in text and "4/4 images" in text
    assert "ETA" in text and "img/min" in text and "took 0:01:00" in text


def test_the_monitor_prints_a_line_per_change_into_a_pipe(artist):
    job = submit(artist, count=2, batch_size=1)
    states = iter([(0, Job.Status.QUEUED), (1, Job.Status.RUNNING), (2, Job.Status.PARTIAL)])

    def worker_progress(_seconds):
        done, status = next(states)
        Job.objects.filter(pk=job.pk).update(
            images_done=done, status=status, finished_at=timezone.now() if status == Job.Status.PARTIAL else None)

    out = io.StringIO()
    cli.JobMonitor(OutputWrapper(out), [job.pk], sleep=worker_progress).run()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split("  ")[2] for line in lines] == ["0/2 images", "1/2 images", "2/2 images"]
    assert lines[-1].endswith("partial")


def test_the_worst_outcome_decides_the_exit_code():
    def job(status):
        return Job(status=status)

    assert cli.exit_code_for([job("completed")]) == 0
    assert cli.exit_code_for([job("failed")]) == 1
    assert cli.exit_code_for([job("partial")]) == 2
    assert cli.exit_code_for([job("cancelled")]) == 3
    assert cli.exit_code_for([job("completed"), job("cancelled"), job("partial")]) == 2


# --- batch_status -----------------------------------------------------------------------------


def test_status_lists_active_jobs_in_queue_order_and_all_lists_finished_ones_too(artist):
    low = submit(artist, priority="low")
    urgent = submit(artist, priority="urgent")
    done = finish(submit(artist, ["pixel art done"]))
    out = run("batch_status")
    ids = [line.split()[0] for line in out.splitlines()[1:-1]]
    assert ids == [str(urgent.pk), str(low.pk)]
    assert "2 active jobs (0 running, 2 queued)." in out
    everything = run("batch_status", "--all")
    assert f"\n{done.pk} " in everything and "completed" in everything


def test_status_of_one_job_shows_its_parameters_progress_and_failed_units(artist):
    job = submit(artist, ["pixel art knight", "pixel art slime"], count=2, batch_size=1, seed=7, priority="high")
    first = job.units.order_by("index").first()
    first.mark_failed("ComfyUI failed at node 3 (KSampler): OutOfMemoryError")
    out = run("batch_status", str(job.pk))
    assert f"Job {job.pk}: queued" in out and "priority high" in out and "seed 7" in out
    assert "2 prompts x 2 images" in out and "0/4 images" in out
    assert "1 failed, 3 pending" in out and "unit 0: ComfyUI failed at node 3" in out
    assert "prompt   pixel art knight" in out


def test_status_json_is_parseable_for_the_list_one_job_and_the_statistics(artist):
    job = submit(artist, count=4, batch_size=4)
    listing = json.loads(run("batch_status", "--json"))
    assert [j["id"] for j in listing["jobs"]] == [job.pk] and listing["paused"] is False
    one = json.loads(run("batch_status", str(job.pk), "--json"))
    assert one["id"] == job.pk and one["units"][0]["batch_size"] == 4 and one["units"][0]["comfyui_prompt_id"]
    stats = json.loads(run("batch_status", "--stats", "--json"))
    assert stats["queue_size"] == 1 and stats["images_queued"] == 4 and stats["active_jobs"] == 1


def test_status_stats_shows_throughput_generation_times_queue_size_and_active_jobs(artist):
    job = submit(artist, count=4, batch_size=4)
    unit = job.units.get()
    for i in range(2):
        Image.objects.create(job=job, unit=unit, sequence=i + 1, batch_index=i, prompt=unit.prompt, seed=unit.seed,
                             file_path=f"x/{i}.png", width=64, height=64, generation_time=1.5 + i)
    out = run("batch_status", "--stats")
    assert "throughput" in out and "images/min" in out
    assert "2.00 s/image average, 1.50 fastest, 2.50 slowest (last 2 images)" in out
    assert "1 unit pending (4 images to make)" in out and "active jobs        1 (0 running)" in out
    assert "speed      batch 4: 2 images" in out


def test_status_watch_redraws_until_told_to_stop(artist):
    submit(artist)
    out = run("batch_status", "--watch", "--interval", "0.01", "--refreshes", "3")
    assert out.count("--- ") == 3 and out.count("1 active job") == 3
    tty = TTY()
    run("batch_status", "--watch", "--interval", "0.01", "--refreshes", "2", stdout=tty)
    assert tty.getvalue().count("\x1b[H\x1b[2J") == 2
    lines = run("batch_status", "--watch", "--json", "--interval", "0.01", "--refreshes", "2").splitlines()
    assert len(lines) == 2 and all(json.loads(line)["jobs"] for line in lines)


def test_watching_one_job_stops_when_it_is_done(artist):
    job = finish(submit(artist))
    out = run("batch_status", str(job.pk), "--watch", "--interval", "0.01")
    assert out.count("--- ") == 1 and "completed" in out


@pytest.mark.parametrize("args, expected", [
    (["99999"], "job 99999 does not exist"),
    (["1", "--stats"], "--stats: not with a JOB_ID"),
    (["1", "--all"], "--all: not with a JOB_ID"),
    (["--interval", "0"], "--interval: must be more than 0"),
    (["--refreshes", "-1"], "--refreshes: must be a positive number"),
])
def test_status_mistakes_are_one_line_naming_the_flag(artist, args, expected):
    submit(artist)
    assert expected in usage_error("batch_status", *args)


# --- batch_cancel -----------------------------------------------------------------------------


def test_cancel_a_job_by_id_cancels_its_queued_units(artist):
    job = submit(artist, count=8, batch_size=4)
    out = run("batch_cancel", str(job.pk))
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.finished_at is not None
    assert set(job.units.values_list("status", flat=True)) == {Unit.Status.CANCELLED}
    assert f"Cancelled job {job.pk} (it was queued" in out
    assert "already cancelled" in run("batch_cancel", str(job.pk))


def _running(job: Job) -> Unit:
    unit = Unit.claim_next(node="gpu-test", comfyui_url="http://sim")
    assert unit.job_id == job.pk
    job.mark_started()
    unit.mark_running()
    return unit


def test_cancel_all_queued_spares_running_jobs_and_all_cancels_both(artist):
    running = submit(artist, count=8, batch_size=4)
    _running(running)
    queued = submit(artist, ["pixel art slime"])
    assert "Cancelled 1 queued job." in run("batch_cancel", "--all-queued")
    assert Job.objects.get(pk=queued.pk).status == Job.Status.CANCELLED
    assert Job.objects.get(pk=running.pk).status == Job.Status.RUNNING
    another = submit(artist, ["pixel art bat"])
    assert "Cancelled 2 jobs (1 queued, 1 running)." in run("batch_cancel", "--all")
    assert set(Job.objects.filter(pk__in=[running.pk, another.pk]).values_list("status", flat=True)) == {"cancelled"}


def test_after_current_lets_the_running_unit_finish_and_cancels_the_rest(artist):
    job = submit(artist, count=12, batch_size=4)
    unit = _running(job)
    out = run("batch_cancel", str(job.pk), "--after-current")
    assert "2 units will not run; the 1 unit running will finish" in out
    assert Unit.objects.get(pk=unit.pk).status == Unit.Status.RUNNING
    assert job.units.filter(status=Unit.Status.CANCELLED).count() == 2
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING  # closed by the worker after the unit


def test_after_current_alone_stops_every_active_job(artist):
    first, second = submit(artist), submit(artist, ["pixel art bat"])
    _running(first)
    data = json.loads(run("batch_cancel", "--after-current", "--json"))
    assert data == {"action": "stop_all_after_current", "jobs": 2, "message": data["message"]}
    assert Job.objects.get(pk=second.pk).status == Job.Status.CANCELLED
    assert not Unit.objects.filter(status=Unit.Status.PENDING).exists()


@pytest.mark.parametrize("args, expected", [
    ([], "give a JOB_ID, --all-queued or --all"),
    (["99999"], "job 99999 does not exist"),
    (["{job}", "--all"], "--all: not with a JOB_ID"),
    (["--all-queued", "--after-current"], "--after-current: queued jobs have no current unit"),
    (["{done}"], "already finished (completed): there is nothing to cancel"),
])
def test_cancel_mistakes_are_one_line_naming_the_flag(artist, args, expected):
    job, done = submit(artist), finish(submit(artist))
    args = [a.format(job=job.pk, done=done.pk) for a in args]
    assert expected in usage_error("batch_cancel", *args)
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


def test_all_queued_and_all_cannot_be_combined(artist):
    message = usage_error("batch_cancel", "--all-queued", "--all")
    assert "--all: not allowed with argument --all-queued" in message


# --- batch_queue ------------------------------------------------------------------------------


def test_queue_pauses_resumes_and_reports_its_state(artist):
    assert "Paused the queue" in run("batch_queue", "--pause", "--user", "ops")
    control_row = QueueControl.objects.get()
    assert control_row.paused and control_row.paused_by == "ops"
    assert "The queue is PAUSED by ops" in run("batch_queue")
    assert "Resumed" in run("batch_queue", "--resume")
    assert not QueueControl.is_paused()
    assert json.loads(run("batch_queue", "--json"))["paused"] is False


def test_queue_priority_moves_a_job_and_its_pending_units(artist):
    job = submit(artist, count=8, batch_size=4, priority="low")
    assert "now has priority urgent" in run("batch_queue", "--priority", str(job.pk), "urgent")
    assert Job.objects.get(pk=job.pk).priority_name == "urgent"
    assert set(job.units.values_list("priority", flat=True)) == {40}
    assert "--priority: unknown level 'asap'" in usage_error("batch_queue", "--priority", str(job.pk), "asap")


def test_queue_retries_failed_units_and_requeues_a_job(artist):
    job = submit(artist, count=4, batch_size=4, seed=5)
    job.units.get().mark_failed("disk full")
    job.finish_if_complete()
    assert "1 failed unit queued again" in run("batch_queue", "--retry-failed", str(job.pk))
    assert job.units.get().status == Unit.Status.PENDING
    assert "has no failed units" in usage_error("batch_queue", "--retry-failed", str(job.pk))
    out = run("batch_queue", "--requeue", str(job.pk))
    copy = Job.objects.latest("id")
    assert copy.requeued_from_id == job.pk and copy.base_seed == 5 and copy.owner == artist
    assert f"Queued job {copy.pk}, a copy of job {job.pk}" in out


# --- batch_cleanup ----------------------------------------------------------------------------


def _with_files(job: Job) -> Path:
    folder = Path(os.fspath(outputs.job_dir(job)))
    unit = job.units.first()
    for name in ("images/sprite_0001_1.png", "thumbs/sprite_0001_1.png", "metadata/sprite_0001.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x" * 100)
    Image.objects.create(job=job, unit=unit, sequence=1, batch_index=0, prompt=unit.prompt, seed=1,
                         file_path=f"batches/{job.output_dir}/images/sprite_0001_1.png", width=64, height=64)
    return folder


def test_cleanup_removes_old_batches_files_and_rows_together_and_spares_active_ones(artist, output_root):
    old = finish(submit(artist, ["old"]), ago=timedelta(days=10))
    old_folder = _with_files(old)
    Event.objects.create(job=old, kind="job_finished")
    recent = finish(submit(artist, ["recent"]), ago=timedelta(days=1))
    recent_folder = _with_files(recent)
    active = submit(artist, ["still running"])
    _running(active)
    Job.objects.filter(pk=active.pk).update(created_at=timezone.now() - timedelta(days=30))
    active_folder = _with_files(active)
    orphan = output_root / "batches" / "batch_20240101_000000_999"
    (orphan / "images").mkdir(parents=True)
    (orphan / "images" / "sprite_0001_1.png").write_bytes(b"y" * 50)
    long_ago = time.time() - 20 * 86400
    for path in (orphan / "images" / "sprite_0001_1.png", orphan / "images", orphan):
        os.utime(path, (long_ago, long_ago))

    dry = run("batch_cleanup", "--older-than", "7", "--dry-run")
    assert f"would remove job {old.pk} (completed" in dry and "would remove folder without a job" in dry
    assert "Would remove 1 job" in dry and f"Left alone (still active): job {active.pk}." in dry
    assert old_folder.exists() and orphan.exists() and Job.objects.filter(pk=old.pk).exists()

    out = run("batch_cleanup", "--older-than", "7")
    assert "Removed 1 job" in out and "1 folder without a job" in out
    assert not old_folder.exists() and not orphan.exists()
    assert not Job.objects.filter(pk=old.pk).exists()
    assert not Unit.objects.filter(job_id=old.pk).exists() and not Image.objects.filter(job_id=old.pk).exists()
    assert not Event.objects.filter(job_id=old.pk).exists()
    assert recent_folder.exists() and Job.objects.filter(pk=recent.pk).exists()
    assert active_folder.exists() and Image.objects.filter(job=active).exists()
    assert Job.objects.get(pk=active.pk).status == Job.Status.RUNNING


def test_cleanup_never_removes_a_cancelled_job_whose_unit_is_still_in_flight(artist, output_root):
    job = submit(artist, count=8, batch_size=4)
    _running(job)
    control.job_cancel(job, by="test")  # the worker has not interrupted the unit yet
    folder = _with_files(job)
    report = cleanup_old_batches(older_than_days=0, now=timezone.now() + timedelta(days=1))
    assert report.spared_active == [job.pk] and not report.removals
    assert folder.exists() and Job.objects.filter(pk=job.pk).exists()


def test_cleanup_json_reports_what_it_removed(artist, output_root):
    old = finish(submit(artist), ago=timedelta(days=3))
    _with_files(old)
    data = json.loads(run("batch_cleanup", "--older-than", "2", "--json"))
    assert [r["job_id"] for r in data["removals"]] == [old.pk] and data["removals"][0]["removed"]
    assert data["bytes"] == 300 and data["errors"] == [] and data["dry_run"] is False


@pytest.mark.parametrize("args, expected", [
    ([], "the following arguments are required: --older-than"),
    (["--older-than", "-1"], "--older-than: must be 0 days or more"),
    (["--older-than", "soon"], "--older-than: expected a number of days"),
])
def test_cleanup_mistakes_are_one_line_naming_the_flag(args, expected):
    assert expected in usage_error("batch_cleanup", *args)


# --- real processes ---------------------------------------------------------------------------


def _env(worker_env, comfyui_url: str) -> dict:
    return {**os.environ, **worker_env, "COMFYUI_URL": comfyui_url, "PYTHONUNBUFFERED": "1"}


def _popen(env, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, MANAGE, *args], env=env, cwd=str(ROOT), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, MANAGE, *args], env=env, cwd=str(ROOT), text=True,
                          capture_output=True, timeout=60)


def _block(job: Job, sequence: int, seed: int) -> None:
    """A folder where the image file should go: writing it fails as a full or read-only disk would."""
    path = outputs.job_dir(job) / "images" / f"sprite_{sequence:04d}_{seed}.png"
    path.mkdir(parents=True)


@pytest.mark.django_db(transaction=True)
def test_every_command_runs_as_a_real_process_against_a_live_worker(
        simulator_factory, qcluster_factory, worker_env, output_root, tmp_path, django_user_model):
    django_user_model.objects.create_superuser("admin", "", "pw")
    _, url = simulator_factory("--step-ms", "10")
    control.queue_pause(by="test")  # hold everything until the blockers are in place
    qcluster_factory(url)
    env = _env(worker_env, url)
    prompts = tmp_path / "two.txt"
    prompts.write_text("pixel art knight\npixel art slime\n")
    small = ["--batch-size", "1", *SMALL]
    procs = {
        "ok": _popen(env, "batch_generate", "--prompt", "pixel art warrior", "--count", "2", *small,
                     "--name", "ok", "--wait", "--json"),
        "monitor": _popen(env, "batch_generate", "--prompt", "pixel art mage", "--count", "3", *small,
                          "--name", "monitor", "--monitor"),
        "partial": _popen(env, "batch_generate", "--prompts-file", str(prompts), "--seed", "100", *small,
                          "--name", "partial", "--wait"),
        "failed": _popen(env, "batch_generate", "--prompt", "pixel art door", "--seed", "500", *small,
                         "--name", "failed", "--wait"),
        "cancelled": _popen(env, "batch_generate", "--prompt", "pixel art ghost", *small,
                            "--name", "cancelled", "--wait"),
    }
    wait_until(lambda: Job.objects.count() == len(procs), timeout=30, message="every job queued")
    jobs = {job.name: job for job in Job.objects.all()}
    _block(jobs["partial"], 2, 101)  # its second prompt cannot be written
    _block(jobs["failed"], 1, 500)  # its only image cannot be written

    cancel = _run(env, "batch_cancel", str(jobs["cancelled"].pk))
    assert cancel.returncode == 0 and f"Cancelled job {jobs['cancelled'].pk}" in cancel.stdout
    status = _run(env, "batch_status", "--json")
    assert status.returncode == 0
    listed = json.loads(status.stdout)
    assert listed["paused"] is True
    assert sorted(j["name"] for j in listed["jobs"]) == ["failed", "monitor", "ok", "partial"]
    resume = _run(env, "batch_queue", "--resume")
    assert resume.returncode == 0 and "Resumed" in resume.stdout

    results = {name: (p.wait(timeout=90), *p.communicate()) for name, p in procs.items()}
    codes = {name: r[0] for name, r in results.items()}
    assert codes == {"ok": 0, "monitor": 0, "partial": 2, "failed": 1, "cancelled": 3}, results
    ok = json.loads(results["ok"][1])
    assert ok["status"] == "completed" and ok["images_done"] == 2 and ok["exit_code"] == 0
    assert [u["status"] for u in ok["units"]] == ["done", "done"]
    monitor = results["monitor"][1]
    assert f"Queued job {jobs['monitor'].pk}" in monitor and "3/3 images" in monitor and "img/min" in monitor
    assert f"Job {jobs['monitor'].pk} completed: 3 of 3 images made" in monitor
    assert "1 of 2 images made, 1 failed" in results["partial"][1] and "cannot write" in results["partial"][1]
    assert "0 of 1 images made, 1 failed" in results["failed"][1]
    assert f"Job {jobs['cancelled'].pk} cancelled" in results["cancelled"][1]
    assert all(r[2] == "" for r in results.values()), "nothing on stderr"

    # The same flags through call_command, against the same worker.
    out = io.StringIO()
    call_command("batch_generate", "--prompt", "pixel art key", "--count", "2", *small, "--monitor",
                 "--user", "admin", stdout=out)
    assert "2/2 images" in out.getvalue() and "completed: 2 of 2 images made" in out.getvalue()
    with pytest.raises(CommandError, match="--model: ComfyUI has no checkpoint 'nope.safetensors'"):
        call_command("batch_generate", "--prompt", "x", "--model", "nope.safetensors", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--lora: ComfyUI has no LoRA 'nope.safetensors'"):
        call_command("batch_generate", "--prompt", "x", "--lora", "nope.safetensors", stdout=io.StringIO())

    # Cleanup as a process: the finished batches go, files and rows; a queued job stays.
    control.queue_pause(by="test")
    waiting = submit(get_user_model().objects.get(username="admin"))
    finished = list(Job.objects.exclude(pk=waiting.pk))
    folders = [output_root / "batches" / j.output_dir for j in finished]
    assert any(f.exists() for f in folders)
    cleanup = _run(env, "batch_cleanup", "--older-than", "0")
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"Removed {len(finished)} jobs" in cleanup.stdout
    assert not any(f.exists() for f in folders)
    assert list(Job.objects.values_list("pk", flat=True)) == [waiting.pk]
    assert not Image.objects.exists()

    # --wait through call_command: a disk that cannot be written fails the job (exit 1).
    call_command("batch_cancel", str(waiting.pk), stdout=io.StringIO())
    batches = output_root / "batches"
    if batches.exists():
        batches.rmdir()
    batches.write_text("a file where the batches folder should be")
    control.queue_resume(by="test")
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("batch_generate", "--prompt", "pixel art lamp", *small, "--wait", stdout=out)
    assert exited.value.code == cli.EXIT_FAILED and "failed: 0 of 1 images made" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_bad_flag_in_a_real_process_is_one_line_on_stderr_and_exit_64(worker_env, tmp_path):
    env = _env(worker_env, f"http://127.0.0.1:{free_port()}")
    binary = _file(tmp_path, "p.txt", b"\x00\x01")
    procs = [
        _popen(env, "batch_generate", "--prompt", "x", "--batch-size", "3"),
        _popen(env, "batch_generate", "--prompt", "x", "--cfg-scale", "99", "--steps", "0"),
        _popen(env, "batch_generate", "--prompts-file", binary),
        _popen(env, "batch_cancel", "--all-queued", "--after-current"),
    ]
    outputs = [(p.wait(timeout=90), *p.communicate()) for p in procs]
    expected = ["--batch-size: invalid choice", "--cfg-scale: must be between", "--prompts-file: ",
                "--after-current: queued jobs have no current unit"]
    for (code, stdout, stderr), text in zip(outputs, expected):
        assert code == cli.EXIT_USAGE, (code, stdout, stderr)
        assert stdout == "" and len(stderr.splitlines()) == 1 and text in stderr, stderr
        assert stderr.startswith("manage.py batch_") and ": error: " in stderr
    assert "--steps: must be between" in outputs[1][2]
    assert not Job.objects.exists()


# The seed's usage (WS07 completion report, "CLI Tools" and "Usage Examples"), as written apart
# from the `python cli/<name>.py` prefix, which is now `python manage.py <name>`.
SEED_EXAMPLES = [
    'batch_generate --prompt "pixel art warrior" --count 10',
    "batch_generate --prompts-file prompts.txt --batch-size 4",
    "batch_generate --prompts-file prompts.txt --priority high --batch-size 8 --steps 30 --cfg-scale 8.5",
    'batch_generate --prompt "sprite" --count 5 --monitor',
    "batch_generate --prompts-file sprite_ideas.txt --batch-size 8 --steps 15 --cfg-scale 7.0 --priority high "
    "--monitor",
    "batch_generate --prompts-file production_sprites.txt --batch-size 4 --steps 20 --cfg-scale 8.0 "
    "--model sd_xl_base_1.0.safetensors --lora pixel_art_lora.safetensors --wait",
    "batch_generate --prompts-file hero_sprites.txt --batch-size 1 --steps 30 --cfg-scale 8.5 --priority normal "
    "--monitor",
    'batch_generate --prompt "pixel art character walking, side view, animation frame" --count 8 --batch-size 8 '
    "--steps 20 --seed 12345 --monitor",
    "batch_status",
    "batch_status <job_id>",
    "batch_status --stats",
    "batch_status --all",
    "batch_cancel <job_id>",
    "batch_cancel --all-queued",
    "batch_cancel --all",
]


@pytest.mark.django_db(transaction=True)
def test_every_seed_usage_example_runs_as_written(simulator_factory, qcluster_factory, worker_env, tmp_path,
                                                 monkeypatch, artist, settings):
    import shlex
    import signal

    import re

    # The studio's profiles, drawing 64 px sprites instead of 1024 px ones: the examples rely on the
    # profile for the size, and small images keep the test fast.
    profiles = tmp_path / "batch_profiles.yaml"
    text = (ROOT / "profiles" / "batch_profiles.yaml").read_text()
    profiles.write_text(re.sub(r"(?m)^(\s+(?:width|height)): 1024\b", r"\1: 64", text))
    settings.PROFILES_FILE = profiles
    _, url = simulator_factory("--step-ms", "2")
    qcluster_factory(url)
    monkeypatch.chdir(tmp_path)
    for name in ("prompts.txt", "sprite_ideas.txt", "production_sprites.txt", "hero_sprites.txt"):
        (tmp_path / name).write_text("pixel art knight\npixel art slime\n")
    outputs_by_example = {}
    for example in SEED_EXAMPLES:
        if example.startswith("batch_cancel") and not QueueControl.is_paused():
            control.queue_pause(by="test")  # something left to cancel
            to_cancel = [submit(artist, ["pixel art bat"]), submit(artist, ["pixel art rat"])]
        last = Job.objects.order_by("-id").values_list("pk", flat=True).first()
        args = shlex.split(example.replace("<job_id>", str(last)))
        outputs_by_example[example] = run(*args)
        if example == "batch_status <job_id>":
            shown = last
    assert all(Job.objects.get(pk=j.pk).status == Job.Status.CANCELLED for j in to_cancel)
    assert f"Cancelled job {to_cancel[1].pk}" in outputs_by_example["batch_cancel <job_id>"]
    assert "Cancelled 1 queued job." in outputs_by_example["batch_cancel --all-queued"]
    generated = Job.objects.exclude(pk__in=[j.pk for j in to_cancel]).order_by("id")
    assert generated.count() == 8
    monitored = [j for j, ex in zip(generated, SEED_EXAMPLES) if "--monitor" in ex or "--wait" in ex]
    assert all(j.status == Job.Status.COMPLETED for j in monitored)
    assert [j.images_done for j in monitored] == [5, 2, 2, 2, 8]
    frames = Job.objects.get(base_seed=12345)
    assert (frames.images_done, frames.batch_size, frames.units.get().seed) == (8, 8, 12345)
    assert {(j.width, j.height) for j in generated} == {(64, 64)}
    assert "Cancelled 0 jobs" in outputs_by_example["batch_cancel --all"]
    assert f"Job {shown}: completed" in outputs_by_example["batch_status <job_id>"]
    assert "Queue statistics" in outputs_by_example["batch_status --stats"]
    assert "images made        33" in outputs_by_example["batch_status --stats"]
    assert outputs_by_example["batch_status --all"].count("completed") == 8

    # --watch refreshes until Ctrl-C.
    env = _env(worker_env, url)
    watch = subprocess.Popen([sys.executable, MANAGE, "batch_status", "--watch"], env=env, cwd=str(ROOT),
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    frame = [watch.stdout.readline()]
    while " running, " not in frame[-1]:
        frame.append(watch.stdout.readline())
    assert frame[0].startswith("--- ") and "0 active jobs (0 running, 0 queued); the queue is PAUSED" in frame[-1]
    watch.send_signal(signal.SIGINT)
    _, stderr = watch.communicate(timeout=20)
    assert watch.returncode == 0 and stderr == ""


def test_batch_status_says_when_comfyui_is_unreachable_and_stats_list_the_nodes():
    from datetime import timedelta

    from django.utils import timezone

    from batches.models import WorkerNode

    node = WorkerNode.register(name="dgx-2", comfyui_url="http://10.0.0.2:8188")
    node.mark_unreachable("connection refused")
    WorkerNode.objects.filter(pk=node.pk).update(unreachable_since=timezone.now() - timedelta(minutes=3))
    out = io.StringIO()
    call_command("batch_status", stdout=out)
    assert "ComfyUI unreachable since" in out.getvalue() and "dgx-2" in out.getvalue()
    assert "connection refused" in out.getvalue()
    stats = io.StringIO()
    call_command("batch_status", "--stats", stdout=stats)
    assert "dgx-2" in stats.getvalue() and "UNREACHABLE" in stats.getvalue() and "img/min" in stats.getvalue()


def test_batch_status_of_an_active_job_names_a_comfyui_outage():
    from django.contrib.auth import get_user_model

    from batches.models import WorkerNode
    from batches.services.submission import job_submit

    owner = get_user_model().objects.create_user("outage", password="pw")
    job = job_submit(owner=owner, prompts=["p"], count=1, batch_size=1, client=None, wake=False)
    WorkerNode.register(name="dgx-3", comfyui_url="http://127.0.0.1:8188").mark_unreachable("timed out")
    out = io.StringIO()
    call_command("batch_status", str(job.pk), stdout=out)
    assert "ComfyUI unreachable since" in out.getvalue() and "dgx-3" in out.getvalue()
