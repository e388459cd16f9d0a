"""Batch size "auto": each unit of an auto job runs at the largest batch size the free VRAM allows.

A job submitted with batch size "auto" is planned at the largest size (8; `Job.batch_auto` is
set). The GPU worker decides each unit's size when it claims the unit, before building its graph
(`decide`): it reads ComfyUI's GET /system_stats and takes the largest of the sizes in the
profiles file's VRAM table (1, 4, 8), no larger than the unit, whose figure plus a margin fits in
what ComfyUI can have:

    gb_by_batch_size[size] + DGX_VRAM_MARGIN_GB  <=  vram_free + what ComfyUI itself holds

`devices[0].vram_free` (bytes) is what nobody holds (ComfyUI adds torch's reserved-but-idle
memory to it). What ComfyUI holds itself, torch_vram_total - torch_vram_free (its loaded weights,
and a running sampler's activations), is added back: the table's figures ("GB used while
sampling", 10/22/38) already include the weights, and the unit claimed ahead is decided while
our own previous unit is still sampling, which must not shrink it. On `--cpu` (type "cpu") those
torch figures are system RAM, so nothing is added back there.

The margin (DGX_VRAM_MARGIN_GB, default 4 GB) is the table's cost of one more image,
(38 - 10) / (8 - 1): it covers measurement rounding, fragmentation and resolutions above 1024.
The file's safe_limit_gb (60 of 119 usable) is headroom for a machine of our own, not a figure of
free memory, so it is not used here. With the seed's table: 8 needs 42 GB, 4 needs 26, 1 needs
14; a GB10 whose other programs leave 30 GB free (36 with our 6 GB of weights) runs batch 4, one
with 15 GB free (21) batch 1. When not even batch 1 fits, batch 1 runs anyway (an out-of-memory
error then fails it, as it would any unit).

The decision is made at claim time: the worker claims the next unit while the current one runs
(to keep ComfyUI one prompt ahead), so that unit's size is fixed then, from the VRAM of that
moment. VRAM unknown (ComfyUI does not report it, or the call fails): the profile's batch size.
A unit larger than the chosen size is cut into pieces (recording.split_unit, as after an
out-of-memory error) that run next; units still planned at 8 run at 8 again once VRAM is free.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

log = logging.getLogger("batches.auto_batch")

GB = 1024**3


@dataclass(frozen=True)
class Choice:
    size: int  # the batch size to run
    vram_free: int | None  # bytes free for ComfyUI (Vram.for_comfyui; None: unknown)
    vram_total: int | None
    reason: str  # one line for the logs and the split unit's note


def vram_table() -> dict[int, float]:
    from batches.profiles import ProfileError, load_profiles

    try:
        return dict(load_profiles().vram_gb_by_batch)
    except ProfileError:
        return {1: 10.0, 4: 22.0, 8: 38.0}


def needed_gb(size: int, table: dict[int, float]) -> float:
    """GB a batch of `size` needs: the table's figure, else the next larger size's, else a linear
    extrapolation from the two largest entries."""
    if size in table:
        return table[size]
    larger = [s for s in sorted(table) if s > size]
    if larger:
        return table[larger[0]]
    sizes = sorted(table)
    if len(sizes) < 2:
        return table[sizes[-1]] * size / sizes[-1]
    a, b = sizes[-2], sizes[-1]
    return table[b] + (table[b] - table[a]) / (b - a) * (size - b)


def choose(*, unit_size: int, free_gb: float | None, fallback: int, table: dict[int, float],
           margin_gb: float) -> int:
    """The batch size for a unit of `unit_size` images when ComfyUI can have `free_gb` (None: unknown)."""
    if free_gb is None:
        return max(1, min(fallback, unit_size))
    candidates = sorted({s for s in table if s < unit_size} | {unit_size}, reverse=True)
    for size in candidates:
        if needed_gb(size, table) + margin_gb <= free_gb:
            return size
    return min(candidates)


@dataclass(frozen=True)
class Vram:
    total: int  # bytes, devices[0].vram_total
    free: int  # bytes, devices[0].vram_free
    held: int  # bytes ComfyUI holds itself (0 when it does not say, or on the CPU)

    @property
    def for_comfyui(self) -> int:
        """Bytes ComfyUI could use for a prompt: free, plus what it holds itself. This is the figure
        recorded on units and in image metadata as vram_free / vram_free_gb: unlike the raw
        vram_free it does not drop while our own batch is sampling."""
        return self.free + self.held

    @property
    def for_comfyui_gb(self) -> float:
        return self.for_comfyui / GB


def read_vram(client) -> Vram | None:
    """ComfyUI's first device from GET /system_stats, or None when it does not say."""
    try:
        devices = client.system_stats().get("devices") or []
        device = devices[0]
        total, free = int(device["vram_total"]), int(device["vram_free"])
    except Exception as exc:  # unreachable, an old ComfyUI, no devices: the profile's size
        log.debug("VRAM unknown: %s", exc)
        return None
    if total <= 0 or not 0 <= free <= total:
        return None
    held = 0
    try:
        if str(device.get("type", "")).lower() != "cpu":
            torch_total, torch_free = int(device["torch_vram_total"]), int(device["torch_vram_free"])
            if 0 <= torch_free <= torch_total < total:
                held = min(torch_total - torch_free, total - free)
    except (KeyError, TypeError, ValueError):
        held = 0
    return Vram(total=total, free=free, held=held)


def profile_batch_size(profile: str, default: int) -> int:
    from batches.profiles import ProfileError, load_profiles

    try:
        prof = load_profiles().profiles.get(profile)
    except ProfileError:
        prof = None
    return prof.batch_size if prof is not None else default


def decide(unit, client) -> Choice:
    """Choose the size for `unit` (an auto job's) from what ComfyUI reports now."""
    table = vram_table()
    margin = float(getattr(settings, "VRAM_MARGIN_GB", 4.0))
    vram = read_vram(client)
    fallback = profile_batch_size(unit.job.profile, unit.batch_size)
    if vram is None:
        size = choose(unit_size=unit.batch_size, free_gb=None, fallback=fallback, table=table, margin_gb=margin)
        return Choice(size, None, None, f"batch size auto: VRAM unknown, the profile's batch size {size}")
    size = choose(unit_size=unit.batch_size, free_gb=vram.for_comfyui_gb, fallback=fallback, table=table,
                  margin_gb=margin)
    return Choice(size, vram.for_comfyui, vram.total,
                  f"batch size auto chose {size} at {vram.for_comfyui_gb:.1f} GB free "
                  f"(ComfyUI reported {vram.free / GB:.1f} GB free and holds {vram.held / GB:.1f}; "
                  f"{margin:g} GB margin)")


def note(batch_auto: bool, chosen: int | None, vram_free: int | None) -> str:
    """'auto (chose 4 at 30.1 GB free)' for a unit of an auto job that has been sized; '' otherwise."""
    if not batch_auto or chosen is None:
        return ""
    if vram_free is None:
        return f"auto (chose {chosen}, VRAM unknown)"
    return f"auto (chose {chosen} at {vram_free / GB:.1f} GB free)"
