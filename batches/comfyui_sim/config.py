"""The simulator's knobs, and the fake GPU memory model that decides when a KSampler runs out of memory."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CHECKPOINTS = ("sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors", "pixel_art_xl.safetensors")
DEFAULT_LORAS = ("pixel_art_lora.safetensors", "pixel-art-xl.safetensors")

# VRAM per batch size, from the project's measurements on the DGX Spark (SDXL, 1024x1024):
# batch 1 ~10 GB, batch 4 ~22 GB, batch 8 ~38 GB. Those three points lie on one line,
# 6 GB of weights plus 4 GB per image, so the line interpolates and extrapolates them exactly.
MODEL_WEIGHTS_GB = 6.0
PER_IMAGE_GB = 4.0


def vram_needed_gb(batch_size: int) -> float:
    """GB a KSampler needs for a batch (resolution is deliberately ignored: the table is per batch)."""
    return MODEL_WEIGHTS_GB + PER_IMAGE_GB * batch_size


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8188
    step_ms: float = 50.0  # wall time of one sampler step
    output_directory: Path = field(default_factory=lambda: Path("outputs/comfyui_sim").resolve())
    checkpoints: tuple[str, ...] = DEFAULT_CHECKPOINTS
    loras: tuple[str, ...] = DEFAULT_LORAS
    vram_gb: float = 119.0  # fake device total reported in /system_stats, and the OOM limit
    # --vram-used-gb: GB other programs hold on the device (POST /sim/vram changes it live); it is
    # missing from /system_stats' vram_free and from what a KSampler may allocate.
    vram_used_gb: float = 0.0
    model_load_ms: float = 0.0  # paid when a sampler runs a checkpoint other than the loaded one
    node_ms: float = 0.0  # wall time of every non-sampler node (VAEDecode, SaveImage, loaders, ...)
    # --preview-method: "none" (ComfyUI's default) sends no previews; anything else sends a small
    # JPEG binary frame after every sampler step, as latent2rgb/taesd previews do.
    preview_method: str = "none"

    @property
    def vram_bytes(self) -> int:
        return int(self.vram_gb * 1024**3)


def split_names(value: str) -> tuple[str, ...]:
    """Parse a comma list flag; blanks are dropped so "" means an empty model folder."""
    return tuple(part.strip() for part in value.split(",") if part.strip())
