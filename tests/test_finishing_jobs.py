"""Every job ends in sprites: finishing beside the originals, off the GPU worker's path.

A real simulator and qcluster make the images; a real `manage.py sprite_worker` finishes them.
The tests read the files: sprites, metadata JSON and batch_info.json.
"""
from __future__ import annotations

import hashlib
import json

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from PIL import Image as PILImage

from batches.models import Image, Job
from batches.profiles import ProfileError, load_profiles
from batches.services import finishing, outputs
from batches.services.finishing import runner
from batches.services.submission import SubmissionError, job_submit
from batches.sprites import load_palette
from tests.processes import wait_until
from tests.test_resilience import wait_finished

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


def submit(owner, **params):
    defaults = {"prompts": ["pixel art knight"], "profile": "speed", "steps": 4, "client": None,
                "width": 256, "height": 256, "count": 4, "batch_size": 4}
    return job_submit(owner=owner, **{**defaults, **params})


def sprite_colors(image: Image) -> set[tuple[int, int, int]]:
    with PILImage.open(outputs.resolve(image.sprite_path)) as sprite:
        rgba = sprite.convert("RGBA")
        return {c[:3] for _, c in rgba.getcolors(1 << 16) if c[3] > 0}


def sprites_done(job) -> bool:
    return not Image.objects.filter(job=job, sprite_state__in=Image.SPRITE_OPEN).exists()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_job_ends_in_sprites_beside_its_untouched_originals_made_off_the_gpu_worker(
        simulator_factory, qcluster_factory, sprite_worker, owner, output_root):
    _, url = simulator_factory("--step-ms", "10")
    qcluster_factory(url)
    job = wait_finished(submit(owner))
    assert job.status == Job.Status.COMPLETED and job.finish["colors"] == 32  # the speed profile's finish
    folder = output_root / "batches" / job.output_dir
    # The GPU worker made images only: the sprites wait for the sprite worker.
    assert set(job.images.values_list("sprite_state", flat=True)) == {Image.Sprite.PENDING}
    assert finishing.is_finishing(job) and not (folder / "sprites").exists()
    originals = {p.name: digest(p) for p in (folder / "images").iterdir()}

    sprite_worker()
    # The row says done first; the metadata file gains the run's settings a moment later.
    wait_until(lambda: sprites_done(job) and all(
        "finish" in json.loads((folder / "metadata" / outputs.metadata_name(i.sequence)).read_text())
        for i in job.images.all()), timeout=30, message="every sprite made and recorded in its metadata")
    assert not finishing.is_finishing(job)
    for image in job.images.all():
        assert image.sprite_state == Image.Sprite.DONE, image.sprite_error
        name = outputs.image_name(image.sequence, image.seed)
        assert image.sprite_path == f"batches/{job.output_dir}/sprites/{name}"
        with PILImage.open(folder / "sprites" / name) as sprite:
            assert sprite.mode == "RGBA" and sprite.width < image.width  # one pixel per art pixel
            assert sprite.getextrema()[3][0] == 0  # the background became transparent
        meta = json.loads((folder / "metadata" / outputs.metadata_name(image.sequence)).read_text())
        assert meta["finish"]["colors"] == 32 and meta["finish"]["pixel_size"] > 1
        assert meta["finish"]["palette"] and len(meta["finish"]["palette"]) <= 32
        assert meta["finish"]["sprite"] == image.sprite_path
    assert {p.name: digest(p) for p in (folder / "images").iterdir()} == originals  # never altered
    wait_until(lambda: all("sprite" in i for i in json.loads((folder / "batch_info.json").read_text())["images"]),
               timeout=10, message="batch_info.json to list the sprites")
    info = json.loads((folder / "batch_info.json").read_text())
    assert info["finish"]["colors"] == 32
    assert sorted(i["sprite"] for i in info["images"]) == sorted(job.images.values_list("sprite_path", flat=True))


def test_an_animation_job_locks_one_palette_computed_from_the_whole_batch(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "10")
    qcluster_factory(url)
    job = submit(owner, prompts=["pixel art knight walk cycle"], profile="animation", count=8, batch_size=8,
                 seed=12345)
    assert job.finish["lock_palette"] and job.finish["cell"] == [64, 64]
    job = wait_finished(job)
    assert set(job.images.values_list("sprite_state", flat=True)) <= {Image.Sprite.WAITING, Image.Sprite.PENDING}
    runner.run(stop=lambda: False, once=True)
    job.refresh_from_db()
    shared = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in job.finish_palette}
    assert 2 <= len(shared) <= 16
    for image in job.images.all():
        assert image.sprite_state == Image.Sprite.DONE, image.sprite_error
        assert sprite_colors(image) <= shared  # every frame uses the job's palette, nothing else
        with PILImage.open(outputs.resolve(image.sprite_path)) as sprite:
            assert sprite.size == (64, 64)  # one cell for every frame: no jumping


