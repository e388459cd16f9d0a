"""Sprite sheets, atlases, tilesets and animations (batches/sheets, issue 13), against sprites
with known pixels (tests/sheet_sprites.py).

The round trip is the proof: pack, write the Aseprite JSON, cut the sheet back with the JSON
alone, and every sprite comes back pixel-exact. Geometry (no overlap, padding, extrusion), the
atlas's field names and types, Tiled's tileset, the three animation formats re-opened with
Pillow, the seam score and the errors are checked on their own.
"""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from batches.sheets import (DEFAULT_MAX_SIZE, Frame, Placement, Sheet, SheetError, Tag, aseprite_json, cut_sheet,
                            export_apng, export_gif, export_webp, pack_sheet, seam_score, tiled_tileset)
from tests.sheet_sprites import random_sprite, rgb, sprite, wrapped_noise


def _frames(count: int, seed: int = 0, **kwargs) -> list[Frame]:
    return [Frame(f"sprite_{i:04d}_{seed}.png", random_sprite(seed * 1000 + i, **kwargs)[0], 100 + 10 * i)
            for i in range(count)]


def _same_size(count: int, w: int = 24, h: int = 20, seed: int = 0) -> list[Frame]:
    return [Frame(f"f{i}.png", sprite(seed * 1000 + i, w, h, margin=(i % 3, 0, 1, i % 2)), 80 + i)
            for i in range(count)]


def _rgba(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGBA"))


def _roundtrip(sheet: Sheet, frames: list[Frame], expected=None) -> None:
    """Cut the sheet back from each atlas layout, through JSON text, and compare pixel for pixel."""
    for layout in ("array", "hash"):
        atlas = json.loads(json.dumps(aseprite_json(sheet, image_name="sheet.png", layout=layout)))
        check_aseprite_schema(atlas, layout)
        cut = cut_sheet(sheet.image, atlas)
        assert list(cut) == [f.name for f in frames]
        for frame in frames:
            want = expected(frame) if expected else _rgba(frame.image)
            np.testing.assert_array_equal(_rgba(cut[frame.name]), want, err_msg=f"{layout}: {frame.name}")


def check_aseprite_schema(atlas: dict, layout: str) -> None:
    """Aseprite's json-array / json-hash, field by field, with the types importers read."""
    def rect(value, keys):
        assert isinstance(value, dict) and set(value) == set(keys), value
        assert all(type(value[k]) is int for k in keys), value

    assert set(atlas) == {"frames", "meta"}
    frames = atlas["frames"]
    if layout == "array":
        assert isinstance(frames, list)
        entries = []
        for entry in frames:
            assert type(entry["filename"]) is str
            entries.append({k: v for k, v in entry.items() if k != "filename"})
    else:
        assert isinstance(frames, dict) and all(type(k) is str for k in frames)
        entries = list(frames.values())
    for entry in entries:
        assert set(entry) == {"frame", "rotated", "trimmed", "spriteSourceSize", "sourceSize", "duration"}, entry
        rect(entry["frame"], "xywh")
        rect(entry["spriteSourceSize"], "xywh")
        rect(entry["sourceSize"], "wh")
        assert entry["rotated"] is False and type(entry["trimmed"]) is bool
        assert type(entry["duration"]) is int and entry["duration"] > 0
        assert (entry["spriteSourceSize"]["w"], entry["spriteSourceSize"]["h"]) == (entry["frame"]["w"],
                                                                                  entry["frame"]["h"])
    meta = atlas["meta"]
    assert {"app", "version", "image", "format", "size", "scale", "frameTags", "layers", "slices"} <= set(meta)
    for key in ("app", "version", "image", "format", "scale"):
        assert type(meta[key]) is str, key
    assert meta["format"] == "RGBA8888" and meta["scale"] == "1"
    rect(meta["size"], "wh")
    assert isinstance(meta["layers"], list) and isinstance(meta["slices"], list)
    assert isinstance(meta["frameTags"], list)
    for tag in meta["frameTags"]:
        assert set(tag) == {"name", "from", "to", "direction"}
        assert type(tag["name"]) is str and type(tag["from"]) is int and type(tag["to"]) is int
        assert tag["direction"] in ("forward", "reverse", "pingpong") and 0 <= tag["from"] <= tag["to"]


def check_geometry(sheet: Sheet) -> None:
    """Every extruded rect inside the sheet, `padding` apart from every other, and the extrusion
    the rect's own edge pixels repeated."""
    e, pad = sheet.extrude, sheet.padding
    image = _rgba(sheet.image)
    boxes = np.array([[p.x - e, p.y - e, p.x + p.w + e, p.y + p.h + e] for p in sheet.placements])
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= sheet.image.width).all()
    assert (boxes[:, 3] <= sheet.image.height).all()
    # Two boxes are clear of each other when one ends `pad` pixels before the other starts, on x or y.
    a, b = boxes[:, None, :], boxes[None, :, :]
    clear = (a[..., 2] + pad <= b[..., 0]) | (b[..., 2] + pad <= a[..., 0]) | \
            (a[..., 3] + pad <= b[..., 1]) | (b[..., 3] + pad <= a[..., 1])
    np.fill_diagonal(clear, True)
    assert clear.all(), "placements overlap (padding included)"
    if e:
        for p in sheet.placements:
            rect = image[p.y:p.y + p.h, p.x:p.x + p.w]
            around = image[p.y - e:p.y + p.h + e, p.x - e:p.x + p.w + e]
            np.testing.assert_array_equal(around, np.pad(rect, ((e, e), (e, e), (0, 0)), mode="edge"))


