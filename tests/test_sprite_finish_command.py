"""`manage.py sprite_finish`: files in, sprites out, JSON, and one-line usage errors (exit 64)
that leave nothing behind."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from batches import cli
from batches.sprites.framing import trim
from tests.processes import MANAGE, ROOT
from tests.sprite_truth import accuracy, make_sprite, render


@pytest.fixture(scope="module")
def sprites(tmp_path_factory):
    """Three generated-looking images and their truths."""
    folder = tmp_path_factory.mktemp("in")
    made = []
    for i in range(3):
        truth = make_sprite(200 + i, 24 + 4 * i, 30, 6)
        path = folder / f"hero_{i}.png"
        render(truth, px=384, cells=40, phase=(3.0 + i, 5.0), blur=1.0, noise=2, jpeg=90, seed=i).save(path)
        made.append((str(path), truth))
    return made


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sprite_finish", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def usage_error(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert caught.value.returncode == cli.EXIT_USAGE
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_one_input_is_finished_into_the_named_file(sprites, tmp_path):
    source, truth = sprites[0]
    target = tmp_path / "hero.png"
    out, err = run(source, "-o", str(target))
    assert f"Finished 1 sprite into {target}." in out
    assert f"[1/1] {source}: pixel size 9.60, 24x30" in err
    with Image.open(target) as image:
        assert image.mode == "RGBA" and image.size == (24, 30)
        assert accuracy(np.asarray(image), trim(truth.sprite)) >= 0.95
    assert [p.name for p in tmp_path.iterdir()] == ["hero.png"]   # no temp file left behind


def test_several_inputs_go_into_a_created_folder_under_their_own_names(sprites, tmp_path):
    folder = tmp_path / "out" / "sprites"
    out, err = run(*[s for s, _ in sprites], "-o", str(folder), "--colors", "4", "--cell", "40x32")
    assert sorted(p.name for p in folder.iterdir()) == ["hero_0.png", "hero_1.png", "hero_2.png"]
    for path in folder.iterdir():
        with Image.open(path) as image:
            assert image.size == (40, 32)
            arr = np.asarray(image)
            assert len({tuple(c) for c in arr[arr[..., 3] > 0]}) <= 4
    assert err.count("\n") == 3 and "[3/3]" in err
    assert "Finished 3 sprites" in out


def test_json_prints_per_file_what_was_found_and_written(sprites, tmp_path):
    out, err = run(sprites[0][0], sprites[1][0], "-o", str(tmp_path), "--palette", "pico-8", "--json")
    assert err == ""
    data = json.loads(out)
    assert [d["input"] for d in data] == [sprites[0][0], sprites[1][0]]
    assert data[1]["output"] == str(tmp_path / "hero_1.png")
    for entry in data:
        assert set(entry) == {"input", "output", "pixel_size", "phase", "size", "content_size", "palette"}
        assert entry["pixel_size"] == pytest.approx(384 / 40, rel=0.01)
        assert len(entry["phase"]) == 2 and entry["size"] == entry["content_size"]
        pico = {"#000000", "#1d2b53", "#7e2553", "#008751", "#ab5236", "#5f574f", "#c2c3c7", "#fff1e8", "#ff004d",
                "#ffa300", "#ffec27", "#00e436", "#29adff", "#83769c", "#ff77a8", "#ffccaa"}
        assert set(entry["palette"]) <= pico


BAD_FLAGS = [
    (["--colors", "1"], "--colors: 1: give a number of colours from 2 to 256"),
    (["--colors", "300"], "--colors: 300:"),
    (["--colors", "x"], "argument --colors: expected a whole number"),
    (["--colors", "4", "--palette", "pico-8"], "argument --palette: not allowed with argument --colors"),
    (["--palette", "nope"], "--palette: no palette named 'nope'"),
    (["--background", "red"], "--background: 'red': give auto, keep or a colour #rrggbb"),
    (["--outline", "#12345"], "--outline: '#12345' is not a colour"),
    (["--cell", "0x10"], "--cell: give a width and height"),
    (["--size", "big"], "--size: give a width and height"),
    (["--pixel-size", "abc"], "--pixel-size: 'abc': give auto or the art-pixel size"),
    (["--pixel-size", "0.5"], "--pixel-size: 0.5:"),
    (["--pixel-size", "20", "--size", "48"], "--size: not with --pixel-size"),
    (["--cell", "10x10"], "--cell: the sprite is 24x30 pixels, larger than the 10x10 cell"),
]


@pytest.mark.parametrize("args, expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_each_bad_flag_is_one_line_naming_the_flag_and_nothing_is_written(sprites, tmp_path, args, expected):
    message = usage_error(sprites[0][0], "-o", str(tmp_path / "out" / "x.png"), *args)
    assert expected in message
    assert not (tmp_path / "out").exists()


def test_a_bad_palette_file_names_the_flag_the_file_and_the_line(sprites, tmp_path):
    palette = tmp_path / "mine.hex"
    palette.write_text("ff0044\nbanana\n")
    message = usage_error(sprites[0][0], "-o", str(tmp_path / "x.png"), "--palette", str(palette))
    assert message.startswith(f"--palette: {palette}, line 2:")


def test_output_mistakes_name_the_flag(sprites, tmp_path):
    two = [sprites[0][0], sprites[1][0]]
    assert "-o: 2 inputs need a folder" in usage_error(*two, "-o", str(tmp_path / "x.png"))
    assert "-o: " in usage_error(sprites[0][0], "-o", str(tmp_path / "x.jpg"))
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "hero_0.png").write_bytes(b"x")
    assert "would both be written" in usage_error(sprites[0][0], str(twin / "hero_0.png"), "-o", str(tmp_path / "o"))


def test_a_bad_input_names_the_file_and_nothing_is_written_even_for_the_good_ones(sprites, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    truncated = tmp_path / "cut.png"
    data = open(sprites[0][0], "rb").read()
    truncated.write_bytes(data[: len(data) // 3])
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(noise)
    out = tmp_path / "out"
    cases = [(junk, "not an image"), (truncated, "damaged or truncated"), (noise, "no pixel grid found"),
             (tmp_path / "missing.png", "no such file")]
    for bad, expected in cases:
        message = usage_error(sprites[0][0], str(bad), "-o", str(out))
        assert message.startswith(f"{bad}: ") and expected in message
        assert not out.exists()
    assert "--size" in usage_error(str(noise), "-o", str(out / "n.png"))


def test_an_existing_file_is_replaced_whole(sprites, tmp_path):
    target = tmp_path / "hero.png"
    target.write_bytes(b"old")
    run(sprites[0][0], "-o", str(target), "--background", "keep")
    with Image.open(target) as image:
        assert image.size == (40, 40)


def test_as_a_process_a_usage_error_is_one_line_on_stderr_and_exit_64(sprites, tmp_path):
    result = subprocess.run([sys.executable, MANAGE, "sprite_finish", sprites[0][0], "-o", str(tmp_path / "x.png"),
                             "--colors", "999"], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert result.returncode == 64
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("manage.py sprite_finish: error: --colors: 999:")
    assert not (tmp_path / "x.png").exists()