def test_refinishing_with_another_palette_rebuilds_sprites_without_the_gpu_and_keeps_the_history(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "10")
    qcluster_factory(url)
    job = wait_finished(submit(owner))
    runner.run(stop=lambda: False, once=True)
    executed = requests.get(url + "/sim/stats", timeout=5).json()["executed"]
    before = {i.pk: i.sprite_run for i in job.images.all()}

    call_command("sprite_refinish", str(job.pk), "--palette", "gameboy", "--user", "artist")
    assert set(job.images.values_list("sprite_state", flat=True)) == {Image.Sprite.PENDING}
    runner.run(stop=lambda: False, once=True)
    gameboy = set(load_palette("gameboy"))
    job.refresh_from_db()
    assert job.finish["palette"] == "gameboy" and job.finish["colors"] is None
    for image in job.images.all():
        assert image.sprite_state == Image.Sprite.DONE and image.sprite_run == before[image.pk] + 1
        assert sprite_colors(image) <= gameboy
        meta = json.loads(outputs.resolve(image.metadata_path).read_text())
        assert meta["finish"]["run"] == image.sprite_run and meta["finish"]["palette_name"] == "gameboy"
        assert {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in meta["finish"]["palette"]} <= gameboy
        assert [run["colors"] for run in meta["finish_history"]] == [32]  # the first run's settings kept
        assert not list(outputs.resolve(image.sprite_path).parent.glob("*.tmp"))
    assert requests.get(url + "/sim/stats", timeout=5).json()["executed"] == executed  # the GPU did nothing


def test_refinishing_selected_images_touches_only_those(owner, output_root, django_user_model):
    from tests.test_views_review import add_images, make_job, simple_specs

    job = make_job(owner, finish={"colors": 8, "background": "auto"})
    images = add_images(job, simple_specs(3), write=True)
    other = django_user_model.objects.create_user("other", password="pw")
    with pytest.raises(Exception, match="owner or staff"):
        finishing.images_refinish(user=other, ids=[images[0].pk], finish={"colors": "4"})
    assert finishing.images_refinish(user=owner, ids=[images[0].pk], finish={"colors": "4"}) == 1
    states = dict(Image.objects.values_list("pk", "sprite_state"))
    assert states[images[0].pk] == Image.Sprite.PENDING and states[images[1].pk] == Image.Sprite.NONE
    assert Image.objects.get(pk=images[0].pk).sprite_finish["colors"] == 4
    assert Job.objects.get(pk=job.pk).finish["colors"] == 8  # the job's own settings stay


def test_no_finish_makes_no_sprites_and_the_cli_flags_change_the_profiles_settings(owner, output_root):
    plain = submit(owner, finish=False)
    assert plain.finish is None
    call_command("batch_generate", "--prompt", "pixel art slime", "--profile", "speed", "--width", "256",
                 "--height", "256", "--colors", "8", "--outline", "#101010", "--cell", "48x48", "--user", "artist")
    job = Job.objects.latest("id")
    assert job.finish["colors"] == 8 and job.finish["outline"] == "#101010" and job.finish["cell"] == [48, 48]
    call_command("batch_generate", "--prompt", "pixel art slime", "--no-finish", "--user", "artist")
    assert Job.objects.latest("id").finish is None


@pytest.mark.parametrize("finish, field, words", [
    ({"colors": "1"}, "colors", "from 2 to 256"),
    ({"colors": "٣"}, "colors", "whole number"),
    ({"palette": "no-such-palette"}, "palette", "no-such-palette"),
    ({"background": "purple"}, "background", "#rrggbb"),
    ({"cell": "64by64"}, "cell", "WxH"),
    ({"pixel_size": "huge"}, "pixel_size", "auto"),
])
def test_bad_finishing_settings_are_refused_naming_the_field_and_nothing_is_queued(owner, finish, field, words):
    with pytest.raises(SubmissionError) as caught:
        submit(owner, finish=finish)
    assert field in caught.value.errors and words in " ".join(caught.value.errors[field])
    assert not Job.objects.exists()


def test_the_cli_refuses_a_malformed_palette_file_naming_the_file_and_line(owner, tmp_path):
    from batches.cli import UsageError

    bad = tmp_path / "mine.hex"
    bad.write_text("ff0000\nnot-a-colour\n")
    with pytest.raises(UsageError, match=r"--palette: .*mine.hex.*line 2"):
        call_command("batch_generate", "--prompt", "pixel art slime", "--palette", str(bad), "--user", "artist")
    good = tmp_path / "mine.gpl"
    good.write_text("GIMP Palette\nName: mine\n#\n255 0 0\tred\n  0 0 255\tblue\n")
    call_command("batch_generate", "--prompt", "pixel art slime", "--palette", str(good), "--user", "artist")
    assert Job.objects.get().finish["palette_colors"] == ["#ff0000", "#0000ff"]


def test_a_profiles_finish_block_is_checked_like_the_rest_naming_profile_and_key(tmp_path, settings):
    source = (settings.BASE_DIR / "profiles" / "batch_profiles.yaml").read_text()
    broken = tmp_path / "profiles.yaml"
    broken.write_text(source.replace("finish: {colors: 16,", "finish: {colors: 999,", 1))
    with pytest.raises(ProfileError) as caught:
        load_profiles(broken)
    message = str(caught.value)
    assert "profile 'animation', finish" in message and "key 'colors'" in message and "2 to 256" in message
    assert load_profiles().profiles["tileset"].finish["background"] == "keep"
