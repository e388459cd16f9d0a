"""Finish fake pixel art into game-ready sprites: `manage.py sprite_finish IN.png [...] -o OUT`."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from batches import cli
from batches.sprites import FinishSettings, SpriteError, finish_image, palette_names

MAX_INPUT_BYTES = 64 * 1024 * 1024

FLAG_FOR_FIELD = {
    "pixel_size": "--pixel-size", "size": "--size", "colors": "--colors", "palette": "--palette",
    "background": "--background", "outline": "--outline", "cell": "--cell", "dither": "--dither",
}


def flagged(message: str) -> str:
    """A SpriteError's 'field: ...' as the flag the user typed: '--colors: ...'."""
    field, sep, rest = message.partition(": ")
    if sep and field in FLAG_FOR_FIELD:
        return f"{FLAG_FOR_FIELD[field]}: {rest}"
    return message


class Command(cli.CliCommand):
    help = ("Turn generated fake pixel art into sprites: one pixel per art pixel, a small palette, a "
            "transparent background. One input and -o x.png writes that file; several inputs need -o "
            "to be a folder (created) and keep their names. Nothing is written unless every input "
            "finishes; a usage mistake or a bad input exits with 64.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IN.png", help="generated images (PNG, JPEG, WebP)")
        parser.add_argument("-o", "--output", required=True, metavar="OUT",
                            help="a .png file (one input) or a folder")
        parser.add_argument("--pixel-size", default="auto", metavar="auto|N",
                            help="art-pixel size in screen pixels, e.g. 21.33 (default: detect it)")
        parser.add_argument("--size", metavar="N|WxH", help="downscale to exactly this sprite size instead")
        colours = parser.add_mutually_exclusive_group()
        colours.add_argument("--colors", type=cli.whole_number_arg, metavar="K", help="reduce to K colours (2-256)")
        colours.add_argument("--palette", metavar="NAME|FILE",
                             help=f"map onto a palette: {', '.join(palette_names())} or a .hex/.gpl file")
        parser.add_argument("--background", default="auto", metavar="auto|keep|#rrggbb",
                            help="auto: the border's colour becomes transparent (default); keep; or this colour")
        parser.add_argument("--outline", metavar="#rrggbb", help="a 1-pixel outline around the sprite")
        parser.add_argument("--cell", metavar="WxH", help="pad into a fixed cell, anchored bottom-centre")
        parser.add_argument("--dither", action="store_true", help="ordered dithering when reducing colours")
        parser.add_argument("--json", action="store_true", help="print what was done per file as JSON")

    def handle(self, *args, inputs: list[str], output: str, **options) -> None:
        settings = self.settings(options)
        targets = self.targets(inputs, Path(output))
        results = []
        for number, (source, target) in enumerate(zip(inputs, targets), start=1):
            data = read_input(source)
            try:
                result = finish_image(data, settings)
            except SpriteError as exc:
                message = str(exc).removeprefix("image: ")
                raise cli.UsageError(f"{source}: {flagged(message)} (nothing was written)") from None
            results.append((source, target, result))
            if not options["json"]:
                w, h = result.image.size
                self.stderr.write(f"[{number}/{len(inputs)}] {source}: pixel size {result.pixel_size:.2f}, "
                                  f"{w}x{h}, {len(result.palette)} colours")
        write_all([(target, result.image) for _, target, result in results])
        if options["json"]:
            self.write_json([{"input": source, "output": str(target), **result.info()}
                             for source, target, result in results])
        else:
            where = targets[0] if len(targets) == 1 else Path(output)
            self.stdout.write(f"Finished {len(results)} sprite{'s' * (len(results) != 1)} into {where}.")

    def settings(self, options: dict) -> FinishSettings:
        pixel_size = options["pixel_size"]
        if pixel_size.strip().lower() == "auto":
            pixel_size = None
        else:
            try:
                pixel_size = float(pixel_size)
            except ValueError:
                raise cli.UsageError(f"--pixel-size: {pixel_size!r}: give auto or the art-pixel size in screen "
                                     f"pixels, e.g. 21.33") from None
        if pixel_size is not None and options["size"]:
            raise cli.UsageError("--size: not with --pixel-size: give one of them")
        try:
            return FinishSettings.from_dict({
                "pixel_size": pixel_size, "size": options["size"], "colors": options["colors"],
                "palette": options["palette"], "background": options["background"],
                "outline": options["outline"], "cell": options["cell"], "dither": options["dither"],
            })
        except SpriteError as exc:
            raise cli.UsageError(flagged(str(exc))) from None

    def targets(self, inputs: list[str], output: Path) -> list[Path]:
        is_file = output.suffix.lower() == ".png"
        if len(inputs) > 1 and is_file:
            raise cli.UsageError(f"-o: {len(inputs)} inputs need a folder, not {str(output)!r}: "
                                 f"give -o FOLDER (it is created)")
        if output.suffix and not is_file and not output.is_dir():
            raise cli.UsageError(f"-o: {str(output)!r}: give a .png file or a folder")
        if is_file:
            if output.is_dir():
                raise cli.UsageError(f"-o: {str(output)!r} is a folder: give a .png file name, or the folder alone")
            return [output]
        if output.exists() and not output.is_dir():
            raise cli.UsageError(f"-o: {str(output)!r} is a file: several inputs need a folder")
        targets, seen = [], {}
        for source in inputs:
            target = output / f"{Path(source).stem}.png"
            if target in seen:
                raise cli.UsageError(f"-o: {seen[target]} and {source} would both be written to {target}: "
                                     f"rename one, or finish them into different folders")
            seen[target] = source
            targets.append(target)
        return targets


def read_input(source: str) -> bytes:
    path = Path(source)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise cli.UsageError(f"{source}: no such file: check the path") from None
    except IsADirectoryError:
        raise cli.UsageError(f"{source}: is a folder: give image files") from None
    except OSError as exc:
        raise cli.UsageError(f"{source}: cannot read it ({exc.strerror or exc}): check the path and permissions") from None
    if len(data) > MAX_INPUT_BYTES:
        raise cli.UsageError(f"{source}: larger than {MAX_INPUT_BYTES // 2 ** 20} MB: not a generated image")
    return data


def write_all(files) -> None:
    """Every file or none: each is written to a temp file beside its target first, and only when
    all are on disk are they renamed into place."""
    created: list[Path] = []
    staged: list[tuple[str, Path]] = []
    try:
        for target, image in files:
            folder = target.parent
            for missing in reversed([folder, *folder.parents]):
                if not missing.exists():
                    missing.mkdir()
                    created.append(missing)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((tmp, target))
            with os.fdopen(fd, "wb") as fh:
                image.save(fh, format="PNG", optimize=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
    except OSError as exc:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        for folder in reversed(created):
            folder.rmdir()
        where = getattr(exc, "filename", None) or (staged[-1][1] if staged else "the output folder")
        raise cli.UsageError(f"-o: cannot write {where} ({exc.strerror or exc}): check the folder and its "
                             f"permissions (nothing was written)") from None
    for tmp, target in staged:
        os.replace(tmp, target)
