"""Batch size "auto": each unit runs at the largest batch size the free VRAM allows.

The choice function on its own, every door that takes "auto" (CLI, API request, form, profiles
file), the simulator's VRAM knobs, and one job end to end on a real simulator and qcluster whose
free VRAM is shrunk and grown while it runs.
"""
from __future__ import annotations

import io
import json

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from batches import cli
from batches.comfyui import ComfyUIUnreachable
from batches.models import Image, Job, QueueControl, Unit
from batches.services import auto_batch, job_requests, outputs
from batches.services.submission import SubmissionError, job_submit
from batches.tasks import wake_workers
from tests.processes import free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

GB = 1024**3
TABLE = {1: 10.0, 4: 22.0, 8: 38.0}
SMALL = {"width": 64, "height": 64}


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


@pytest.fixture
def no_comfyui(settings):
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"


# --- the choice ----------------------------------------------------------------------------------

@pytest.mark.parametrize("free_gb, size", [
    (119, 8), (42, 8), (41.9, 4), (36, 4), (26, 4), (25.9, 1), (21, 1), (14, 1), (3, 1),
])
def test_the_largest_size_whose_table_figure_plus_the_margin_fits_is_chosen(free_gb, size):
    assert auto_batch.choose(unit_size=8, free_gb=free_gb, fallback=4, table=TABLE, margin_gb=4) == size


def test_a_unit_is_never_grown_and_unknown_vram_takes_the_profiles_size():
    assert auto_batch.choose(unit_size=4, free_gb=119, fallback=8, table=TABLE, margin_gb=4) == 4
    assert auto_batch.choose(unit_size=3, free_gb=119, fallback=8, table=TABLE, margin_gb=4) == 3
    assert auto_batch.choose(unit_size=8, free_gb=None, fallback=4, table=TABLE, margin_gb=4) == 4
    assert auto_batch.choose(unit_size=2, free_gb=None, fallback=4, table=TABLE, margin_gb=4) == 2
    assert auto_batch.choose(unit_size=8, free_gb=30, fallback=4, table=TABLE, margin_gb=0) == 4
    assert auto_batch.needed_gb(3, TABLE) == 22 and auto_batch.needed_gb(16, TABLE) == 70


