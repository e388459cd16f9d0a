"""Output, input and temp folders, SaveImage naming, and GET /view, as ComfyUI's folder_paths.py and server.py do them."""
from __future__ import annotations

import mimetypes
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO

from aiohttp import web
from PIL import Image


@dataclass
class Folders:
    """ComfyUI keeps output/input/temp under its base dir; the simulator keeps input and temp private.

    The temp dir is wiped at start and exit in ComfyUI; a private mkdtemp gives the same
    guarantee without two simulators sharing (and wiping) each other's temp files.
    """

    output: str
    input: str
    temp: str
    _scratch: str

    @classmethod
    def create(cls, output_directory: str) -> "Folders":
        output = os.path.abspath(output_directory)
        os.makedirs(output, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix="comfyui_sim_")
        folders = cls(output=output, input=os.path.join(scratch, "input"), temp=os.path.join(scratch, "temp"),
                      _scratch=scratch)
        os.makedirs(folders.input, exist_ok=True)
        os.makedirs(folders.temp, exist_ok=True)
        return folders

    def cleanup(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def by_type(self, type_name: str) -> str | None:
        """folder_paths.get_directory_by_type: only these three are reachable over HTTP."""
        return {"output": self.output, "temp": self.temp, "input": self.input}.get(type_name)

    def annotated(self, name: str) -> tuple[str, str | None]:
        """folder_paths.annotated_filepath: 'x.png [output]' names its own folder."""
        for suffix, folder in (("[output]", self.output), ("[input]", self.input), ("[temp]", self.temp)):
            if name.endswith(suffix):
                return name[: -(len(suffix) + 1)], folder
        return name, None


def get_save_image_path(filename_prefix: str, output_dir: str, image_width: int = 0,
                        image_height: int = 0) -> tuple[str, str, int, str, str]:
    """Port of folder_paths.get_save_image_path: placeholders, subfolder, next free counter.

    Raises the same bare Exception ComfyUI raises when the prefix escapes the output folder;
    SaveImage lets it surface as an execution_error at run time, never at validation.
    """

    def map_filename(filename: str) -> tuple[int, str]:
        prefix_len = len(os.path.basename(filename_prefix))
        prefix = filename[: prefix_len + 1]
        try:
            digits = int(filename[prefix_len + 1:].split(".")[0].split("_")[0])
        except ValueError:
            digits = 0
        return digits, prefix

    def compute_vars(text: str) -> str:
        now = time.localtime()
        for key, value in (("%width%", str(image_width)), ("%height%", str(image_height)),
                           ("%year%", str(now.tm_year)), ("%month%", str(now.tm_mon).zfill(2)),
                           ("%day%", str(now.tm_mday).zfill(2)), ("%hour%", str(now.tm_hour).zfill(2)),
                           ("%minute%", str(now.tm_min).zfill(2)), ("%second%", str(now.tm_sec).zfill(2))):
            text = text.replace(key, value)
        return text

    if "%" in filename_prefix:
        filename_prefix = compute_vars(filename_prefix)

    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)

    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception("**** ERROR: Saving image outside the output folder is not allowed."
                        + "\n full_output_folder: " + os.path.abspath(full_output_folder)
                        + "\n         output_dir: " + output_dir)

    try:
        counter = max(
            item for item in map(map_filename, os.listdir(full_output_folder))
            if os.path.normcase(item[1][:-1]) == os.path.normcase(filename) and item[1][-1:] == "_"
        )[0] + 1
    except ValueError:
        counter = 1
    except FileNotFoundError:
        os.makedirs(full_output_folder, exist_ok=True)
        counter = 1
    return full_output_folder, filename, counter, subfolder, filename_prefix


def _png_response(image: Image.Image, filename: str, **save_args) -> web.Response:
    buffer = BytesIO()
    image.save(buffer, **save_args)
    fmt = save_args["format"].lower()
    return web.Response(body=buffer.getvalue(), content_type=f"image/{fmt}",
                        headers={"Content-Disposition": f'filename="{filename}"'})


def view_response(request: web.Request, folders: Folders) -> web.StreamResponse:
    """GET /view, with the status codes of ComfyUI's view_image handler."""
    query = request.rel_url.query
    if "filename" not in query:
        return web.Response(status=404)
    filename, output_dir = folders.annotated(query["filename"])
    if not filename:
        return web.Response(status=400)
    if filename[0] == "/" or ".." in filename:  # ComfyUI's path-traversal guard
        return web.Response(status=400)
    if output_dir is None:
        output_dir = folders.by_type(query.get("type", "output"))
    if output_dir is None:
        return web.Response(status=400)
    if "subfolder" in query:
        full_output_dir = os.path.join(output_dir, query["subfolder"])
        if os.path.commonpath((os.path.abspath(full_output_dir), output_dir)) != output_dir:
            return web.Response(status=403)
        output_dir = full_output_dir

    filename = os.path.basename(filename)
    file = os.path.join(output_dir, filename)
    if not os.path.isfile(file):
        return web.Response(status=404)

    channel = query.get("channel", "rgba")
    if "preview" in query:
        preview_info = query["preview"].split(";")
        image_format = preview_info[0]
        if image_format not in ("webp", "jpeg") or "a" in query.get("channel", ""):
            image_format = "webp"
        quality = int(preview_info[-1]) if preview_info[-1].isdigit() else 90
        with Image.open(file) as img:
            if image_format == "jpeg" or channel == "rgb":
                img = img.convert("RGB")
            return _png_response(img, filename, format=image_format, quality=quality)
    if channel == "rgb":
        with Image.open(file) as img:
            return _png_response(img.convert("RGB"), filename, format="PNG")
    if channel == "a":
        with Image.open(file) as img:
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            alpha_img = Image.new("RGBA", img.size)
            alpha_img.putalpha(alpha)
            return _png_response(alpha_img, filename, format="PNG")

    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if content_type in {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css"}:
        content_type = "application/octet-stream"  # forces a download, as ComfyUI does
    return web.FileResponse(file, headers={"Content-Disposition": f'filename="{filename}"',
                                           "Content-Type": content_type})
