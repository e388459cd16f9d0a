"""Every file the app serves, packs or writes stays inside OUTPUT_ROOT, symlinks or not.

One helper (`outputs.open_output` for reading, `outputs.atomic_write` for writing) checks each
path once symlinks are resolved; these tests plant the links a hostile user or a careless mount
would leave and check nothing outside the output folder is read or written.
"""
from __future__ import annotations

import io
import os
import stat
import zipfile

import pytest
from django.urls import reverse

from batches.models import Image, Job, QueueControl, Unit
from batches.services import outputs
from batches.services.submission import job_submit
from batches.tasks import wake_workers
from tests.test_resilience import wait_finished
from tests.test_views_review import add_images, make_job, signed_in, simple_specs

pytestmark = pytest.mark.django_db

SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "elsewhere" / "passwd"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def _zip(response) -> dict[str, bytes]:
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_a_jobs_zip_refuses_a_batch_info_symlinked_out_of_the_output_folder(client, owner, other,
                                                                          output_root, secret):
    job = make_job(owner)
    add_images(job, simple_specs(2), write=True)
    (outputs.job_dir(job) / "batch_info.json").symlink_to(secret)
    files = _zip(signed_in(client, other).get(reverse("job-zip", args=[job.pk])))
    assert SECRET not in b"".join(files.values())
    assert f"{job.output_dir}/batch_info.json" not in files
    assert b"batch_info.json (refused: it leads outside the output folder)" in files["MISSING.txt"]
    assert len([name for name in files if name.endswith(".png")]) == 2  # the real images still come


def test_a_zip_refuses_an_image_whose_job_folder_is_a_symlink_out_of_the_output_folder(
        client, owner, output_root, secret):
    job = make_job(owner)
    image = add_images(job, simple_specs(1))[0]
    outside = secret.parent / "job"
    (outside / "images").mkdir(parents=True)
    (outside / "images" / os.path.basename(image.file_path)).write_bytes(SECRET)
    (output_root / "batches").mkdir(exist_ok=True)
    outputs.job_dir(job).symlink_to(outside, target_is_directory=True)
    files = _zip(signed_in(client, owner).post(reverse("images-zip"), {"ids": str(image.pk)}))
    assert SECRET not in b"".join(files.values())
    assert b"refused" in files["MISSING.txt"]


def test_image_views_refuse_symlinks_out_of_the_output_folder_and_anything_but_regular_files(
        client, owner, output_root, secret):
    job = make_job(owner)
    image = add_images(job, simple_specs(1), write=True)[0]
    signed_in(client, owner)
    ok = client.get(reverse("image-file", args=[image.pk]))
    assert ok.status_code == 200 and b"".join(ok.streaming_content).startswith(b"\x89PNG")

    png = outputs.output_root() / image.file_path
    png.unlink()
    png.symlink_to(secret)
    assert client.get(reverse("image-file", args=[image.pk])).status_code == 404
    meta = outputs.output_root() / image.metadata_path
    meta.unlink()
    meta.symlink_to(secret)
    fallback = client.get(reverse("image-metadata", args=[image.pk]))  # the stored copy, not the link
    assert fallback.status_code == 200 and not fallback.streaming and b"root:" not in fallback.content

    png.unlink()
    os.mkfifo(png)  # a named pipe would block a plain open() forever
    assert client.get(reverse("image-file", args=[image.pk])).status_code == 404
    png.unlink()
    png.mkdir()
    assert client.get(reverse("image-file", args=[image.pk])).status_code == 404


def test_open_output_is_the_one_reader_and_allows_links_that_stay_inside(output_root, secret):
    inside = output_root / "batches" / "a.png"
    inside.parent.mkdir()
    inside.write_bytes(b"png")
    (output_root / "batches" / "b.png").symlink_to(inside)
    with outputs.open_output("batches/b.png") as handle:
        assert handle.read() == b"png"
    (output_root / "batches" / "c.png").symlink_to(secret)
    with pytest.raises(outputs.OutsideOutputRoot):
        outputs.open_output("batches/c.png")
    with pytest.raises(outputs.OutsideOutputRoot):
        outputs.open_output("../elsewhere/passwd")


def test_the_write_side_refuses_a_job_folder_symlinked_out_of_the_output_folder(output_root, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (output_root / "batches").mkdir()
    (output_root / "batches" / "batch_1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(outputs.OutputWriteError) as caught:
        outputs.atomic_write(output_root / "batches" / "batch_1" / "images" / "sprite_0001_1.png", b"png")
    message = str(caught.value)
    assert "outside the output folder" in message and "batch_1" in message and "remove the link" in message
    assert list(outside.iterdir()) == []


def test_output_files_follow_the_umask_or_the_documented_mode(output_root, settings):
    path = output_root / "batches" / "x" / "a.png"
    old = os.umask(0o027)
    try:
        import importlib

        importlib.reload(outputs)  # the umask is read once, at import, as in a starting process
        outputs.atomic_write(path, b"png")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # group may read; mkstemp alone gives 0600
        settings.OUTPUT_FILE_MODE = 0o664
        outputs.atomic_write(path, b"png2")
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
    finally:
        os.umask(old)
        importlib.reload(outputs)


def test_an_invalid_output_file_mode_stops_start_up_naming_the_variable(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from dgxpixels.env import env_file_mode

    monkeypatch.setenv("DGX_OUTPUT_FILE_MODE", "rw-r-----")
    with pytest.raises(ImproperlyConfigured, match="DGX_OUTPUT_FILE_MODE"):
        env_file_mode("DGX_OUTPUT_FILE_MODE")
    monkeypatch.setenv("DGX_OUTPUT_FILE_MODE", "0640")
    assert env_file_mode("DGX_OUTPUT_FILE_MODE") == 0o640


@pytest.mark.django_db(transaction=True)
def test_a_worker_refuses_to_write_through_a_symlinked_job_folder_and_fails_the_unit_clearly(
        simulator_factory, qcluster_factory, output_root, tmp_path, django_user_model):
    _, url = simulator_factory("--step-ms", "10")
    owner = django_user_model.objects.create_user("artist", password="pw")
    QueueControl.set_paused(True, by="test")  # plant the link before the worker writes anything
    job = job_submit(owner=owner, prompts=["pixel art warrior"], profile="speed", steps=4, count=4,
                     batch_size=4, width=64, height=64, client=None)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (output_root / "batches").mkdir(exist_ok=True)
    outputs.job_dir(job).symlink_to(outside, target_is_directory=True)
    qcluster_factory(url)
    QueueControl.set_paused(False, by="test")
    wake_workers()
    job = wait_finished(job)
    assert job.status == Job.Status.FAILED
    unit = job.units.get()
    assert unit.status == Unit.Status.FAILED
    assert "outside the output folder" in unit.error and job.output_dir in unit.error
    assert Image.objects.filter(job=job).count() == 0
    assert list(outside.iterdir()) == []  # nothing was written through the link
