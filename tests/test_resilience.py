"""Nothing lost, nothing made twice: crashes, outages, cancel, pause, OOM and disk trouble.

Real processes and real signals throughout; every test counts files and rows, not just statuses.
"""
from __future__ import annotations

import time

import pytest
import requests
from django.contrib.auth import get_user_model

from batches.models import Event, Image, Job, QueueControl, Unit, WorkerNode
from batches.services import control
from batches.services.submission import job_submit
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


def submit(owner, prompts=("pixel art warrior",), **params):
    defaults = {"profile": "speed", "steps": 4, "client": None, "width": 64, "height": 64}
    return job_submit(owner=owner, prompts=list(prompts), **{**defaults, **params})


def wait_finished(job, timeout=60.0) -> Job:
    wait_until(lambda: Job.objects.filter(pk=job.pk, status__in=Job.FINISHED, finished_at__isnull=False).exists(),
               timeout=timeout, message=f"job {job.pk} to finish")
    return Job.objects.get(pk=job.pk)


def sim_stats(url: str) -> dict:
    return requests.get(url + "/sim/stats", timeout=5).json()


def assert_every_image_once(job: Job, output_root) -> None:
    images = list(Image.objects.filter(job=job).order_by("sequence"))
    assert [i.sequence for i in images] == list(range(1, job.images_planned + 1))
    files = sorted((output_root / "batches" / job.output_dir / "images").glob("*.png"))
    assert len(files) == job.images_planned
    assert sorted(f.name for f in files) == sorted(f"sprite_{i.sequence:04d}_{i.seed}.png" for i in images)
    # No temp file left behind; batch_info.json may still be being rewritten just after the job
    # turned completed, so a temp file that goes away within moments is not a leftover.
    wait_until(lambda: not list(output_root.rglob("*.tmp")), timeout=5, message="no temp files left")


def unit_running(job):
    return lambda: Unit.objects.filter(job=job, status=Unit.Status.RUNNING).first()


def test_a_worker_killed_mid_unit_resumes_and_makes_every_image_exactly_once(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "100")
    worker = qcluster_factory(url)
    job = submit(owner, count=24, batch_size=4, steps=8)
    wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.DONE).count() >= 2, timeout=30,
               message="two units done")
    wait_until(unit_running(job), timeout=10, message="a unit running")
    worker.kill()
    time.sleep(1.0)
    qcluster_factory(url, name="qcluster-restarted")
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
    assert sim_stats(url)["executed"] == job.units.count() == 6  # nothing ran twice on the GPU


def test_a_worker_killed_between_download_and_record_adopts_the_files_once(
        simulator_factory, qcluster_factory, owner, output_root, tmp_path):
    _, url = simulator_factory("--step-ms", "10")
    marker = tmp_path / "crashed-once"
    qcluster_factory(url, DGX_FAULT=f"exit-after-download:{marker}")
    job = submit(owner, count=8, batch_size=4)
    job = wait_finished(job)
    assert marker.exists()  # the worker really died once, after writing files and before recording
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
    assert sim_stats(url)["executed"] == 2


def test_comfyui_killed_and_restarted_mid_unit_loses_nothing(simulator_factory, qcluster_factory, owner,
                                                             output_root):
    sim, url = simulator_factory("--step-ms", "100")
    qcluster_factory(url)
    job = submit(owner, count=12, batch_size=4, steps=8)
    wait_until(unit_running(job), timeout=30, message="a unit running")
    sim.kill()
    wait_until(lambda: WorkerNode.objects.filter(comfyui_ok=False).exists(), timeout=20,
               message="the worker to notice ComfyUI is gone")
    node = WorkerNode.objects.get()
    assert node.unreachable_since is not None and node.last_error
    simulator_factory("--step-ms", "20", port=sim.extra["port"])
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
    assert Event.objects.filter(kind="comfyui_unreachable").exists()
    assert Event.objects.filter(kind="comfyui_back").exists()
    assert WorkerNode.objects.get().comfyui_ok


def test_units_wait_while_comfyui_is_down_at_start_and_run_when_it_comes_up(
        simulator_factory, qcluster_factory, owner, output_root):
    from tests.processes import free_port

    port = free_port()
    qcluster_factory(f"http://127.0.0.1:{port}")
    job = submit(owner, count=4, batch_size=4)
    wait_until(lambda: WorkerNode.objects.filter(comfyui_ok=False).exists(), timeout=20,
               message="ComfyUI reported unreachable")
    time.sleep(1.5)
    assert Job.objects.get(pk=job.pk).status in Job.ACTIVE
    simulator_factory("--step-ms", "10", port=port)
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)


def test_cancelling_a_running_job_interrupts_it_quickly_and_spares_other_clients(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "250")
    qcluster_factory(url)
    job = submit(owner, count=16, batch_size=4, steps=4)
    wait_until(lambda: Unit.objects.filter(job=job, status=Unit.Status.DONE).exists(), timeout=30,
               message="the first unit done")
    wait_until(unit_running(job), timeout=10, message="the second unit running")
    graph = Unit.objects.filter(job=job).first().graph
    graph = {**graph}
    other = requests.post(url + "/prompt", json={"prompt": graph, "client_id": "someone-else",
                                                 "prompt_id": "other-client-prompt"}, timeout=5)
    assert other.status_code == 200
    cancelled_at = time.monotonic()
    assert control.job_cancel(job, by="test")
    job = wait_finished(job, timeout=10)
    assert time.monotonic() - cancelled_at < 2.0
    assert job.status == Job.Status.CANCELLED
    done_units = Unit.objects.filter(job=job, status=Unit.Status.DONE).count()
    assert Image.objects.filter(job=job).count() == 4 * done_units >= 4  # images made are kept
    assert not Unit.objects.filter(job=job, status__in=Unit.OPEN).exists()
    wait_until(lambda: requests.get(url + "/history/other-client-prompt", timeout=5).json(), timeout=15,
               message="the other client's prompt to run")
    entry = requests.get(url + "/history/other-client-prompt", timeout=5).json()["other-client-prompt"]
    assert entry["status"]["status_str"] == "success"


