"""A ComfyUI stand-in that speaks ComfyUI v0.3.64's HTTP and WebSocket protocol.

Tests, benchmarks and the demo talk to it instead of a GPU. It matches what real ComfyUI does
on the wire (see /work/shared/comfyui-api.md): routes under / and /api, JSON shapes, status
codes, the order of WebSocket events, queue priority, caching, /interrupt and /queue delete
semantics, validation errors, SaveImage file naming and PNG metadata. It executes the graph far
enough to honour image size, batch size, seed and filename prefix, and draws deterministic
pixel-art sprites (sprites.py). Sampler step time, model load time, node time and the fake
VRAM limit (a KSampler that needs more fails with ComfyUI's CUDA OOM execution_error) are knobs
of `manage.py comfyui_sim`.

Not part of ComfyUI, and never to be used by the project's client:
  GET /sim/stats -> {"busy_seconds", "executed", "first_start", "last_end", "checkpoint_loads"}
  (seconds the executor thread spent executing prompts, prompts executed, epoch of the first
  start and last end, checkpoint loads). Only the benchmarks read it.
  POST /sim/vram {"used_gb": N} -> the GB other programs hold on the fake device (as the
  --vram-used-gb flag at start): /system_stats' vram_free drops by it and a KSampler that needs
  more than the rest fails with the OOM error; answers {"used_gb", "total_gb", "vram_total",
  "vram_free"}, or 400 with {"error"} unless N is a number from 0 to the total. Only tests use it.

Modules: config (knobs, VRAM model), nodes (node classes, object_info), validation
(POST /prompt checks), graph (links, cache keys, execution order), prompt_queue (heap, history),
executor (the worker thread), sprites (images), files (naming, /view), routes, server.
"""
from .config import SimConfig
from .server import build_app, serve

__all__ = ["SimConfig", "build_app", "serve"]
