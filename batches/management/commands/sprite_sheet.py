"""Pack a job's sprites into a sheet with an atlas (Aseprite JSON or a Tiled tileset), and its
animation into a GIF / APNG / WebP:

    manage.py sprite_sheet JOB [--approved] [--images ID,ID...] [--layout grid|packed] [--columns N]
        [--cell WxH] [--padding N] [--format aseprite-array|aseprite-hash|tiled] [--gif] [-o OUT] [--json]
"""
from __future__ import annotations

import re
from pathlib import Path

from batches import cli
from batches.models import Image
from batches.numbers import NumberError, parse_id_list
from batches.services import sheets
from batches.sheets import SheetError

_CELL = re.compile(r"([0-9]{1,5})[xX]([0-9]{1,5})")


def cell_arg(value: str) -> tuple[int, int]:
    match = _CELL.fullmatch(value.strip())
    if not match:
        raise ValueError(value)
    return int(match.group(1)), int(match.group(2))


cell_arg.__name__ = "WxH"  # argparse names the type in its error: "invalid WxH value"


class Command(cli.CliCommand):
    help = ("Pack a job's sprites (its originals where it has none) into one PNG with a JSON atlas that "
            "Phaser, Godot, LibGDX and Unity importers read, or a Tiled tileset; with --gif/--apng/--webp also "
            "its animation. Without -o the files go to the job's sheets/ folder and batch_info.json lists them.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("job", type=cli.job_id_arg, metavar="JOB", help="the job's id")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--approved", action="store_true", help="only the images approved in review")
        which.add_argument("--images", metavar="ID,ID...", help="only these images of the job")
        parser.add_argument("--layout", choices=("grid", "packed"), default="grid",
                            help="grid: fixed cells (default); packed: MaxRects, as tight as it goes")
        parser.add_argument("--columns", type=cli.whole_number_arg, metavar="N", help="grid columns (default: square-ish)")
        parser.add_argument("--cell", type=cell_arg, metavar="WxH",
                            help="grid cell size; sprites smaller than it sit bottom-centre (needed for mixed sizes)")
        parser.add_argument("--padding", type=cli.whole_number_arg, default=0, metavar="N", help="pixels between frames")
        parser.add_argument("--extrude", type=cli.whole_number_arg, default=0, metavar="N",
                            help="repeat each frame's edge pixels N px outward (no bleeding when scaled)")
        parser.add_argument("--format", choices=sheets.FORMATS, default="aseprite-array",
                            help="the atlas: Aseprite json-array (default) or json-hash, or a Tiled tileset (.tsx + .tsj)")
        parser.add_argument("--animation", action="store_true", default=None,
                            help="frames in the order arranged on the job page, dropped ones left out, with a frameTags "
                                 "entry (default for jobs of the animation profile)")
        parser.add_argument("--gif", action="store_true", help="also an animated GIF at the job's fps and loop")
        parser.add_argument("--apng", action="store_true", help="also an animated PNG")
        parser.add_argument("--webp", action="store_true", help="also an animated WebP")
        parser.add_argument("-o", "--output", metavar="OUT",
                            help="a folder, or OUT.png (the files share its stem); default: the job's sheets/ folder")
        parser.add_argument("--json", action="store_true", help="print what was written as JSON")

    def handle(self, *args, **options) -> None:
        job = cli.get_job(options["job"], flag="JOB")
        ids = None
        if options["images"]:
            try:
                ids = parse_id_list([options["images"]], what="an image id")
            except NumberError as exc:
                raise cli.UsageError(f"--images: {exc}") from None
            missing = sorted(set(ids) - set(Image.objects.filter(job_id=job.pk, pk__in=ids).values_list("pk", flat=True)))
            if missing:
                raise cli.UsageError(f"--images: job {job.pk} has no image {', '.join(map(str, missing))}")
        animation = options["animation"] if options["animation"] is not None else job.profile == "animation"
        request = sheets.SheetRequest(
            approved=options["approved"], image_ids=ids, layout=options["layout"], columns=options["columns"],
            cell=options["cell"], padding=options["padding"], extrude=options["extrude"], fmt=options["format"],
            gif=options["gif"], apng=options["apng"], webp=options["webp"], animation=animation)
        out = Path(options["output"]) if options["output"] else None
        try:
            result = sheets.export_job(job, request, out=out, by=cli.actor_name())
        except SheetError as exc:
            raise cli.UsageError(f"{_usage_line(str(exc))} (nothing was written)") from None
        if options["json"]:
            self.write_json({"job": job.pk, "frames": result.frames, "size": list(result.size),
                             "files": [str(p) for p in result.files]})
            return
        self.stdout.write(f"Job {job.pk}: {result.frames} frame(s) in a {result.size[0]}x{result.size[1]} sheet")
        for path in result.files:
            self.stdout.write(f"  {path}")


FLAGS = {"columns": "--columns", "cell": "--cell", "padding": "--padding", "extrude": "--extrude",
         "layout": "--layout", "format": "--format"}


def _usage_line(message: str) -> str:
    """A library message as a usage line: 'columns: 0: ...' becomes '--columns: 0: ...'."""
    key, _, rest = message.partition(": ")
    return f"{FLAGS[key]}: {rest}" if key in FLAGS else message