def test_stop_after_current_unit_finishes_that_unit_and_nothing_more(simulator_factory, qcluster_factory,
                                                                    owner, output_root):
    _, url = simulator_factory("--step-ms", "150")
    qcluster_factory(url)
    job = submit(owner, count=16, batch_size=4, steps=4)
    running = wait_until(unit_running(job), timeout=30, message="a unit running")
    control.job_stop_after_current(job, by="test")
    job = wait_finished(job, timeout=20)
    assert job.status == Job.Status.CANCELLED
    assert Unit.objects.get(pk=running.pk).status == Unit.Status.DONE
    assert Unit.objects.filter(job=job, status=Unit.Status.DONE).count() == 1
    assert Image.objects.filter(job=job).count() == 4
    assert len(list((output_root / "batches" / job.output_dir / "images").glob("*.png"))) == 4


def test_pause_lets_the_running_unit_finish_and_resume_carries_on(simulator_factory, qcluster_factory, owner,
                                                                 output_root):
    _, url = simulator_factory("--step-ms", "100")
    qcluster_factory(url)
    job = submit(owner, count=16, batch_size=4, steps=4)
    running = wait_until(unit_running(job), timeout=30, message="a unit running")
    control.queue_pause(by="test")
    wait_until(lambda: Unit.objects.filter(pk=running.pk, status=Unit.Status.DONE).exists(), timeout=10,
               message="the running unit to finish")
    time.sleep(1.5)
    done_while_paused = Unit.objects.filter(job=job, status=Unit.Status.DONE).count()
    assert not Unit.objects.filter(job=job, status__in=Unit.IN_FLIGHT).exists()
    assert done_while_paused < 4
    control.queue_resume(by="test")
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED and not QueueControl.is_paused()
    assert_every_image_once(job, output_root)


def test_a_worker_started_paused_runs_nothing_until_resumed(simulator_factory, qcluster_factory, owner):
    _, url = simulator_factory("--step-ms", "10")
    qcluster_factory(url, DGX_START_PAUSED="1")
    wait_until(QueueControl.is_paused, timeout=20, message="the queue paused at start")
    job = submit(owner, count=4, batch_size=4)
    time.sleep(2)
    assert Unit.objects.filter(job=job, status=Unit.Status.PENDING).count() == 1
    control.queue_resume(by="test")
    assert wait_finished(job).status == Job.Status.COMPLETED


def test_out_of_memory_at_batch_8_degrades_to_batch_4(simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "10", "--vram-gb", "30")
    qcluster_factory(url)
    job = submit(owner, count=8, batch_size=8)
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
    split = Unit.objects.get(job=job, status=Unit.Status.SPLIT)
    assert split.batch_size == 8 and "out of memory" in split.error
    pieces = Unit.objects.filter(job=job, status=Unit.Status.DONE)
    assert sorted(u.batch_size for u in pieces) == [4, 4] and all(u.downgraded_from == 8 for u in pieces)
    assert all(i.metadata["downgraded_from_batch_size"] == 8 for i in Image.objects.filter(job=job))


def test_failures_that_retrying_cannot_fix_fail_the_unit_at_once_with_comfyuis_words(
        simulator_factory, qcluster_factory, owner):
    _, url = simulator_factory("--step-ms", "10", "--vram-gb", "5")
    qcluster_factory(url)
    oom = submit(owner, count=1, batch_size=1)  # even batch 1 needs ~10 GB: an execution error
    refused = submit(owner, count=4, batch_size=4, lora="not-installed.safetensors")  # a 400 from ComfyUI
    oom, refused = wait_finished(oom), wait_finished(refused)
    assert oom.status == refused.status == Job.Status.FAILED
    unit = oom.units.get()
    assert unit.status == Unit.Status.FAILED and unit.attempts == 1
    assert unit.error_details["node_type"] == "KSampler" and unit.error_details["node_id"]
    assert "KSampler" in unit.error and unit.error_details["exception_type"]
    bad = refused.units.get()
    assert "not-installed.safetensors" in bad.error and "lora_name" in bad.error
    assert bad.attempts == 1 and refused.images_failed == 4


def test_an_unwritable_output_folder_fails_the_unit_cleanly_and_retry_works_once_fixed(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "10")
    blocker = output_root / "batches"
    blocker.write_text("a file where the batches folder should be")
    qcluster_factory(url)
    job = wait_finished(submit(owner, count=4, batch_size=4))
    assert job.status == Job.Status.FAILED
    unit = job.units.get()
    assert str(blocker) in unit.error and "Not a directory" in unit.error
    assert Image.objects.filter(job=job).count() == 0
    blocker.unlink()
    assert control.job_retry_failed(job) == 1
    job = wait_finished(job)
    assert job.status == Job.Status.COMPLETED
    assert_every_image_once(job, output_root)
