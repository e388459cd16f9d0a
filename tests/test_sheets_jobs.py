"""Sheets from jobs: the CLI and the service pack a job's sprites, and the files cut back exactly.

Sprites are made by the real finishing runner from PNGs the tests write (no GPU needed); the
sheets are read back from disk using only their atlas JSON.
"""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest
from django.core.management import call_command
from PIL import Image as PILImage

from batches.cli import UsageError
from batches.models import Image, SheetExport
from batches.services import outputs, sheets
from batches.services.finishing import runner
from batches.sheets import cut_sheet
from tests.test_views_review import add_images, make_job, simple_specs

pytestmark = pytest.mark.django_db(transaction=True)  # the runner closes stale connections, as in production


def fake_pixel_art(seed: int, *, size: int = 128, cells: int = 16) -> bytes:
    """A small sprite painted as a model paints it: blocks of size/cells px on an opaque backdrop."""
    import random

    rng = random.Random(seed)
    art = PILImage.new("RGB", (cells, cells), (200, 220, 240))
    for y in range(3, cells - 2):
        for x in range(3, cells // 2 + 1):
            if rng.random() < 0.7:
                colour = rng.choice([(180, 40, 40), (40, 120, 60), (30, 30, 40)])
                art.putpixel((x, y), colour)
                art.putpixel((cells - 1 - x, y), colour)
    buf = io.BytesIO()
    art.resize((size, size), PILImage.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def job_with_sprites(owner, n: int = 4, **fields):
    job = make_job(owner, width=128, height=128, finish={"colors": 8, "background": "auto", "cell": [16, 16]},
                   **fields)
    images = add_images(job, simple_specs(n))
    for image in images:
        outputs.atomic_write(outputs.output_root() / image.file_path, fake_pixel_art(image.seed))
    Image.objects.filter(job=job).update(sprite_state=Image.Sprite.PENDING)
    runner.run(stop=lambda: False, once=True)
    assert set(Image.objects.filter(job=job).values_list("sprite_state", flat=True)) == {Image.Sprite.DONE}
    return job, list(Image.objects.filter(job=job).order_by("sequence"))


def sprite_pixels(image: Image) -> bytes:
    with PILImage.open(outputs.resolve(image.sprite_path)) as sprite:
        return sprite.convert("RGBA").tobytes()


@pytest.mark.parametrize("args", [
    ["--layout", "grid"],
    ["--layout", "grid", "--columns", "3", "--padding", "2", "--extrude", "1", "--format", "aseprite-hash"],
    ["--layout", "packed", "--padding", "1"],
])
def test_a_jobs_sheet_cuts_back_into_its_sprites_using_only_the_atlas(owner, output_root, args, capsys):
    job, images = job_with_sprites(owner)
    call_command("sprite_sheet", str(job.pk), *args, "--json")
    written = json.loads(capsys.readouterr().out)
    assert written["frames"] == 4
    atlas_path = next(p for p in written["files"] if p.endswith(".json"))
    atlas = json.loads(open(atlas_path).read())
    with PILImage.open(atlas_path.replace(".json", ".png")) as sheet:
        frames = cut_sheet(sheet.convert("RGBA"), atlas)
    assert atlas["meta"]["image"] == atlas_path.rsplit("/", 1)[1].replace(".json", ".png")
    for image in images:
        name = outputs.image_name(image.sequence, image.seed)
        assert frames[name].convert("RGBA").tobytes() == sprite_pixels(image)
    export = SheetExport.objects.get(job=job)
    info = json.loads((outputs.job_dir(job) / "batch_info.json").read_text())
    assert info["sheets"][0]["name"] == export.name and sorted(info["sheets"][0]["files"]) == sorted(export.files)


def test_an_animation_sheet_follows_the_artists_frame_order_and_leaves_dropped_frames_out(owner, output_root,
                                                                                          tmp_path):
    job, images = job_with_sprites(owner, n=5, profile="animation")
    sheets.set_animation(job, fps=8, loop="pingpong")
    order = [images[3].pk, images[0].pk, images[4].pk, images[1].pk]
    sheets.set_frame_order(job, order=order, dropped=[images[2].pk])
    call_command("sprite_sheet", str(job.pk), "--gif", "--apng", "-o", str(tmp_path / "walk.png"))
    atlas = json.loads((tmp_path / "walk.json").read_text())
    by_id = {i.pk: outputs.image_name(i.sequence, i.seed) for i in images}
    assert [f["filename"] for f in atlas["frames"]] == [by_id[pk] for pk in order]
    assert all(f["duration"] == 125 for f in atlas["frames"])
    assert atlas["meta"]["frameTags"] == [{"name": job.name or "animation", "from": 0, "to": 3,
                                           "direction": "pingpong"}]
    with PILImage.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 6  # ping-pong: 0 1 2 3 2 1
    assert not SheetExport.objects.exists()  # -o writes elsewhere and records nothing


def test_a_tileset_exports_a_tiled_tileset_with_the_tile_size(owner, output_root):
    job, images = job_with_sprites(owner, profile="tileset")
    result = sheets.export_job(job, sheets.SheetRequest(fmt="tiled", columns=2))
    tsx = next(p for p in result.files if p.suffix == ".tsx")
    root = ET.fromstring(tsx.read_text())
    assert root.tag == "tileset" and root.get("tilewidth") == "16" and root.get("tilecount") == "4"
    assert root.get("columns") == "2" and root.find("image").get("source") == tsx.stem + ".png"
    tiled = json.loads(next(p for p in result.files if p.suffix == ".tsj").read_text())
    assert tiled["tilewidth"] == 16 and tiled["tilecount"] == 4 and tiled["image"] == tsx.stem + ".png"
    assert all(image.seam_score is not None for image in Image.objects.filter(job=job))  # made with the sprites


@pytest.mark.parametrize("args, words", [
    (["--approved"], "no approved images"),
    (["--columns", "0"], "--columns"),
    (["--images", "99999"], "has no image 99999"),
])
def test_bad_sheet_requests_say_what_to_change_and_write_nothing(owner, output_root, args, words):
    job, _ = job_with_sprites(owner, n=2)
    with pytest.raises(UsageError, match=words):
        call_command("sprite_sheet", str(job.pk), *args)
    assert not (outputs.job_dir(job) / "sheets").exists() and not SheetExport.objects.exists()


def test_a_sheet_past_the_size_limit_or_mixed_sizes_without_a_cell_is_refused(owner, output_root, settings):
    job, images = job_with_sprites(owner, n=4)
    settings.SHEET_MAX_SIZE = 20
    with pytest.raises(UsageError, match="20"):
        call_command("sprite_sheet", str(job.pk))
    settings.SHEET_MAX_SIZE = 8192
    small = PILImage.new("RGBA", (8, 12), (255, 0, 0, 255))
    outputs.atomic_write(outputs.resolve(images[0].sprite_path), _png(small))
    with pytest.raises(UsageError, match="--cell"):
        call_command("sprite_sheet", str(job.pk))
    call_command("sprite_sheet", str(job.pk), "--cell", "16x16")
    assert SheetExport.objects.get().frames == 4


def _png(image: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
