"""The pixel engine of finishing (batches/sprites), against ground truth it makes itself.

Known sprites are rendered as fake pixel art (tests/sprite_truth.py: non-integer cells, a grid
offset, blur, noise, JPEG, an opaque background close to a sprite colour) and finished; the
content size must come out exact and at least 95 % of the pixels right.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from batches.sprites import (FinishResult, FinishSettings, NoGridError, PaletteError, SpriteError, batch_palette,
                             finish_image, load_palette, palette_names, palette_text, parse_palette_text)
from batches.sprites.framing import trim
from batches.sprites.palettes import map_to_palette, oklab
from tests.sprite_truth import accuracy, make_sprite, render

# (sprite w, h, colours, outline, pocket, near background) and (render px, cells, phase, blur, noise, jpeg)
CASES = {
    "48x48 at 21.33 px, offset grid, JPEG": ((48, 48, 8, True, True, False), (1024, 48 + 8, (7.3, 12.1), 1.5, 3, 90)),
    "32x40 at 21.33 px, near-bg colour": ((32, 40, 6, True, True, True), (1024, 48, (3.0, 15.5), 2.0, 4, 85)),
    "64x48 at 14.2 px, no outline": ((64, 48, 10, False, False, False), (1024, 72, (5.5, 1.2), 1.2, 3, 88)),
    "16x16 at 10.7 px": ((16, 16, 4, True, False, False), (256, 24, (2.0, 5.0), 1.0, 3, 90)),
    "20x20 at 9.1 px, no JPEG": ((20, 20, 6, False, False, True), (256, 28, (4.4, 1.1), 0.8, 2, None)),
    "24x30 at 14.2 px, grid at 0": ((24, 30, 5, True, True, True), (512, 36, (0.0, 0.0), 1.5, 2, 92)),
    "40x24 at 8.5 px, heavy JPEG": ((40, 24, 7, True, False, False), (512, 60, (6.1, 2.2), 1.0, 4, 78)),
    "30x44 at 10.2 px, soft edges only": ((30, 44, 9, True, True, False), (512, 50, (1.7, 8.8), 1.4, 0, None)),
    "36x36 at 12.8 px, hard clean upscale": ((36, 36, 12, True, True, True), (512, 40, (5.0, 9.5), 0, 0, None)),
    "56x40 at 8 px exactly, JPEG": ((56, 40, 8, True, False, False), (512, 64, (0.0, 0.0), 0.8, 2, 90)),
    "18x28 at 6.7 px": ((18, 28, 5, True, True, False), (256, 38, (3.3, 0.4), 0.7, 2, 90)),
}


def _case(name: str, seed: int):
    (w, h, colors, outline, pocket, near), (px, cells, phase, blur, noise, jpeg) = CASES[name]
    truth = make_sprite(seed, w, h, colors, outline=outline, pocket=pocket, near_bg=near)
    image = render(truth, px=px, cells=cells, phase=phase, blur=blur, noise=noise, jpeg=jpeg, seed=seed)
    return truth, image, px / cells, phase


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", list(CASES))
def test_it_recovers_the_exact_content_size_and_the_pixels(name):
    seed = list(CASES).index(name) + 1
    truth, image, size, phase = _case(name, seed)
    result = finish_image(image, FinishSettings())
    out, expected = np.asarray(result.image), trim(truth.sprite)
    assert out.shape == expected.shape, f"{out.shape[1]}x{out.shape[0]} instead of {expected.shape[1]}x{expected.shape[0]}"
    assert accuracy(out, expected) >= 0.95
    assert result.pixel_size == pytest.approx(size, rel=0.01)
    for found, true in zip(result.phase, phase):
        assert min((found - true) % size, (true - found) % size) < 1.0
    assert result.content_size == (expected.shape[1], expected.shape[0])
    assert result.image.mode == "RGBA"


def test_an_enclosed_region_of_the_background_colour_stays_opaque():
    truth, image, _, _ = _case("48x48 at 21.33 px, offset grid, JPEG", 1)
    out = np.asarray(finish_image(image, FinishSettings()).image)
    pocket = (trim(truth.sprite)[..., :3] == truth.background).all(-1) & (trim(truth.sprite)[..., 3] > 0)
    assert pocket.sum() == 9
    assert (out[..., 3][pocket] == 255).all()
    assert (np.abs(out[..., :3][pocket].astype(int) - truth.background).max() <= 24)


def test_the_output_holds_the_recovered_colours_not_blends():
    truth, image, _, _ = _case("32x40 at 21.33 px, near-bg colour", 2)
    result = finish_image(image, FinishSettings())
    drawn = {tuple(c) for c in trim(truth.sprite)[..., :3][trim(truth.sprite)[..., 3] > 0]}
    assert len(result.palette) == len(drawn)
    assert len(result.palette) == len(set(result.palette))
    assert result.palette == sorted(result.palette, key=lambda c: -_count(result.image, c))


def _count(image: Image.Image, hex_color: str) -> int:
    arr = np.asarray(image)
    rgb = tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return int(((arr[..., :3] == rgb).all(-1) & (arr[..., 3] > 0)).sum())


@pytest.mark.parametrize("k", [3, 5, 8])
def test_k_colours_match_the_truth_reduced_the_same_way(k):
    truth, image, _, _ = _case("48x48 at 21.33 px, offset grid, JPEG", 1)
    settings = FinishSettings(colors=k)
    result = finish_image(image, settings)
    expected = finish_image(Image.fromarray(truth.sprite, "RGBA"), settings)
    assert len(result.palette) <= k and len(expected.palette) == k
    assert accuracy(np.asarray(result.image), np.asarray(expected.image)) >= 0.95


def test_reducing_colours_merges_shades_of_large_areas_and_keeps_a_one_pixel_eye():
    sprite = np.zeros((16, 16, 4), np.uint8)
    sprite[..., 3] = 255
    sprite[:8, :, :3] = (200, 60, 50)       # red area
    sprite[:8, 11:, :3] = (206, 66, 50)     # a shade of it, smaller
    sprite[8:, :, :3] = (40, 90, 200)       # blue area
    sprite[8:, 11:, :3] = (44, 96, 208)     # a shade of it, smaller
    sprite[12:, :4, :3] = (250, 230, 90)    # a yellow patch
    sprite[4, 4, :3] = (255, 255, 255)      # the eye: one pixel
    result = finish_image(Image.fromarray(sprite, "RGBA"), FinishSettings(colors=4, background="keep"))
    assert set(result.palette) == {"#c83c32", "#285ac8", "#fae65a", "#ffffff"}


def test_reducing_colours_is_deterministic():
    _, image, _, _ = _case("64x48 at 14.2 px, no outline", 3)
    first = finish_image(image, FinishSettings(colors=4))
    second = finish_image(image, FinishSettings(colors=4))
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))
    assert first.palette == second.palette


@pytest.mark.parametrize("palette", ["pico-8", "endesga-32", "gameboy"])
def test_mapping_onto_a_named_palette_matches_the_truth_mapped_the_same_way(palette):
    truth, image, _, _ = _case("24x30 at 14.2 px, grid at 0", 6)
    settings = FinishSettings(palette=palette)
    result = finish_image(image, settings)
    expected = finish_image(Image.fromarray(truth.sprite, "RGBA"), settings)
    allowed = {"#%02x%02x%02x" % c for c in load_palette(palette)}
    assert set(result.palette) <= allowed
    assert accuracy(np.asarray(result.image), np.asarray(expected.image), tolerance=0) >= 0.95


def test_palette_mapping_is_perceptual_not_rgb():
    # Pure green is nearer in RGB to a half-dark green, but looks (and is, in OKLab) nearer a light one.
    palette = [(0, 128, 0), (150, 255, 150)]
    green = np.array([[[0, 255, 0]]], np.uint8)
    rgb_nearest = min(palette, key=lambda c: sum((a - b) ** 2 for a, b in zip(c, (0, 255, 0))))
    assert rgb_nearest == (0, 128, 0)
    assert tuple(map_to_palette(green, palette)[0, 0]) == (150, 255, 150)
    assert np.allclose(oklab(np.array([255, 255, 255], np.uint8)), [1, 0, 0], atol=1e-3)


def test_ordered_dithering_mixes_the_two_nearest_colours_in_proportion():
    palette = [(0, 0, 0), (255, 255, 255)]
    grey = np.full((8, 8, 3), 119, np.uint8)   # about halfway in OKLab lightness
    plain = map_to_palette(grey, palette)
    dithered = map_to_palette(grey, palette, dither=True)
    assert len(np.unique(plain.reshape(-1, 3), axis=0)) == 1
    white = (dithered == 255).all(-1).mean()
    assert 0.3 <= white <= 0.7
    assert np.array_equal(dithered, map_to_palette(grey, palette, dither=True))


def test_finishing_a_finished_sprite_changes_nothing():
    for seed, (w, h) in enumerate([(48, 48), (16, 16), (40, 8), (64, 48), (23, 37)]):
        truth = make_sprite(100 + seed, w, h, 6, outline=seed % 2 == 0, pocket=h >= 16)
        for settings in (FinishSettings(), FinishSettings(colors=4), FinishSettings(palette="pico-8"),
                         FinishSettings(outline="#102030"), FinishSettings(cell=(72, 72))):
            first = finish_image(Image.fromarray(truth.sprite, "RGBA"), settings)
            second = finish_image(_png(first.image), settings)
            assert second.pixel_size == 1
            assert np.array_equal(np.asarray(first.image), np.asarray(second.image)), (seed, settings)
        plain = finish_image(Image.fromarray(truth.sprite, "RGBA"), FinishSettings())
        assert np.array_equal(np.asarray(plain.image), trim(truth.sprite))


def test_a_clean_integer_upscale_is_found_exactly():
    truth = make_sprite(7, 20, 12, 5)
    big = Image.fromarray(truth.sprite, "RGBA").resize((20 * 6, 12 * 6), Image.NEAREST)
    result = finish_image(big, FinishSettings())
    assert result.pixel_size == 6
    assert np.array_equal(np.asarray(result.image), trim(truth.sprite))


def test_the_sprite_size_can_be_given_instead_of_detected():
    truth, image, size, _ = _case("24x30 at 14.2 px, grid at 0", 6)   # a 36 x 36 canvas at phase 0
    result = finish_image(image, FinishSettings(size=(36, 36)))
    assert result.pixel_size == pytest.approx(size)
    assert accuracy(np.asarray(result.image), trim(truth.sprite)) >= 0.95


def test_a_given_pixel_size_is_used_and_only_the_phase_is_found():
    truth, image, size, phase = _case("48x48 at 21.33 px, offset grid, JPEG", 1)
    result = finish_image(image, FinishSettings(pixel_size=round(size, 2)))
    assert result.pixel_size == round(size, 2)
    assert abs(result.phase[0] - phase[0]) < 1.0
    assert accuracy(np.asarray(result.image), trim(truth.sprite)) >= 0.95


def test_background_keep_and_an_explicit_colour():
    truth, image, _, _ = _case("20x20 at 9.1 px, no JPEG", 5)
    kept = finish_image(image, FinishSettings(background="keep"))
    assert (np.asarray(kept.image)[..., 3] == 255).all()
    assert kept.image.size == (28, 28) and kept.content_size == (28, 28)
    named = finish_image(image, FinishSettings(background="#%02x%02x%02x" % truth.background))
    assert accuracy(np.asarray(named.image), trim(truth.sprite)) >= 0.95


def test_art_that_fills_the_canvas_has_no_background_to_remove():
    rng = np.random.default_rng(5)
    tiles = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    image = Image.fromarray(np.kron(tiles, np.ones((8, 8, 1), np.uint8)))
    result = finish_image(image, FinishSettings())
    assert result.pixel_size == 8 and result.content_size == (12, 12)
    assert np.array_equal(np.asarray(result.image)[..., :3], tiles)
    assert (np.asarray(result.image)[..., 3] == 255).all()


def test_an_outline_rings_the_content_and_a_cell_anchors_it_bottom_centre():
    truth, image, _, _ = _case("16x16 at 10.7 px", 4)
    outlined = finish_image(image, FinishSettings(outline="#ff00ff"))
    arr = np.asarray(outlined.image)
    assert outlined.image.size == (18, 18) and outlined.content_size == (18, 18)
    ring = (arr[..., :3] == (255, 0, 255)).all(-1) & (arr[..., 3] == 255)
    assert ring[:, 0].any() and ring[:, -1].any() and ring[0].any() and ring[-1].any()
    assert "#ff00ff" in outlined.palette
    placed = finish_image(image, FinishSettings(cell=(24, 20)))
    cell = np.asarray(placed.image)
    assert placed.image.size == (24, 20) and placed.content_size == (16, 16)
    opaque = np.argwhere(cell[..., 3] > 0)
    assert opaque[:, 0].max() == 19                                    # stands on the bottom edge
    assert (opaque[:, 1].min(), opaque[:, 1].max()) == (4, 19)         # centred across


def test_a_cell_smaller_than_the_sprite_is_an_error_naming_both_sizes():
    _, image, _, _ = _case("16x16 at 10.7 px", 4)
    with pytest.raises(SpriteError, match=r"16x16 .*12x12"):
        finish_image(image, FinishSettings(cell=(12, 12)))


def test_a_batch_palette_is_shared_by_every_sprite_of_the_batch():
    images = [render(make_sprite(60 + i, 28, 32, 7), px=512, cells=40, phase=(2.0 * i, 3.0), blur=1.0, noise=2,
                     jpeg=90, seed=i) for i in range(3)]
    palette = batch_palette(images + [_png(images[0])], FinishSettings(), 10)
    assert len(palette) == 10 and len(set(palette)) == 10
    allowed = {"#%02x%02x%02x" % c for c in palette}
    used = set()
    for image in images:
        result = finish_image(image, FinishSettings(colors=4), locked_palette=palette)
        assert set(result.palette) <= allowed
        used |= set(result.palette)
    assert len(used) >= 8


# --- palettes ------------------------------------------------------------------------------


def test_the_shipped_palettes_load_with_their_sizes():
    names = palette_names()
    assert {"pico-8", "dawnbringer-16", "dawnbringer-32", "endesga-32", "gameboy"} <= set(names)
    sizes = {name: len(load_palette(name)) for name in names}
    assert sizes["pico-8"] == 16 and sizes["dawnbringer-16"] == 16 and sizes["gameboy"] == 4
    assert sizes["dawnbringer-32"] == 32 and sizes["endesga-32"] == 32
    assert load_palette("pico-8")[8] == (0xFF, 0x00, 0x4D)
    assert load_palette("GameBoy")[0] == (0x0F, 0x38, 0x0F)
    assert load_palette("dawnbringer-16")[0] == (0x14, 0x0C, 0x1C)
    assert load_palette("dawnbringer-32")[1] == (0x22, 0x20, 0x34)
    assert load_palette("endesga-32")[0] == (0xBE, 0x4A, 0x2F)


@pytest.mark.parametrize("fmt", ["hex", "gpl"])
def test_a_palette_written_and_read_back_is_identical(fmt, tmp_path):
    colors = load_palette("dawnbringer-32")
    path = tmp_path / f"mine.{fmt}"
    path.write_text(palette_text(colors, fmt=fmt, name="Mine"))
    assert load_palette(str(path)) == colors
    assert parse_palette_text(palette_text(colors, fmt=fmt), source="x") == colors


def test_palette_files_in_both_formats_parse_with_their_optional_parts():
    hex_text = "\n#FF0044\n00ff00\n\n  0000ff  \n"
    assert parse_palette_text(hex_text, source="a.hex") == [(255, 0, 68), (0, 255, 0), (0, 0, 255)]
    gpl = "GIMP Palette\nName: Test\nColumns: 4\n#\n# a comment\n255   0  68\tRed\n  0 255   0 Green\n0 0 255\n"
    assert parse_palette_text(gpl, source="a.gpl") == [(255, 0, 68), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("text, line", [
    ("ff0044\n00ff00\nnot-a-colour\n", 3),
    ("ff0044\n12345\n", 2),
    ("GIMP Palette\nName: x\n255 0 0 red\n256 0 0 too much\n", 4),
    ("GIMP Palette\n10 20\n", 2),
])
def test_a_malformed_palette_names_the_file_and_the_line(text, line, tmp_path):
    path = tmp_path / "broken.hex"
    path.write_text(text)
    with pytest.raises(PaletteError, match=rf"broken\.hex, line {line}:"):
        load_palette(str(path))


@pytest.mark.parametrize("text", ["", "\n\n", "GIMP Palette\nName: empty\n# nothing\n"])
def test_an_empty_palette_is_an_error(text, tmp_path):
    path = tmp_path / "empty.gpl"
    path.write_text(text)
    with pytest.raises(PaletteError, match="empty.gpl: the palette has no colours"):
        load_palette(str(path))


def test_settings_with_a_broken_palette_file_name_the_key_the_file_and_the_line(tmp_path):
    path = tmp_path / "mine.gpl"
    path.write_text("GIMP Palette\nName: mine\n10 20 30 ok\n10 20\n")
    with pytest.raises(PaletteError) as caught:
        FinishSettings.from_dict({"palette": str(path)})
    assert str(caught.value).startswith(f"palette: {path}, line 4:")


def test_an_unknown_palette_name_lists_the_shipped_ones():
    with pytest.raises(PaletteError, match="no palette named 'nope'.*pico-8"):
        load_palette("nope")


# --- settings ------------------------------------------------------------------------------


def test_settings_round_trip_through_json_data():
    settings = FinishSettings(pixel_size=21.33, colors=8, background="#FFFFFF", outline="#000000", cell=(64, 64),
                              dither=True)
    data = settings.to_dict()
    assert data["background"] == "#ffffff" and data["cell"] == [64, 64]
    assert FinishSettings.from_dict(data) == settings
    assert FinishSettings.from_dict({"size": "48x32", "cell": "64"}).size == (48, 32)
    assert FinishSettings.from_dict({"cell": "64"}).cell == (64, 64)


@pytest.mark.parametrize("data, key", [
    ({"colors": 1}, "colors"), ({"colors": 257}, "colors"), ({"colors": "8"}, "colors"), ({"colors": True}, "colors"),
    ({"background": "red"}, "background"), ({"background": "#12345g"}, "background"),
    ({"outline": "#fff"}, "outline"), ({"cell": [0, 10]}, "cell"), ({"cell": "big"}, "cell"),
    ({"size": [48]}, "size"), ({"pixel_size": 0.5}, "pixel_size"), ({"pixel_size": "auto"}, "pixel_size"),
    ({"palette": "nope"}, "palette"), ({"colors": 8, "palette": "pico-8"}, "colors"),
    ({"trim": "yes"}, "trim"), ({"sharpen": True}, "sharpen"),
])
def test_bad_settings_name_the_key(data, key):
    with pytest.raises(SpriteError) as caught:
        FinishSettings.from_dict(data)
    assert str(caught.value).startswith(f"{key}: ")


def test_the_result_summary_is_json_ready():
    _, image, _, _ = _case("16x16 at 10.7 px", 4)
    result = finish_image(_png(image), FinishSettings(colors=4))
    assert isinstance(result, FinishResult)
    info = result.info()
    assert set(info) == {"pixel_size", "phase", "size", "content_size", "palette"}
    assert info["size"] == [16, 16] and len(info["palette"]) <= 4
    assert all(isinstance(v, float) for v in info["phase"])


# --- bad input -----------------------------------------------------------------------------


def test_bytes_that_are_not_an_image_are_an_error():
    with pytest.raises(SpriteError, match="not an image"):
        finish_image(b"hello, not a PNG", FinishSettings())


def test_a_truncated_png_is_an_error():
    _, image, _, _ = _case("16x16 at 10.7 px", 4)
    data = _png(image)
    with pytest.raises(SpriteError, match="damaged or truncated"):
        finish_image(data[: len(data) // 2], FinishSettings())


@pytest.mark.parametrize("limit", [60_000, 40_000])   # 90 000 px: Pillow's warning zone, then its error
def test_a_decompression_bomb_is_an_error(limit, monkeypatch):
    data = _png(Image.new("RGB", (300, 300), (1, 2, 3)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(SpriteError, match="too many pixels"):
        finish_image(data, FinishSettings())
    with pytest.raises(SpriteError, match="too many pixels"):
        finish_image(Image.new("RGB", (300, 300)), FinishSettings())


@pytest.mark.parametrize("kind", ["noise", "blobs", "flat"])
def test_an_image_without_a_grid_says_so_and_suggests_the_size(kind):
    rng = np.random.default_rng(0)
    if kind == "noise":
        arr = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    elif kind == "blobs":
        y, x = np.mgrid[0:256, 0:256]
        arr = np.stack([128 + 100 * np.sin(x / 23.0 + y / 41.0), 128 + 90 * np.cos(y / 17.0),
                        128 + 80 * np.sin((x - y) / 29.0)], -1)
        arr = np.clip(arr + rng.normal(0, 3, arr.shape), 0, 255).astype(np.uint8)
    else:
        arr = np.full((200, 200, 3), 90, np.uint8)
    with pytest.raises(NoGridError, match=r"no pixel grid found.*--size"):
        finish_image(Image.fromarray(arr), FinishSettings())