# --- packing and the round trip ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["maxrects", "shelf"])
@pytest.mark.parametrize("trim", [False, True])
@pytest.mark.parametrize("padding,extrude", [(0, 0), (2, 0), (0, 1), (1, 2)])
def test_a_packed_sheet_cuts_back_to_every_sprite_pixel_exact(algorithm, trim, padding, extrude):
    frames = _frames(40, seed=padding * 10 + extrude)
    sheet = pack_sheet(frames, layout="packed", algorithm=algorithm, trim=trim, padding=padding, extrude=extrude)
    assert sheet.layout == "packed" and sheet.cell is None
    assert [p.name for p in sheet.placements] == [f.name for f in frames]
    check_geometry(sheet)
    _roundtrip(sheet, frames)


def test_trimming_records_the_offset_and_packs_only_the_opaque_box():
    image = sprite(5, 30, 20, margin=(3, 2, 4, 5))
    blank = Image.new("RGBA", (9, 7))
    sheet = pack_sheet([Frame("a.png", image), Frame("blank.png", blank)], layout="packed", trim=True)
    a, b = sheet.placements
    assert (a.w, a.h, a.offset_x, a.offset_y, a.source_w, a.source_h, a.trimmed) == (23, 13, 3, 2, 30, 20, True)
    assert (b.w, b.h, b.source_w, b.source_h) == (1, 1, 9, 7)
    entry = aseprite_json(sheet, image_name="s.png", layout="hash")["frames"]["a.png"]
    assert entry["trimmed"] is True
    assert entry["spriteSourceSize"] == {"x": 3, "y": 2, "w": 23, "h": 13}
    assert entry["sourceSize"] == {"w": 30, "h": 20}
    _roundtrip(sheet, [Frame("a.png", image), Frame("blank.png", blank)])


def test_packing_is_tight_enough_for_many_varied_sprites():
    frames = _frames(150, seed=3)
    area = sum(f.image.width * f.image.height for f in frames)
    for algorithm in ("maxrects", "shelf"):
        sheet = pack_sheet(frames, layout="packed", algorithm=algorithm)
        assert area / (sheet.image.width * sheet.image.height) > 0.8, algorithm
        assert 0.5 < sheet.image.width / sheet.image.height < 2