class FakeClient:
    def __init__(self, answer):
        self.answer = answer

    def system_stats(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def cuda(total_gb, free_gb, torch_total_gb=0.0, torch_free_gb=0.0, kind="cuda"):
    return {"devices": [{"name": "cuda:0", "type": kind, "vram_total": int(total_gb * GB),
                         "vram_free": int(free_gb * GB), "torch_vram_total": int(torch_total_gb * GB),
                         "torch_vram_free": int(torch_free_gb * GB)}]}


def test_reading_vram_adds_back_what_comfyui_holds_except_on_the_cpu():
    vram = auto_batch.read_vram(FakeClient(cuda(119, 14, torch_total_gb=24, torch_free_gb=2)))
    assert (vram.free, vram.held) == (14 * GB, 22 * GB) and round(vram.for_comfyui_gb, 1) == 36.0
    # --cpu: the torch figures are system RAM, nothing is added back.
    cpu = auto_batch.read_vram(FakeClient(cuda(25, 24, torch_total_gb=25, torch_free_gb=24, kind="cpu")))
    assert cpu.held == 0
    for answer in (ComfyUIUnreachable("down"), {}, {"devices": []}, {"devices": [{"name": "x"}]},
                   cuda(0, 0), {"devices": [{"vram_total": "lots", "vram_free": 1}]}):
        assert auto_batch.read_vram(FakeClient(answer)) is None, answer


def test_decide_uses_the_profiles_size_when_vram_is_unknown(owner, no_comfyui):
    job = job_submit(owner=owner, prompts=["pixel art knight"], count=8, profile="balanced", batch_size="auto",
                     client=None, wake=False)
    unit = job.units.get()
    assert (job.batch_auto, job.batch_size, unit.batch_size) == (True, 8, 8)
    choice = auto_batch.decide(unit, FakeClient(ComfyUIUnreachable("down")))
    assert (choice.size, choice.vram_free) == (4, None)  # balanced: batch 4
    choice = auto_batch.decide(unit, FakeClient(cuda(119, 30, torch_total_gb=6, torch_free_gb=0)))
    assert choice.size == 4 and round(choice.vram_free / GB, 1) == 36.0 and "chose 4 at 36.0 GB free" in choice.reason
    assert auto_batch.decide(unit, FakeClient(cuda(119, 100))).size == 8
    assert auto_batch.note(True, 4, 30.14 * GB) == "auto (chose 4 at 30.1 GB free)"
    assert auto_batch.note(False, 4, 30 * GB) == "" and auto_batch.note(True, 8, None) == "auto (chose 8, VRAM unknown)"


# --- every door ------------------------------------------------------------------------------------

def test_the_cli_takes_batch_size_auto_and_shows_it(owner, no_comfyui):
    out = io.StringIO()
    call_command("batch_generate", "--prompt", "pixel art tree", "--count", "10", "--batch-size", "auto",
                 "--width", "64", "--height", "64", "--steps", "4", "--user", "artist", stdout=out,
                 stderr=io.StringIO())
    job = Job.objects.get()
    assert job.batch_auto and job.batch_size == 8
    assert sorted(job.units.values_list("batch_size", flat=True)) == [2, 8]  # planned at the largest size
    assert "batch size auto" in out.getvalue()
    payload = cli.job_payload(job, units=True)
    assert payload["batch_auto"] is True and payload["parameters"]["batch_auto"] is True
    status = io.StringIO()
    call_command("batch_status", str(job.pk), stdout=status, stderr=io.StringIO())
    assert "batch size auto" in status.getvalue()
    with pytest.raises(Exception) as caught:
        call_command("batch_generate", "--prompt", "x", "--batch-size", "3", "--user", "artist",
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert "auto" in str(caught.value)
    assert Job.objects.count() == 1


def test_the_api_request_key_takes_auto_and_still_refuses_other_strings(owner, no_comfyui):
    job = job_requests.submit(owner=owner, client=None, data={"prompt": "pixel art slime", "count": 4,
                                                              "batch_size": "auto", "profile": "quality"})
    assert job.batch_auto and job.batch_size == 8 and job.units.get().batch_size == 4
    for bad in ("big", 2.5, True, "8"):
        with pytest.raises(SubmissionError) as caught:
            job_requests.submit(owner=owner, client=None, data={"prompt": "x", "batch_size": bad})
        assert "batch_size" in caught.value.errors, bad
    plain = job_requests.submit(owner=owner, client=None, data={"prompt": "x", "batch_size": 4})
    assert not plain.batch_auto and plain.batch_size == 4


def test_the_form_offers_auto_and_the_job_page_says_auto(owner, no_comfyui):
    browser = Client()
    browser.force_login(owner)
    page = browser.get(reverse("job-new"))
    assert b'value="auto"' in page.content
    response = browser.post(reverse("job-new"), {"prompts": "pixel art door", "count": "4", "profile": "speed",
                                                 "batch_size": "auto", "steps": "4", "width": "64", "height": "64",
                                                 "workflow": "batch_optimized", "priority": "normal"})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get()
    assert job.batch_auto and job.batch_size == 8
    detail = browser.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "auto <span" in detail
    # "New job like this" carries auto.
    from batches.forms import initial_from_job

    assert initial_from_job(job)["batch_size"] == "auto"


def test_a_profile_may_say_batch_size_auto(tmp_path, settings):
    from batches.profiles import ProfileError, load_profiles

    source = (settings.BASE_DIR / "profiles" / "batch_profiles.yaml").read_text()
    assert "    batch_size: 8\n    steps: 15\n" in source
    text = source.replace("    batch_size: 8\n    steps: 15\n", "    batch_size: auto\n    steps: 15\n", 1)
    path = tmp_path / "profiles.yaml"
    path.write_text(text)
    config = load_profiles(path)
    speed = config.profiles["speed"]
    assert speed.batch_auto and speed.batch_size == 8
    assert not config.profiles["balanced"].batch_auto
    path.write_text(source.replace("    batch_size: 8\n    steps: 15\n", "    batch_size: huge\n    steps: 15\n", 1))
    with pytest.raises(ProfileError):
        load_profiles(path)
    assert load_profiles().profiles["speed"].batch_auto is False


# --- the simulator's knobs ---------------------------------------------------------------------------

def test_the_simulator_reports_and_enforces_vram_used_by_others(simulator_factory):
    _, url = simulator_factory("--vram-used-gb", "100")
    device = requests.get(url + "/system_stats", timeout=5).json()["devices"][0]
    assert device["vram_total"] == 119 * GB and device["vram_free"] == 19 * GB
    for body in ({"used_gb": -1}, {"used_gb": 120}, {"used_gb": "5"}, {"used_gb": True}, {}, [1]):
        answer = requests.post(url + "/sim/vram", json=body, timeout=5)
        assert answer.status_code == 400 and "used_gb" in answer.json()["error"], body
    answer = requests.post(url + "/sim/vram", data=b"not json", timeout=5)
    assert answer.status_code == 400
    state = requests.post(url + "/sim/vram", json={"used_gb": 89}, timeout=5).json()
    assert state == {"used_gb": 89, "total_gb": 119, "vram_total": 119 * GB, "vram_free": 30 * GB}
    assert requests.get(url + "/api/system_stats", timeout=5).json()["devices"][0]["vram_free"] == 30 * GB


# --- end to end ----------------------------------------------------------------------------------------

def set_used(url: str, gb: float) -> None:
    requests.post(url + "/sim/vram", json={"used_gb": gb}, timeout=5).raise_for_status()


def pause_until_idle(job: Job) -> None:
    QueueControl.set_paused(True, by="test")
    wait_until(lambda: not Unit.objects.filter(job=job, status__in=Unit.IN_FLIGHT).exists(), timeout=20,
               message="the worker to settle with the queue paused")


def resume() -> None:
    QueueControl.set_paused(False, by="test")
    wake_workers()


def test_units_follow_free_vram_down_and_up_and_every_image_is_made_once(simulator_factory, qcluster_factory,
                                                                          owner, output_root):
    _, url = simulator_factory("--step-ms", "40")
    qcluster_factory(url)
    job = job_submit(owner=owner, prompts=["pixel art golem"], count=80, profile="speed", steps=4,
                     batch_size="auto", client=None, **SMALL)
    assert job.batch_auto and job.units.count() == 10

    def done(size):
        return lambda: Unit.objects.filter(job=job, status=Unit.Status.DONE, batch_size=size).exists()

    wait_until(done(8), timeout=30, message="a unit at 8 with plenty of VRAM")
    pause_until_idle(job)
    set_used(url, 83)  # 36 GB for ComfyUI (30 free + its 6 GB of weights): batch 4
    resume()
    wait_until(done(4), timeout=30, message="a unit at 4")
    pause_until_idle(job)
    set_used(url, 98)  # 21 GB: batch 1
    resume()
    wait_until(done(1), timeout=30, message="a unit at 1")
    pause_until_idle(job)
    set_used(url, 0)  # plenty again: the units still planned at 8 run at 8
    resume()
    wait_until(lambda: Job.objects.get(pk=job.pk).status in Job.FINISHED, timeout=60, message="the job to finish")
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED and job.images_done == job.images_planned == 80
    units = list(job.units.order_by("claimed_at", "id"))
    ran = [u for u in units if u.status == Unit.Status.DONE]
    assert all(u.batch_size_chosen == u.batch_size and u.vram_free and u.vram_total == 119 * GB for u in ran)
    sizes = [u.batch_size for u in ran]
    assert {8, 4, 1} <= set(sizes)
    last_one = max(i for i, u in enumerate(ran) if u.batch_size == 1)
    assert 8 in sizes[last_one + 1:], sizes  # grown again once VRAM was free
    split = [u for u in units if u.status == Unit.Status.SPLIT]
    assert split and all("batch size auto chose" in u.error for u in split)
    assert all(u.downgraded_from is None for u in ran)  # not an out-of-memory downgrade
    four = [u for u in ran if u.batch_size == 4]
    seen = [round(u.vram_free / GB, 1) for u in four]
    # Sized at 36 GB while VRAM was short; a piece of 4 left over when VRAM came back runs at 4
    # (pieces never grow) and records what it saw then. Either way, 4 fitted (22 GB + 4 GB margin).
    assert 36.0 in seen and all(free >= 26 for free in seen), seen

    # Every image once: sequences 1..80, one file each, the metadata saying how it was made.
    images = list(Image.objects.filter(job=job).order_by("sequence"))
    assert [i.sequence for i in images] == list(range(1, 81))
    folder = outputs.job_dir(job)
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(
        outputs.image_name(i.sequence, i.seed) for i in images)
    by_unit = {u.pk: u for u in ran}
    for image in images:
        meta = json.loads((folder / "metadata" / outputs.metadata_name(image.sequence)).read_text())
        unit = by_unit[image.unit_id]
        assert meta["batch_size_chosen"] == unit.batch_size == meta["batch_size"]
        assert meta["vram_free_gb"] == round(unit.vram_free / GB, 1)
        assert meta["batch_auto"] is True
    info = json.loads((folder / "batch_info.json").read_text())
    assert {e["batch_size_chosen"] for e in info["images"]} == set(sizes)

    # The job page's unit strip says what auto chose.
    browser = Client()
    browser.force_login(owner)
    state = browser.get(reverse("job-detail", args=[job.pk]) + "?partial=state").content.decode()
    assert "auto (chose 4 at 36.0 GB free)" in state and "auto (chose 1 at 21.0 GB free)" in state


def test_a_job_with_a_fixed_size_records_it_and_the_vram_seen(simulator_factory, qcluster_factory, owner,
                                                              output_root):
    _, url = simulator_factory("--step-ms", "10", "--vram-used-gb", "70")  # 49 GB: batch 8 fits
    qcluster_factory(url)
    job = job_submit(owner=owner, prompts=["pixel art bat"], count=8, profile="speed", steps=4, batch_size=8,
                     client=None, **SMALL)
    wait_until(lambda: Job.objects.get(pk=job.pk).status in Job.FINISHED, timeout=30, message="the job to finish")
    unit = job.units.get()
    assert unit.status == Unit.Status.DONE and unit.batch_size_chosen == 8  # not auto: never cut down
    folder = outputs.job_dir(job)
    for sequence in range(1, 9):
        meta = json.loads((folder / "metadata" / outputs.metadata_name(sequence)).read_text())
        assert meta["batch_size_chosen"] == 8 and meta["batch_auto"] is False
        assert meta["vram_free_gb"] is None or isinstance(meta["vram_free_gb"], float)
