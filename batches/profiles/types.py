"""The profiles file as values: the seed's profiles, limits and settings, and ProfileError."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


SEED_PROFILES = ("speed", "balanced", "quality", "animation", "tileset")
SEED_BATCH_SIZES = (1, 4, 8)
PRIORITIES = ("urgent", "high", "normal", "low")

# ComfyUI's KSampler choices (comfy/samplers.py, v0.3.x). Checked here because a typo would
# otherwise pass every form and fail each job at ComfyUI with "value_not_in_list".
SAMPLERS = frozenset("""
    euler euler_cfg_pp euler_ancestral euler_ancestral_cfg_pp heun heunpp2 dpm_2 dpm_2_ancestral
    lms dpm_fast dpm_adaptive dpmpp_2s_ancestral dpmpp_2s_ancestral_cfg_pp dpmpp_sde dpmpp_sde_gpu
    dpmpp_2m dpmpp_2m_cfg_pp dpmpp_2m_sde dpmpp_2m_sde_gpu dpmpp_2m_sde_heun dpmpp_2m_sde_heun_gpu
    dpmpp_3m_sde dpmpp_3m_sde_gpu ddpm lcm ipndm ipndm_v deis res_multistep res_multistep_cfg_pp
    res_multistep_ancestral res_multistep_ancestral_cfg_pp gradient_estimation
    gradient_estimation_cfg_pp er_sde seeds_2 seeds_3 sa_solver sa_solver_pece ddim uni_pc uni_pc_bh2
""".split())
SCHEDULERS = frozenset(
    "simple sgm_uniform karras exponential ddim_uniform beta normal linear_quadratic kl_optimal".split()
)


class ProfileError(ValueError):
    """The profiles file is missing or wrong. `problems` lists each problem as a full sentence."""

    def __init__(self, display: str, problems: list[str]) -> None:
        self.file = display
        self.problems = list(problems)
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{display} has {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems)
        super().__init__(message)


@dataclass(frozen=True)
class Range:
    min: float
    max: float

    def __contains__(self, value: float) -> bool:
        return self.min <= value <= self.max


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    batch_size: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str
    width: int
    height: int
    expected_images_per_minute: float = 0.0  # from the performance table when not given
    title: str = ""  # display name; the profile's name, capitalised, when not given
    finish: dict | None = None  # the finishing plan of its jobs (batches.sprites.plan); None: no sprites
    # `batch_size: auto`: each unit runs at the largest size the free VRAM allows (services/auto_batch);
    # batch_size is then the largest size within safe_limit_gb, used when VRAM is unknown.
    batch_auto: bool = False


@dataclass(frozen=True)
class Hardware:
    name: str
    gpus: int
    unified_memory_gb: float
    mixed_precision: bool = True
    attention: str = ""


@dataclass(frozen=True)
class QueueLimits:
    max_prompts_per_job: int
    max_count_per_prompt: int
    max_prompt_length: int
    steps: Range
    cfg: Range
    width: Range
    height: Range
    size_multiple_of: int = 8


@dataclass(frozen=True)
class QueueSettings:
    max_concurrent_batches: int
    priorities: tuple[str, ...]
    default_priority: str
    default_profile: str
    limits: QueueLimits


@dataclass(frozen=True)
class OutputSettings:
    base_dir: Path  # absolute: a relative path in the file is taken from the project directory
    dir_pattern: str  # .format(created=datetime, id=...)
    images_dir: str
    metadata_dir: str
    filename_pattern: str  # .format(index=1, seed=42)
    metadata_filename_pattern: str  # .format(index=1)
    metadata_per_image: bool
    batch_info_file: str
    save_workflow: bool
    cleanup_enabled: bool
    cleanup_after_days: int


@dataclass(frozen=True)
class Performance:
    min_images_per_minute: float
    max_queue_latency_s: float
    images_per_minute_by_batch_size: dict[int, float]
    target_gpu_utilization_percent: float = 80.0


@dataclass(frozen=True)
class ProfileConfig:
    """Everything in the profiles file. Shared through a cache: treat the dicts as read-only."""

    path: Path
    profiles: dict[str, Profile]
    vram_gb_by_batch: dict[int, float]
    vram_model: str
    safe_limit_gb: float
    usable_gb: float
    hardware: Hardware
    queue: QueueSettings
    output: OutputSettings
    performance: Performance

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self.vram_gb_by_batch))

    @property
    def default_profile(self) -> str:
        return self.queue.default_profile

    @property
    def default_priority(self) -> str:
        return self.queue.default_priority


# --- YAML with line numbers ----------------------------------------------------------------
