"""Load and check `profiles/batch_profiles.yaml`: the seed's batch profiles, VRAM table and limits.

The file is edited by hand, so a load reports every problem at once, each naming the file, the
profile or section, the key and its line, and saying what to write instead.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .parser import _cache, _did_you_mean, _display, _parse
from .types import (  # noqa: F401  (the public names of batches.profiles)
    PRIORITIES,
    SAMPLERS,
    SCHEDULERS,
    SEED_BATCH_SIZES,
    SEED_PROFILES,
    Hardware,
    OutputSettings,
    Performance,
    Profile,
    ProfileConfig,
    ProfileError,
    QueueLimits,
    QueueSettings,
    Range,
)


def load_profiles(path: Path | None = None) -> ProfileConfig:
    """Load and check the profiles file (default `settings.PROFILES_FILE`); raise ProfileError."""
    path = Path(path if path is not None else settings.PROFILES_FILE)
    key = path.resolve()
    try:
        stat = key.stat()
    except OSError:
        _cache.pop(key, None)
        return _parse(path)  # raises the "does not exist" error
    cached = _cache.get(key)
    if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
        return cached[2]
    config = _parse(path)
    _cache[key] = (stat.st_mtime_ns, stat.st_size, config)
    return config


def get_profile(name: str, path: Path | None = None) -> Profile:
    """Return one profile by name; ProfileError (listing the choices) if there is none."""
    config = load_profiles(path)
    try:
        return config.profiles[name]
    except KeyError:
        display = _display(config.path)
        raise ProfileError(display, [f"{display} has no profile {name!r}{_did_you_mean(name, config.profiles)}"]) from None


__all__ = [
    "PRIORITIES", "SAMPLERS", "SCHEDULERS", "SEED_BATCH_SIZES", "SEED_PROFILES", "Hardware", "OutputSettings",
    "Performance", "Profile", "ProfileConfig", "ProfileError", "QueueLimits", "QueueSettings", "Range",
    "get_profile", "load_profiles",
]
