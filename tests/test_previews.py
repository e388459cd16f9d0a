"""Live previews: ComfyUI's binary preview frames, kept by the worker (throttled, small) and served."""
from __future__ import annotations

import io
import time

import pytest
from django.test import Client
from PIL import Image as PILImage

from batches.comfyui import EventStream
from batches.comfyui.types import Event as ComfyEvent
from batches.comfyui_sim.previews import preview_frame, preview_jpeg
from batches.models import Event, Job, Unit
from batches.services import previews
from batches.services.submission import job_submit
from batches.services.worker import GpuWorker
from tests.processes import wait_until

pytestmark = pytest.mark.django_db


def submit(owner, **params) -> Job:
    base = {"count": 4, "batch_size": 4, "steps": 4, "width": 64, "height": 64, "client": None, "wake": False}
    return job_submit(owner=owner, prompts=["pixel art slime"], **{**base, **params})


def jpeg(size: int) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (size, size), (200, 80, 40)).save(out, format="JPEG")
    return out.getvalue()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_simulator_frames_a_preview_as_comfyui_does_for_both_kinds_of_client():
    image = preview_jpeg(3, 8)
    assert image.startswith(b"\xff\xd8")  # a JPEG, as latent previews are
    stream = EventStream("http://127.0.0.1:1", "me")
    stream._running = "p"
    legacy = stream._parse(preview_frame(image, {"prompt_id": "p", "node_id": "3"}, with_metadata=False))
    with_meta = stream._parse(preview_frame(image, {"prompt_id": "q", "node_id": "3", "image_type": "image/jpeg"},
                                            with_metadata=True))
    assert (legacy.type, legacy.data["image_type"], legacy.data["image"]) == ("preview", "image/jpeg", image)
    assert (with_meta.data["prompt_id"], with_meta.data["image"]) == ("q", image)


def test_successive_steps_give_different_previews():
    assert preview_jpeg(1, 8) != preview_jpeg(8, 8)


def test_the_throttle_keeps_at_most_two_previews_a_second():
    throttle = previews.PreviewThrottle()
    kept = [t for t in (0.0, 0.1, 0.2, 0.49, 0.5, 0.7, 1.0, 1.2) if throttle.take(7, t)]
    assert kept == [0.0, 0.5, 1.0]
    assert throttle.seq == 3


def test_a_large_preview_is_kept_downscaled_and_replaced_in_place(output_root):
    assert previews.store_preview(unit_id=5, image=jpeg(512))
    with PILImage.open(previews.preview_path(5)) as kept:
        assert max(kept.size) == previews.PREVIEW_MAX_SIDE and kept.format == "JPEG"
    small = jpeg(64)
    assert previews.store_preview(unit_id=5, image=small)
    assert previews.latest_preview(5) == small  # small JPEGs pass through untouched
    assert list(previews.preview_dir().iterdir()) == [previews.preview_path(5)]  # no temp files left
    assert not previews.store_preview(unit_id=5, image=b"not an image")
    assert previews.latest_preview(5) == small


def test_the_worker_keeps_the_running_units_preview_throttled_and_publishes_its_url(owner, output_root):
    job = submit(owner)
    unit = job.units.get()
    worker = GpuWorker(node="gpu-a", comfyui_url="http://127.0.0.1:1", client=object())
    frames = [ComfyEvent("preview", {"image": jpeg(64), "prompt_id": unit.prompt_id}) for _ in range(6)]

    for frame in frames:
        worker._on_event(unit, frame)
    assert Event.objects.filter(kind="preview").count() == 1
    time.sleep(previews.PREVIEW_EVERY + 0.05)
    worker._on_event(unit, frames[0])

    published = list(Event.objects.filter(kind="preview").order_by("id"))
    assert len(published) == 2
    assert published[-1].job_id == job.pk and published[-1].data["unit"] == unit.pk
    assert published[-1].data["url"] == f"/jobs/{job.pk}/units/{unit.pk}/preview.jpg?v=2"
    assert previews.latest_preview(unit.pk) == frames[0].data["image"]
    worker._drop(unit)  # the unit is done: its preview goes, its images show instead
    assert previews.latest_preview(unit.pk) is None


def test_the_preview_is_served_to_signed_in_users_and_404s_when_there_is_none(owner, other, output_root):
    job = submit(owner)
    unit = job.units.get()
    url = f"/jobs/{job.pk}/units/{unit.pk}/preview.jpg"
    assert signed_in(owner).get(url).status_code == 404
    previews.store_preview(unit_id=unit.pk, image=jpeg(32))

    response = signed_in(other).get(url + "?v=1")  # a studio shares what it makes
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response.content == jpeg(32)
    elsewhere = submit(owner)
    assert signed_in(owner).get(f"/jobs/{elsewhere.pk}/units/{unit.pk}/preview.jpg").status_code == 404
    assert Client().get(url).status_code == 302


def test_the_job_page_draws_the_running_units_latest_preview(owner, output_root):
    job = submit(owner)
    unit = job.units.get()
    job.mark_started()
    Unit.objects.filter(pk=unit.pk).update(status=Unit.Status.RUNNING)
    previews.store_preview(unit_id=unit.pk, image=jpeg(32))
    html = signed_in(owner).get(f"/jobs/{job.pk}/?partial=state").content.decode()
    assert f'data-preview-unit="{unit.pk}"' in html
    assert f'src="/jobs/{job.pk}/units/{unit.pk}/preview.jpg?v=' in html


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_publishes_previews_from_the_simulator(simulator_factory, qcluster_factory, owner):
    _, url = simulator_factory("--step-ms", "250", "--preview-method", "auto")
    qcluster_factory(url)
    browser = signed_in(owner)
    # 16 steps of 250 ms: the preview lives only while its unit runs, and a loaded machine may take
    # a second or two from the event to the request.
    job = job_submit(owner=owner, prompts=["pixel art knight"], count=4, batch_size=4, steps=16, width=64, height=64,
                     client=None)
    event = wait_until(lambda: Event.objects.filter(kind="preview", job=job).first(), timeout=60,
                       message="a preview event")
    response = browser.get(event.data["url"])
    assert response.status_code == 200 and response.content.startswith(b"\xff\xd8")
    wait_until(lambda: Job.objects.get(pk=job.pk).status in Job.FINISHED, timeout=60, message="the job to finish")
    steps_ran = 16
    assert 1 <= Event.objects.filter(kind="preview", job=job).count() < steps_ran  # throttled (2/s at 250 ms a step)


def test_the_queue_page_shows_the_busy_nodes_latest_preview(owner, output_root):
    from batches.models import WorkerNode

    job = submit(owner)
    unit = job.units.get()
    Unit.objects.filter(pk=unit.pk).update(status=Unit.Status.RUNNING, node="gpu-a")
    WorkerNode.register(name="gpu-a", comfyui_url="http://127.0.0.1:1")
    WorkerNode.objects.filter(name="gpu-a").update(current_unit=unit)
    html = signed_in(owner).get("/?partial=worker").content.decode()
    assert f'data-preview-unit="{unit.pk}"' in html and "preview.jpg" not in html  # none yet: hidden
    previews.store_preview(unit_id=unit.pk, image=jpeg(32))
    html = signed_in(owner).get("/?partial=worker").content.decode()
    assert f'src="/jobs/{job.pk}/units/{unit.pk}/preview.jpg?v=' in html
