"""Serve the ComfyUI simulator: `manage.py comfyui_sim --port 8188 --step-ms 50`."""
from __future__ import annotations

import asyncio
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from batches.comfyui_sim import SimConfig, serve
from batches.comfyui_sim.config import DEFAULT_CHECKPOINTS, DEFAULT_LORAS, split_names


class Command(BaseCommand):
    help = "Run a ComfyUI v0.3.64 protocol simulator that draws pixel-art sprites instead of using a GPU."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8188)
        parser.add_argument("--step-ms", type=float, default=50.0, help="wall time of one sampler step")
        parser.add_argument("--output-directory", default="outputs/comfyui_sim",
                            help="where SaveImage writes (default: ./outputs/comfyui_sim)")
        parser.add_argument("--checkpoints", default=",".join(DEFAULT_CHECKPOINTS),
                            help="comma list of checkpoint names the simulator offers")
        parser.add_argument("--loras", default=",".join(DEFAULT_LORAS), help="comma list of LoRA names")
        parser.add_argument("--vram-gb", type=float, default=119.0,
                            help="fake VRAM total; a KSampler needing more (6 GB + 4 GB per image) fails with OOM")
        parser.add_argument("--vram-used-gb", type=float, default=0.0,
                            help="GB of VRAM other programs hold: missing from /system_stats' vram_free and "
                                 "from what a KSampler may use (POST /sim/vram {\"used_gb\": N} changes it live)")
        parser.add_argument("--model-load-ms", type=float, default=0.0,
                            help="extra delay when a sampler runs another checkpoint than the loaded one")
        parser.add_argument("--node-ms", type=float, default=0.0, help="wall time of each non-sampler node")
        parser.add_argument("--preview-method", default="none", choices=("none", "auto", "latent2rgb", "taesd"),
                            help="as ComfyUI's flag: anything but none sends a JPEG preview after every sampler step")

    def handle(self, *args, **options) -> None:
        for name in ("step_ms", "vram_gb", "vram_used_gb", "model_load_ms", "node_ms"):
            if not options[name] >= 0:
                raise CommandError(f"--{name.replace('_', '-')} must not be negative")
        if options["vram_used_gb"] > options["vram_gb"]:
            raise CommandError(f"--vram-used-gb {options['vram_used_gb']:g} is above --vram-gb {options['vram_gb']:g}")
        config = SimConfig(
            host=options["host"], port=options["port"], step_ms=options["step_ms"],
            output_directory=Path(options["output_directory"]).resolve(),
            checkpoints=split_names(options["checkpoints"]), loras=split_names(options["loras"]),
            vram_gb=options["vram_gb"], vram_used_gb=options["vram_used_gb"], model_load_ms=options["model_load_ms"], node_ms=options["node_ms"],
            preview_method=options["preview_method"],
        )
        try:
            asyncio.run(serve(config, self.stdout.write))
        except OSError as exc:  # the port is taken, the host does not resolve, ...
            raise CommandError(f"cannot serve on {config.host}:{config.port}: {exc}") from exc
