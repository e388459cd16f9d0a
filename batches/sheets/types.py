"""The values the sheets library passes around: frames in, placements and a sheet out, tags for
animations. Plain dataclasses; a Frame's image is made RGBA on the way in."""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from batches.sheets.errors import SheetError

DIRECTIONS = ("forward", "reverse", "pingpong")


@dataclass
class Frame:
    name: str                 # the sprite's file name, e.g. "sprite_0001_123.png": the atlas "filename"
    image: Image.Image        # RGBA (converted on the way in)
    duration: int = 100       # ms

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SheetError(f"frame name: {self.name!r}: give each frame a name (its file name, e.g. sprite_0001.png)")
        if not isinstance(self.image, Image.Image):
            raise SheetError(f"frame {self.name!r}: image is {type(self.image).__name__}: give a PIL image")
        if self.image.width < 1 or self.image.height < 1:
            raise SheetError(f"frame {self.name!r}: the image is empty ({self.image.width}x{self.image.height})")
        if self.image.mode != "RGBA":
            self.image = self.image.convert("RGBA")
        if isinstance(self.duration, bool) or not isinstance(self.duration, int) or not 1 <= self.duration <= 65535:
            raise SheetError(f"frame {self.name!r}: duration {self.duration!r}: give milliseconds, 1 to 65535")


@dataclass
class Tag:
    name: str
    start: int                # first frame index
    end: int                  # last frame index, inclusive (Aseprite's "to")
    direction: str = "forward"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SheetError(f"tag name: {self.name!r}: give the animation a name, e.g. walk")
        for field in ("start", "end"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SheetError(f"tag {self.name!r}: {field} {value!r}: give a frame index (0 or more)")
        if self.end < self.start:
            raise SheetError(f"tag {self.name!r}: end {self.end} is before start {self.start}: "
                             f"give the first and the last frame, in order")
        if self.direction not in DIRECTIONS:
            raise SheetError(f"tag {self.name!r}: direction {self.direction!r}: give one of {', '.join(DIRECTIONS)}")


@dataclass
class Placement:
    """Where a frame went in the sheet."""
    name: str
    x: int                    # the frame rect in the sheet (the trimmed rect when trimmed)
    y: int
    w: int
    h: int
    source_w: int             # the frame's original size (the cell, for a grid with a bigger cell)
    source_h: int
    offset_x: int             # where the rect sits in the source (0, 0 if not trimmed)
    offset_y: int
    trimmed: bool
    duration: int


@dataclass
class Sheet:
    image: Image.Image        # RGBA
    placements: list[Placement]  # in the order of the frames given
    layout: str               # "grid" | "packed"
    cell: tuple[int, int] | None  # the grid's cell size (None when packed)
    padding: int = 0          # transparent pixels between neighbouring (extruded) rects
    extrude: int = 0          # edge pixels repeated outward around each rect
    columns: int | None = None  # the grid's columns and rows (None when packed)
    rows: int | None = None
