"""HTTP routes, each registered twice (bare and under /api) as ComfyUI's add_routes() does.

Handlers follow server.py of ComfyUI v0.3.64: a body that is not JSON makes aiohttp answer 500
with plain text, POST /queue, /interrupt, /history and /free answer 200 with an empty body.
GET /sim/stats and POST /sim/vram are the simulator-only routes (see the package docstring).
"""
from __future__ import annotations

import json
import os
import sys
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from .files import view_response
from .nodes import object_info
from .validation import validate_prompt

if TYPE_CHECKING:
    from .server import PromptServer

COMFYUI_VERSION = "0.3.64"
MODEL_FOLDERS = ["checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
                 "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
                 "custom_nodes", "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders"]


def _ram() -> tuple[int, int]:
    page = os.sysconf("SC_PAGE_SIZE")
    return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")


def add_routes(app: web.Application, server: "PromptServer") -> None:
    routes = web.RouteTableDef()

    routes.get("/ws")(server.websocket_handler)

    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response(server.get_queue_info())

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        json_data = await request.json()
        # The counter moves on every POST, rejected ones included; an explicit number does not move it.
        if "number" in json_data:
            number = float(json_data["number"])
        else:
            number = server.number
            if "front" in json_data and json_data["front"]:
                number = -number
            server.number += 1

        if "prompt" not in json_data:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                     "extra_info": {}}
            return web.json_response({"error": error, "node_errors": {}}, status=400)

        prompt = json_data["prompt"]
        prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
        valid, error, outputs_to_execute, node_errors = validate_prompt(
            prompt, json_data.get("partial_execution_targets"), server.registry, server.catalog)
        extra_data = json_data.get("extra_data", {})
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        if not valid:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        server.prompt_queue.put((number, prompt_id, prompt, extra_data, outputs_to_execute))
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        running, pending = server.prompt_queue.get_current_queue()
        return web.json_response({"queue_running": running, "queue_pending": pending})

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        json_data = await request.json()
        if "clear" in json_data and json_data["clear"]:
            server.prompt_queue.wipe_queue()
        for id_to_delete in json_data.get("delete", []):
            server.prompt_queue.delete_queue_item(lambda item, i=id_to_delete: item[1] == i)
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        try:
            json_data = await request.json()
        except json.JSONDecodeError:
            json_data = {}
        prompt_id = json_data.get("prompt_id")
        # With a prompt_id, only the running prompt of that id is interrupted; otherwise a no-op.
        if not prompt_id or server.prompt_queue.is_running(prompt_id):
            server.executor.interrupted.set()
        return web.Response(status=200)

    @routes.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(server.prompt_queue.get_history(max_items=max_items, offset=offset))

    @routes.get("/history/{prompt_id}")
    async def get_history_prompt_id(request: web.Request) -> web.Response:
        return web.json_response(server.prompt_queue.get_history(prompt_id=request.match_info["prompt_id"]))

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        json_data = await request.json()
        if "clear" in json_data and json_data["clear"]:
            server.prompt_queue.wipe_history()
        for id_to_delete in json_data.get("delete", []):
            server.prompt_queue.delete_history_item(id_to_delete)
        return web.Response(status=200)

    @routes.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        json_data = await request.json()
        if json_data.get("unload_models", False):
            server.prompt_queue.set_flag("unload_models", True)
        if json_data.get("free_memory", False):
            server.prompt_queue.set_flag("free_memory", True)
        return web.Response(status=200)

    @routes.get("/view")
    async def view_image(request: web.Request) -> web.StreamResponse:
        return view_response(request, server.folders)

    @routes.get("/system_stats")
    async def system_stats(request: web.Request) -> web.Response:
        ram_total, ram_free = _ram()
        total = server.config.vram_bytes
        used = server.executor.vram_used_bytes()
        return web.json_response({
            "system": {"os": os.name, "ram_total": ram_total, "ram_free": ram_free, "comfyui_version": COMFYUI_VERSION,
                       "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
                       "required_templates_version": "0.1.95", "python_version": sys.version,
                       "pytorch_version": "2.8.0+cu129", "embedded_python": False, "argv": sys.argv},
            "devices": [{"name": "cuda:0 NVIDIA GB10 : cudaMallocAsync", "type": "cuda", "index": 0,
                         "vram_total": total, "vram_free": server.executor.vram_free_bytes(used),
                         "torch_vram_total": used, "torch_vram_free": 0}],
        })

    @routes.get("/features")
    async def get_features(request: web.Request) -> web.Response:
        return web.json_response({"supports_preview_metadata": True, "max_upload_size": 104857600})

    @routes.get("/object_info")
    async def get_object_info(request: web.Request) -> web.Response:
        return web.json_response({name: object_info(node, server.catalog) for name, node in server.registry.items()})

    @routes.get("/object_info/{node_class}")
    async def get_object_info_node(request: web.Request) -> web.Response:
        node = server.registry.get(request.match_info["node_class"])
        return web.json_response({node.name: object_info(node, server.catalog)} if node else {})

    @routes.get("/embeddings")
    async def get_embeddings(request: web.Request) -> web.Response:
        return web.json_response([])

    @routes.get("/models")
    async def list_model_types(request: web.Request) -> web.Response:
        return web.json_response(MODEL_FOLDERS)

    @routes.get("/models/{folder}")
    async def get_models(request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response({"checkpoints": server.catalog.checkpoints,
                                  "loras": server.catalog.loras}.get(folder, []))

    # ComfyUI serves everything at both paths; prefixed ones are added first, as in add_routes().
    app.router.add_routes([web.route(r.method, "/api" + r.path, r.handler) for r in routes])
    app.router.add_routes(routes)

    async def sim_stats(request: web.Request) -> web.Response:
        """SIMULATOR ONLY, not part of ComfyUI: executor timing for the benchmarks."""
        return web.json_response(server.stats.as_dict())

    app.router.add_get("/sim/stats", sim_stats)

    async def sim_vram(request: web.Request) -> web.Response:
        """SIMULATOR ONLY, not part of ComfyUI: {"used_gb": N} sets the GB other programs hold on the
        device (as --vram-used-gb does at start); answers the new state. Tests shrink and grow the
        free VRAM with it to drive batch size "auto"."""
        total_gb = server.config.vram_gb
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        used = body.get("used_gb") if isinstance(body, dict) else None
        if isinstance(used, bool) or not isinstance(used, (int, float)) or not 0 <= used <= total_gb:
            return web.json_response(
                {"error": f'expected {{"used_gb": N}} with N a number from 0 to {total_gb:g} (the device total)'},
                status=400)
        server.executor.vram_others_gb = float(used)
        return web.json_response({"used_gb": server.executor.vram_others_gb, "total_gb": total_gb,
                                  "vram_total": server.config.vram_bytes,
                                  "vram_free": server.executor.vram_free_bytes()})

    app.router.add_post("/sim/vram", sim_vram)
