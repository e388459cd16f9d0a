"""The GPU worker end to end: a real simulator, a real qcluster, the real database and disk."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from PIL import Image as PILImage

from batches.models import Image, Job, QueueControl, Unit
from batches.services import outputs
from batches.services.submission import job_submit
from batches.tasks import wake_workers
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SMALL = {"width": 64, "height": 64}


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


def submit(owner, prompts, **params):
    defaults = {"profile": "speed", "steps": 4, "client": None, **SMALL}
    return job_submit(owner=owner, prompts=prompts, **{**defaults, **params})


def wait_finished(*jobs, timeout=60.0):
    ids = [j.pk for j in jobs]
    wait_until(lambda: Job.objects.filter(pk__in=ids, status__in=Job.FINISHED).count() == len(ids),
               timeout=timeout, message=f"jobs {ids} to finish")
    return [Job.objects.get(pk=i) for i in ids]


def test_jobs_run_in_priority_order_and_every_image_lands_on_disk(simulator_factory, qcluster_factory, owner,
                                                                  output_root):
    _, url = simulator_factory("--step-ms", "25")
    qcluster_factory(url)
    # Eight units: on a loaded machine this test may notice the first one done only when the third
    # runs and the fourth is already on ComfyUI (a unit on the GPU is never taken back), and the
    # busy job must still have units waiting when the others arrive.
    busy = submit(owner, ["pixel art warrior"], count=32, batch_size=4, priority="normal")
    wait_until(lambda: Unit.objects.filter(job=busy, status=Unit.Status.DONE).exists(), timeout=30,
               message="the first job to be running")
    # Paused while the three are queued: queuing them takes longer than one 100 ms unit, so without
    # the pause the high job could finish before the urgent one even exists.
    QueueControl.set_paused(True, by="test")
    assert Unit.objects.filter(job=busy, status=Unit.Status.PENDING).count() >= 2
    low = submit(owner, ["pixel art slime"], count=4, batch_size=4, priority="low")
    high = submit(owner, ["pixel art knight", "pixel art mage"], count=4, batch_size=4, priority="high")
    urgent = submit(owner, ["pixel art dragon"], count=8, batch_size=8, priority="urgent", seed=7)
    QueueControl.set_paused(False, by="test")
    wake_workers()
    busy, low, high, urgent = wait_finished(busy, low, high, urgent)

    assert all(j.status == Job.Status.COMPLETED for j in (busy, low, high, urgent))
    assert urgent.finished_at < high.finished_at < busy.finished_at < low.finished_at

    for job in (busy, low, high, urgent):
        folder = output_root / "batches" / job.output_dir
        assert job.output_dir.startswith(f"batch_{job.created_at:%Y%m%d_%H%M%S}_")
        images = list(job.images.order_by("sequence"))
        assert [i.sequence for i in images] == list(range(1, job.images_planned + 1))
        assert job.images_done == job.images_planned == len(images)
        assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(
            f"sprite_{i.sequence:04d}_{i.seed}.png" for i in images)
        for image in images:
            path = folder / "images" / f"sprite_{image.sequence:04d}_{image.seed}.png"
            with PILImage.open(path) as png:
                assert png.format == "PNG" and png.size == (64, 64)
            assert (folder / "thumbs" / path.name).exists()
            assert outputs.resolve(image.file_path) == path
            meta = json.loads((folder / "metadata" / f"sprite_{image.sequence:04d}.json").read_text())
            for key in ("workflow", "prompt", "negative_prompt", "seed", "batch_size", "batch_index",
                        "checkpoint", "lora", "lora_strength_model", "lora_strength_clip", "steps", "cfg",
                        "sampler", "scheduler", "width", "height", "comfyui_prompt_id", "generation_time_s"):
                assert key in meta, key
            assert meta["seed"] == image.seed and meta["prompt"] == image.prompt
            assert meta["comfyui_prompt_id"] == image.unit.prompt_id
            ksampler = [n for n in meta["workflow"].values() if n["class_type"] == "KSampler"][0]
            assert ksampler["inputs"]["seed"] == image.seed and ksampler["inputs"]["steps"] == 4
        info = json.loads((folder / "batch_info.json").read_text())
        assert info["images_done"] == len(images) and info["status"] == "completed"
        assert [i["file"] for i in info["images"]] == [i.file_path for i in images]
    assert not list(output_root.rglob("*.tmp"))
    # The urgent job's fixed base seed gives its unit that seed.
    assert urgent.units.get().seed == 7


def test_an_urgent_job_starts_after_at_most_the_unit_in_progress(simulator_factory, qcluster_factory, owner):
    _, url = simulator_factory("--step-ms", "100")
    qcluster_factory(url)
    low = submit(owner, ["pixel art tree"], count=12, batch_size=1, priority="low")
    wait_until(lambda: Unit.objects.filter(job=low, status=Unit.Status.DONE).count() >= 2, timeout=30,
               message="two low units to finish")
    urgent = submit(owner, ["pixel art boss"], count=1, batch_size=1, priority="urgent")
    (urgent,) = wait_finished(urgent, timeout=30)
    urgent_start = urgent.units.get().started_at
    low_started_after_submit = Unit.objects.filter(
        job=low, started_at__gt=urgent.created_at, started_at__lt=urgent_start).count()
    assert low_started_after_submit <= 1
    Job.objects.get(pk=low.pk)  # the low job goes on afterwards
    wait_finished(low, timeout=60)
    assert Image.objects.filter(job=low).count() == 12


def test_a_fixed_seed_reproduces_images_byte_for_byte_and_no_seed_varies(simulator_factory, qcluster_factory,
                                                                         owner, output_root):
    _, url = simulator_factory("--step-ms", "5")
    qcluster_factory(url)
    first = submit(owner, ["pixel art chest"], count=4, batch_size=4, seed=1234)
    second = submit(owner, ["pixel art chest"], count=4, batch_size=4, seed=1234)
    third = submit(owner, ["pixel art chest"], count=4, batch_size=4)
    fourth = submit(owner, ["pixel art chest"], count=4, batch_size=4)
    wait_finished(first, second, third, fourth)

    def png_bytes(job):
        return [outputs.resolve(i.file_path).read_bytes() for i in Image.objects.filter(job=job).order_by("sequence")]

    assert png_bytes(first) == png_bytes(second)
    assert len(set(png_bytes(first))) == 4  # the images of one batch differ from each other
    assert set(png_bytes(third)).isdisjoint(png_bytes(fourth))