def test_maxrects_packs_a_mix_of_big_and_small_sprites_tighter_than_shelves():
    rng = np.random.default_rng(4)
    sizes = [(int(w), int(h)) for w, h in rng.integers(40, 100, (12, 2))] + \
            [(int(w), int(h)) for w, h in rng.integers(4, 16, (150, 2))]
    frames = [Frame(f"m{i}.png", sprite(i, w, h)) for i, (w, h) in enumerate(sizes)]
    area = {}
    for algorithm in ("maxrects", "shelf"):
        sheet = pack_sheet(frames, layout="packed", algorithm=algorithm, padding=1)
        check_geometry(sheet)
        area[algorithm] = sheet.image.width * sheet.image.height
    assert area["maxrects"] < area["shelf"]


@pytest.mark.parametrize("columns,rows,padding,extrude,shape", [
    (None, None, 0, 0, (4, 3)), (5, None, 1, 0, (5, 2)), (None, 2, 0, 2, (5, 2)), (3, 4, 3, 1, (3, 4)),
    (1, None, 0, 0, (1, 10)),
])
def test_a_grid_sheet_cuts_back_to_every_sprite_pixel_exact(columns, rows, padding, extrude, shape):
    frames = _same_size(10)
    sheet = pack_sheet(frames, columns=columns, rows=rows, padding=padding, extrude=extrude)
    assert sheet.layout == "grid" and sheet.cell == (24, 20) and (sheet.columns, sheet.rows) == shape
    cols, rws = shape
    assert sheet.image.size == (cols * (24 + 2 * extrude + padding) - padding,
                                rws * (20 + 2 * extrude + padding) - padding)
    for i, p in enumerate(sheet.placements):  # row-major, in the frames' order
        assert (p.x, p.y) == (extrude + (i % cols) * (24 + 2 * extrude + padding),
                              extrude + (i // cols) * (20 + 2 * extrude + padding))
        assert not p.trimmed and (p.offset_x, p.offset_y) == (0, 0)
    check_geometry(sheet)
    _roundtrip(sheet, frames)


def test_in_a_bigger_cell_each_sprite_sits_bottom_centre_and_the_cell_is_the_frame():
    sizes = [(10, 12), (16, 16), (7, 3), (15, 9)]
    frames = [Frame(f"s{i}.png", sprite(i, w, h)) for i, (w, h) in enumerate(sizes)]
    sheet = pack_sheet(frames, cell=(16, 16), padding=1, extrude=1)
    assert all((p.w, p.h, p.source_w, p.source_h) == (16, 16, 16, 16) for p in sheet.placements)

    def in_cell(frame: Frame) -> np.ndarray:
        # What cut_sheet returns for a grid with a bigger cell: the cell-sized frame, the sprite
        # centred across (the extra pixel to the right when odd) and standing on the bottom edge.
        w, h = frame.image.size
        out = np.zeros((16, 16, 4), np.uint8)
        left = (16 - w) // 2
        out[16 - h:, left:left + w] = _rgba(frame.image)
        return out

    check_geometry(sheet)
    _roundtrip(sheet, frames, expected=in_cell)


def test_power_of_two_rounds_both_sides_up():
    for layout in ("grid", "packed"):
        sheet = pack_sheet(_same_size(7, 20, 20), layout=layout, power_of_two=True)
        w, h = sheet.image.size
        assert w & (w - 1) == 0 and h & (h - 1) == 0, (layout, w, h)
        _roundtrip(sheet, _same_size(7, 20, 20))


def test_a_packed_sheet_keeps_under_max_size_when_a_narrower_shape_fits():
    frames = _same_size(30, 32, 32)
    sheet = pack_sheet(frames, layout="packed", max_size=(100, 4096))
    assert sheet.image.width <= 100
    check_geometry(sheet)


# --- the atlas JSON ------------------------------------------------------------------------------


def test_the_atlas_has_aseprites_fields_in_both_layouts_with_tags():
    frames = _same_size(6)
    sheet = pack_sheet(frames, columns=3)
    tags = [Tag("walk", 0, 3), Tag("idle", 4, 5, "pingpong"), Tag("back", 1, 2, "reverse")]
    for layout in ("array", "hash"):
        atlas = json.loads(json.dumps(aseprite_json(sheet, image_name="hero.png", layout=layout, tags=tags,
                                                    app_version="1.2.3")))
        check_aseprite_schema(atlas, layout)
        meta = atlas["meta"]
        assert meta["image"] == "hero.png" and meta["version"] == "1.2.3"
        assert meta["size"] == {"w": sheet.image.width, "h": sheet.image.height}
        assert meta["frameTags"] == [{"name": "walk", "from": 0, "to": 3, "direction": "forward"},
                                     {"name": "idle", "from": 4, "to": 5, "direction": "pingpong"},
                                     {"name": "back", "from": 1, "to": 2, "direction": "reverse"}]
    array = aseprite_json(sheet, image_name="hero.png")["frames"]
    hashed = aseprite_json(sheet, image_name="hero.png", layout="hash")["frames"]
    assert [e["filename"] for e in array] == list(hashed) == [f.name for f in frames]
    assert [e["duration"] for e in array] == [f.duration for f in frames]
    assert array[4]["frame"] == {"x": 24, "y": 20, "w": 24, "h": 20}


def test_a_tag_past_the_last_frame_is_refused():
    sheet = pack_sheet(_same_size(3))
    with pytest.raises(SheetError, match=r"tag 'run'.*3 frames"):
        aseprite_json(sheet, image_name="s.png", tags=[Tag("run", 1, 3)])
    with pytest.raises(SheetError, match="direction"):
        Tag("run", 0, 1, "sideways")
    with pytest.raises(SheetError, match="before start"):
        Tag("run", 2, 1)
    with pytest.raises(SheetError, match="atlas layout"):
        aseprite_json(sheet, image_name="s.png", layout="xml")


def test_cut_sheet_refuses_an_atlas_that_does_not_fit_the_sheet():
    sheet = pack_sheet(_same_size(2))
    atlas = aseprite_json(sheet, image_name="s.png")
    atlas["frames"][1]["frame"]["x"] = 1000
    with pytest.raises(SheetError, match=r"'f1.png'.*outside"):
        cut_sheet(sheet.image, atlas)
    with pytest.raises(SheetError, match="frames"):
        cut_sheet(sheet.image, {"meta": {}})
    atlas = aseprite_json(sheet, image_name="s.png")
    atlas["frames"][0]["rotated"] = True
    with pytest.raises(SheetError, match="rotated"):
        cut_sheet(sheet.image, atlas)


# --- Tiled ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding,extrude", [(0, 0), (2, 1)])
def test_the_tiled_tileset_describes_the_grid_so_tiled_cuts_the_same_tiles(padding, extrude):
    frames = _same_size(7, 16, 16)
    sheet = pack_sheet(frames, columns=4, padding=padding, extrude=extrude)
    tsx, data = tiled_tileset(sheet, name="grass & dirt", image_name="grass.png", tile_w=16, tile_h=16)
    root = ET.fromstring(tsx)
    assert tsx.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert root.tag == "tileset"
    spacing, margin = 2 * extrude + padding, extrude
    want = {"name": "grass & dirt", "tilewidth": "16", "tileheight": "16", "spacing": str(spacing),
            "margin": str(margin), "tilecount": "8", "columns": "4"}
    assert {k: root.get(k) for k in want} == want
    assert root.get("version") and root.get("tiledversion")
    image = root.find("image")
    assert image.attrib == {"source": "grass.png", "width": str(sheet.image.width),
                            "height": str(sheet.image.height)}
    assert data == {"name": "grass & dirt", "tilewidth": 16, "tileheight": 16, "spacing": spacing, "margin": margin,
                    "tilecount": 8, "columns": 4, "image": "grass.png", "imagewidth": sheet.image.width,
                    "imageheight": sheet.image.height, "type": "tileset", "version": data["version"],
                    "tiledversion": data["tiledversion"]}
    json.dumps(data)
    # Tiled's own arithmetic puts tile i exactly on placement i.
    for i, p in enumerate(sheet.placements):
        assert (p.x, p.y) == (margin + (i % 4) * (16 + spacing), margin + (i // 4) * (16 + spacing))


def test_a_tileset_needs_a_grid_sheet_and_its_own_geometry():
    sheet = pack_sheet(_same_size(4, 16, 16), padding=1)
    with pytest.raises(SheetError, match="tile size.*tile_w=16"):
        tiled_tileset(sheet, name="t", image_name="t.png", tile_w=32, tile_h=32)
    with pytest.raises(SheetError, match="spacing 1 and margin 0"):
        tiled_tileset(sheet, name="t", image_name="t.png", tile_w=16, tile_h=16, spacing=0, margin=0)
    packed = pack_sheet(_same_size(4, 16, 16), layout="packed")
    with pytest.raises(SheetError, match="layout grid"):
        tiled_tileset(packed, name="t", image_name="t.png", tile_w=16, tile_h=16)


# --- animation -----------------------------------------------------------------------------------


def _anim_frames() -> list[Frame]:
    frames = []
    for i, ms in enumerate([100, 155, 33, 70]):
        a = np.zeros((16, 20, 4), np.uint8)
        a[2:14, 2 + 3 * i:8 + 3 * i] = [60 * i, 200, 30, 255]  # moves right; the rest transparent
        a[3, 3] = [255, 0, 0, 255]
        frames.append(Frame(f"walk_{i}.png", Image.fromarray(a, "RGBA"), ms))
    return frames


def _played(data: bytes) -> tuple[list[np.ndarray], list[int], dict]:
    im = Image.open(io.BytesIO(data))
    pixels, durations = [], []
    for i in range(im.n_frames):
        im.seek(i)
        im.load()
        a = np.array(im.convert("RGBA"))
        a[a[..., 3] == 0] = 0  # colour under transparent pixels is not kept
        pixels.append(a)
        durations.append(int(im.info["duration"]))
    return pixels, durations, dict(im.info)


@pytest.mark.parametrize("export,name", [(export_gif, "GIF"), (export_apng, "PNG"), (export_webp, "WEBP")])
@pytest.mark.parametrize("loop,order", [("loop", [0, 1, 2, 3]), ("pingpong", [0, 1, 2, 3, 2, 1]),
                                        ("once", [0, 1, 2, 3])])
def test_animations_reopen_with_the_frames_in_order_their_durations_and_transparency(export, name, loop, order):
    frames = _anim_frames()
    data = export(frames, loop=loop)
    assert Image.open(io.BytesIO(data)).format == name
    pixels, durations, info = _played(data)
    assert len(pixels) == len(order)
    for got, i in zip(pixels, order):
        np.testing.assert_array_equal(got, _rgba(frames[i].image))  # transparent pixels stay transparent
    ms = [frames[i].duration for i in order]
    if export is export_gif:  # GIF counts in 10 ms units (nearest)
        assert durations == [{100: 100, 155: 160, 33: 30, 70: 70}[m] for m in ms]
    else:
        assert durations == ms
    if loop == "once":
        assert info.get("loop") in (None, 1)  # GIF: no loop block; APNG/WebP: one play
    else:
        assert info.get("loop") == 0


@pytest.mark.parametrize("export", [export_gif, export_apng, export_webp])
def test_frames_of_different_sizes_animate_bottom_centre_in_a_cell(export):
    frames = [Frame("a.png", sprite(1, 6, 8)), Frame("b.png", sprite(2, 9, 5))]
    pixels, _, _ = _played(export(frames, cell=(10, 8)))
    for got, frame in zip(pixels, frames):
        w, h = frame.image.size
        want = np.zeros((8, 10, 4), np.uint8)
        want[8 - h:, (10 - w) // 2:(10 - w) // 2 + w] = _rgba(frame.image)
        np.testing.assert_array_equal(got, want)


def test_a_gif_frame_under_20_ms_is_stored_as_20_ms():
    frames = _anim_frames()[:2]
    frames[0].duration = 5
    assert _played(export_gif(frames))[1] == [20, 160]


def test_gif_frames_with_many_colours_share_one_palette_so_colours_do_not_flicker():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)            # ~576 colours: needs quantizing
    a = np.dstack([base, np.full((24, 24), 255, np.uint8)])
    b = a.copy()
    b[:4] = 0                                                              # some transparency in frame 2
    frames = [Frame("a.png", Image.fromarray(a, "RGBA")), Frame("b.png", Image.fromarray(b, "RGBA"))]
    (pa, pb), _, _ = _played(export_gif(frames))
    np.testing.assert_array_equal(pa[4:], pb[4:])                          # same colour in, same colour out
    assert (pb[:4] == 0).all() and (pa[..., 3] == 255).all()
    assert np.abs(pa[..., :3].astype(int) - base).mean() < 20             # close to the originals
    assert len(np.unique(pa[..., :3].reshape(-1, 3), axis=0)) <= 255


def test_a_gif_with_a_background_colour_is_opaque():
    frames = _anim_frames()[:2]
    pixels, _, _ = _played(export_gif(frames, background="#203040"))
    assert (pixels[0][..., 3] == 255).all()
    assert tuple(pixels[0][0, 0, :3]) == (0x20, 0x30, 0x40)
    assert tuple(pixels[0][3, 3, :3]) == (255, 0, 0)


def test_animations_refuse_frames_of_different_sizes_and_unknown_loops():
    frames = [Frame("a.png", sprite(1, 8, 8)), Frame("b.png", sprite(2, 9, 8))]
    for export in (export_gif, export_apng, export_webp):
        with pytest.raises(SheetError, match=r"8x8, 9x8.*--cell 9x8"):
            export(frames)
    with pytest.raises(SheetError, match=r"larger than the 8x8 cell.*at least 9x8"):
        export_apng(frames, cell=(8, 8))
    with pytest.raises(SheetError, match="loop"):
        export_gif(frames[:1], loop="bounce")
    with pytest.raises(SheetError, match="at least one"):
        export_webp([])
    with pytest.raises(SheetError, match="background"):
        export_gif(frames[:1], background="blue-ish")


# --- seams ---------------------------------------------------------------------------------------


def test_a_flat_tile_scores_zero():
    assert seam_score(Image.new("RGB", (16, 16), (90, 120, 40))) == 0.0
    assert seam_score(Image.new("RGBA", (8, 8))) == 0.0


@pytest.mark.parametrize("seed,sigma", [(1, 1.0), (2, 2.0), (3, 3.0), (4, 5.0)])
def test_a_seamless_noise_tile_scores_lower_than_the_same_tile_with_a_seam(seed, sigma):
    tile = wrapped_noise(seed, 32, sigma)
    seamless = seam_score(rgb(tile))
    assert seamless < 0.3
    ramp = np.linspace(0, 90, 32)
    gradient = tile + ramp[None, :, None]                 # left edge dark, right edge bright
    recoloured = tile.copy()
    recoloured[-2:] = recoloured[-2:] * 0.5 + np.array([230, 60, 40]) * 0.5  # the bottom edge reddened
    for name, seamed in (("gradient", gradient), ("recoloured edge", recoloured)):
        score = seam_score(rgb(seamed))
        assert score > seamless + 0.3, (name, seamless, score)


def test_periodic_patterns_are_seamless_and_a_gradient_across_them_is_not():
    yy, xx = np.mgrid[0:32, 0:32]
    stripes = np.repeat((128 + 80 * np.sin(2 * np.pi * xx / 8))[..., None], 3, -1)
    checker = np.repeat((((xx // 4) + (yy // 4)) % 2 * 200.0 + 20)[..., None], 3, -1)
    for name, tile in (("stripes", stripes), ("checker", checker)):
        assert seam_score(rgb(tile)) < 0.05, name
    down = stripes + np.linspace(0, 80, 32)[:, None, None]  # the stripes run down: the seam is across rows
    assert seam_score(rgb(down)) > 1.0
    flat_edge = np.full((16, 16, 3), 100.0)
    flat_edge[:, -1] = 140
    assert seam_score(rgb(flat_edge)) > 1.0


def test_a_busy_tile_is_not_penalised_for_being_busy():
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (32, 32, 3)).astype(float)  # white noise: every step is large
    assert seam_score(rgb(noise)) < 0.2


# --- errors --------------------------------------------------------------------------------------


def test_an_empty_selection_is_refused():
    with pytest.raises(SheetError, match="select at least one image"):
        pack_sheet([])


def test_a_grid_of_mixed_sizes_without_a_cell_names_the_sizes_and_the_fix():
    frames = [Frame("a.png", sprite(1, 16, 16)), Frame("b.png", sprite(2, 20, 12))]
    with pytest.raises(SheetError, match=r"16x16, 20x12.*--cell 20x16"):
        pack_sheet(frames)
    with pytest.raises(SheetError, match=r"larger than the 16x16 cell.*at least 20x16"):
        pack_sheet(frames, cell=(16, 16))


def test_a_sheet_over_max_size_names_the_size_needed_and_the_limit():
    frames = _same_size(20, 64, 64)
    with pytest.raises(SheetError, match=r"needs 320x256 pixels, over the limit of 256x256.*packed layout"):
        pack_sheet(frames, max_size=(256, 256))
    with pytest.raises(SheetError, match=r"needs 1280x64.*fewer columns"):
        pack_sheet(frames, rows=1, max_size=(1024, 1024))
    with pytest.raises(SheetError, match=r"over the limit of 100x100"):
        pack_sheet(frames, layout="packed", max_size=(100, 100))
    assert DEFAULT_MAX_SIZE == (8192, 8192)


@pytest.mark.parametrize("kwargs,message", [
    ({"columns": 0}, "columns: 0"), ({"columns": 2.5}, "columns: 2.5"), ({"rows": -1}, "rows: -1"),
    ({"padding": -1}, "padding: -1"), ({"padding": "2"}, "padding: '2'"), ({"extrude": 100}, "extrude: 100"),
    ({"columns": 2, "rows": 2}, r"2 x 2 = 4 cells for 6 images"), ({"layout": "hex"}, "layout: 'hex'"),
    ({"layout": "packed", "algorithm": "guillotine"}, "algorithm"), ({"trim": True}, "trim: only the packed"),
    ({"layout": "packed", "columns": 3}, "columns: only the grid"), ({"cell": (0, 4)}, "cell: 0"),
    ({"max_size": (0, 10)}, "max_size: 0"), ({"cell": "64"}, "cell: '64'"),
])
def test_bad_settings_are_refused_with_the_field_named(kwargs, message):
    with pytest.raises(SheetError, match=message):
        pack_sheet(_same_size(6), **kwargs)


def test_frames_are_checked_on_the_way_in():
    with pytest.raises(SheetError, match="appears twice"):
        pack_sheet([Frame("a.png", sprite(1, 4, 4)), Frame("a.png", sprite(2, 4, 4))])
    with pytest.raises(SheetError, match="duration"):
        Frame("a.png", sprite(1, 4, 4), duration=0)
    with pytest.raises(SheetError, match="name"):
        Frame("", sprite(1, 4, 4))
    assert Frame("rgb.png", Image.new("RGB", (3, 3))).image.mode == "RGBA"
    assert Placement.__dataclass_fields__.keys() >= {"name", "x", "y", "w", "h", "source_w", "source_h",
                                                    "offset_x", "offset_y", "trimmed", "duration"}
