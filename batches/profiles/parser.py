"""Reading and checking batch_profiles.yaml: every problem named by file, profile or section, key and line."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from .types import (
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

class _Mapping(dict):
    """A YAML mapping that remembers the line of each key, so problems can point at it."""

    lines: dict[Any, int]


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[Any, int, int]] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    result = _Mapping()
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, "found an unusable key", key_node.start_mark)
        line = key_node.start_mark.line + 1
        # PyYAML silently keeps the last of two equal keys; a hand-edited file deserves to hear.
        if key in result:
            loader.duplicates.append((key, result.lines[key], line))
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --- checking ------------------------------------------------------------------------------

_KIND_WORDS = {"int": "a whole number", "number": "a number", "str": "text", "bool": "true or false",
               "map": "a mapping (indented `key: value` lines)", "list": "a list like [a, b]"}


@dataclass(frozen=True)
class _Key:
    kind: str
    example: Any = None
    required: bool = True
    check: Callable[[Any], str | None] | None = None  # returns what is wrong and what to do


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be at least {low}, not {v}"


def _choice(known: frozenset[str], what: str) -> Callable[[Any], str | None]:
    def check(value: str) -> str | None:
        if value in known:
            return None
        return f"{value!r} is not a ComfyUI {what}{_did_you_mean(value, known)}"
    return check


def _formats(**fields: Any) -> Callable[[Any], str | None]:
    def check(pattern: str) -> str | None:
        try:
            pattern.format(**fields)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            names = ", ".join("{" + f + "}" for f in fields)
            return f"pattern {pattern!r} does not format ({exc!r}); it may use {names}"
        return None
    return check


def _did_you_mean(word: Any, known: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; choose one of: {', '.join(sorted(map(str, known)))}"


_SIZE = _Key("int", 1024, check=_at_least(16))
_PROFILE = {
    "title": _Key("str", "Speed", required=False),
    "description": _Key("str", "Maximum throughput"),
    "batch_size": _Key("int", 4),  # checked against the VRAM table below
    "steps": _Key("int", 20, check=_at_least(1)),
    "cfg": _Key("number", 8.0, check=lambda v: None if v > 0 else f"must be above 0, not {v}"),
    "sampler": _Key("str", "euler_ancestral", check=_choice(SAMPLERS, "sampler")),
    "scheduler": _Key("str", "karras", check=_choice(SCHEDULERS, "scheduler")),
    "width": _SIZE,
    "height": _SIZE,
    "expected_images_per_minute": _Key("number", 24, required=False, check=_at_least(0)),
    "finish": _Key("map", "{colors: 16, background: auto}", required=False),
}
_VRAM = {"model": _Key("str", "sd_xl_base_1.0.safetensors", required=False),
         "gb_by_batch_size": _Key("map", "{1: 10, 4: 22, 8: 38}"),
         "safe_limit_gb": _Key("number", 60, check=_at_least(1)),
         "usable_gb": _Key("number", 119, check=_at_least(1))}
_HARDWARE = {"name": _Key("str", "DGX-Spark GB10"), "gpus": _Key("int", 1, check=_at_least(1)),
             "unified_memory_gb": _Key("number", 128, check=_at_least(1)),
             "mixed_precision": _Key("bool", "true", required=False),
             "attention": _Key("str", "sdpa", required=False)}
_RANGES = {k: {"min": _Key(kind, low), "max": _Key(kind, high)}
           for k, kind, low, high in (("steps", "int", 1, 150), ("cfg", "number", 1.0, 30.0),
                                      ("width", "int", 256, 2048), ("height", "int", 256, 2048))}
_LIMITS = {"max_prompts_per_job": _Key("int", 1000, check=_at_least(1)),
           "max_count_per_prompt": _Key("int", 1000, check=_at_least(1)),
           "max_prompt_length": _Key("int", 2000, check=_at_least(1)),
           **{k: _Key("map", f"{{min: {r['min'].example}, max: {r['max'].example}}}") for k, r in _RANGES.items()},
           "size_multiple_of": _Key("int", 8, required=False, check=_at_least(1))}
_QUEUE = {"max_concurrent_batches": _Key("int", 1, check=_at_least(1)),
          "priorities": _Key("list", "[urgent, high, normal, low]"),
          "default_priority": _Key("str", "normal"), "default_profile": _Key("str", "balanced"),
          "limits": _Key("map", "...")}
_OUTPUT = {"base_dir": _Key("str", "outputs/batches"),
           "dir_pattern": _Key("str", '"batch_{created:%Y%m%d_%H%M%S}_{id}"',
                               check=_formats(created=datetime(2025, 1, 1), id="x")),
           "images_dir": _Key("str", "images"), "metadata_dir": _Key("str", "metadata"),
           "filename_pattern": _Key("str", '"sprite_{index:04d}_{seed}.png"', check=_formats(index=1, seed=42)),
           "metadata_filename_pattern": _Key("str", '"sprite_{index:04d}.json"', check=_formats(index=1)),
           "metadata_per_image": _Key("bool", "true"), "batch_info_file": _Key("str", "batch_info.json"),
           "save_workflow": _Key("bool", "true"), "cleanup_enabled": _Key("bool", "false"),
           "cleanup_after_days": _Key("int", 30, check=_at_least(1))}
_PERFORMANCE = {"min_images_per_minute": _Key("number", 20, check=_at_least(0)),
                "max_queue_latency_s": _Key("number", 1.0, check=_at_least(0)),
                "images_per_minute_by_batch_size": _Key("map", "{1: 20, 4: 24, 8: 32}"),
                "target_gpu_utilization_percent": _Key("number", 80, required=False)}
_TOP = ("profiles", "vram", "hardware", "queue", "output", "performance")


class _Checker:
    def __init__(self, display: str) -> None:
        self.display = display
        self.problems: list[str] = []

    def add(self, where: str, key: Any, text: str, mapping: Any = None, at: Any = None) -> None:
        """Record a problem; `at` is the key whose line to show in `mapping` (default: `key`)."""
        line = getattr(mapping, "lines", {}).get(key if at is None else at)
        at = f" (line {line})" if line else ""
        self.problems.append(f"{self.display}, {where}, key '{key}'{at}: {text}")

    def section(self, data: Any, where: str, spec: dict[str, _Key]) -> dict[str, Any] | None:
        """Check one mapping against its spec; return the typed values, or None if unusable."""
        if not isinstance(data, dict):
            self.problems.append(f"{self.display}, {where}: must be {_KIND_WORDS['map']}, "
                                 f"not {_describe(data)}: write its keys indented under it")
            return None
        values: dict[str, Any] = {}
        for key in data:
            if key not in spec:
                self.add(where, key, f"unknown key{_did_you_mean(key, spec)}", data)
        for key, rule in spec.items():
            if key not in data:
                if rule.required:
                    self.add(where, key, f"required key is missing: add a line like `{key}: {rule.example}`")
                continue
            value = _coerce(data[key], rule.kind)
            if value is None:
                self.add(where, key, f"expected {_KIND_WORDS[rule.kind]}, got {_describe(data[key])}: "
                                     f"write it like `{key}: {rule.example}`", data)
            elif rule.check and (wrong := rule.check(value)):
                self.add(where, key, wrong, data)
            else:
                values[key] = value
        return values

    def number_table(self, data: Any, where: str, key: str) -> dict[int, float]:
        """A `batch size: number` mapping such as the VRAM table."""
        table: dict[int, float] = {}
        for size, amount in (data or {}).items():
            if _coerce(size, "int") is None or size < 1:
                self.add(where, key, f"{size!r} is not a batch size: keys are whole numbers like 1, 4, 8",
                         data, at=size)
            elif _coerce(amount, "number") is None or amount < 0:
                self.add(where, key, f"batch size {size} has {_describe(amount)}: write a number like `{size}: 22`",
                         data, at=size)
            else:
                table[size] = float(amount)
        return table


def _coerce(value: Any, kind: str) -> Any:
    # bool is an int in Python, but `steps: yes` is a mistake, not 1.
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "number":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    types = {"str": str, "bool": bool, "map": dict, "list": list}[kind]
    if kind == "str" and isinstance(value, str) and not value.strip():
        return None
    return value if isinstance(value, types) else None


def _describe(value: Any) -> str:
    names = {str: "text", bool: "true/false", int: "a whole number", float: "a number", list: "a list",
             dict: "a mapping", _Mapping: "a mapping", type(None): "nothing"}
    if isinstance(value, str) and not value.strip():
        return "empty text"
    kind = names.get(type(value), type(value).__name__)
    return "nothing" if value is None else f"{value!r} ({kind})"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(path)


def _read(path: Path, display: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(display, [f"{display} does not exist: restore it from the repository "
                                     "or point the PROFILES_FILE setting at your profiles file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(display, [f"{display} cannot be read ({exc}): check its permissions and "
                                     "that it is saved as UTF-8"]) from None
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(display, [f"{display} is not valid YAML{at} ({problem}): check the indentation "
                                     "and quoting there (text with ':' or '{' needs quotes)"]) from None
    finally:
        loader.dispose()
    dupes = [f"{display}, key '{k}' (line {second}): written twice (also on line {first}); YAML keeps only "
             "the last one: delete one of them" for k, first, second in loader.duplicates]
    if dupes:
        raise ProfileError(display, dupes)
    return data


def _parse(path: Path) -> ProfileConfig:
    display = _display(path)
    data = _read(path, display)
    if not isinstance(data, dict):
        raise ProfileError(display, [f"{display}: the top level must be a mapping of sections "
                                     f"({', '.join(_TOP)}), not {_describe(data)}: see the shipped file"])
    c = _Checker(display)
    for key in data:
        if key not in _TOP:
            c.add("top level", key, f"unknown section{_did_you_mean(key, _TOP)}", data)
    for key in _TOP:
        if key not in data:
            c.add("top level", key, f"required section is missing: add a `{key}:` section")
    sec = {key: c.section(data[key], f"section '{key}'", spec) if key in data else None
           for key, spec in (("vram", _VRAM), ("hardware", _HARDWARE), ("queue", _QUEUE),
                             ("output", _OUTPUT), ("performance", _PERFORMANCE))}
    vram, queue, output, perf = sec["vram"] or {}, sec["queue"] or {}, sec["output"] or {}, sec["performance"] or {}

    where = "section 'vram'"
    vram_gb = c.number_table(vram.get("gb_by_batch_size"), where, "gb_by_batch_size")
    for size in SEED_BATCH_SIZES if "gb_by_batch_size" in vram else ():
        if size not in vram["gb_by_batch_size"]:
            c.add(where, "gb_by_batch_size", f"batch size {size} has no VRAM figure: add `{size}: <GB>` "
                  "(the seed's batch sizes 1, 4 and 8 are all used)", data["vram"])
    if {"safe_limit_gb", "usable_gb"} <= vram.keys() and vram["safe_limit_gb"] > vram["usable_gb"]:
        c.add(where, "safe_limit_gb", f"{vram['safe_limit_gb']:g} GB is above usable_gb "
              f"({vram['usable_gb']:g} GB): lower it", data["vram"])
    rates = c.number_table(perf.get("images_per_minute_by_batch_size"), "section 'performance'",
                           "images_per_minute_by_batch_size")

    limits = c.section(queue["limits"], "section 'queue.limits'", _LIMITS) if "limits" in queue else None
    ranges: dict[str, Range] = {}
    for key in _RANGES if limits else ():
        r = c.section(limits[key], f"section 'queue.limits.{key}'", _RANGES[key]) if key in limits else None
        if r and len(r) == 2 and r["min"] > r["max"]:
            c.add(f"section 'queue.limits.{key}'", "min", f"{r['min']:g} is above max {r['max']:g}: swap them",
                  limits[key])
        elif r and len(r) == 2:
            ranges[key] = Range(r["min"], r["max"])
    if "priorities" in queue and tuple(queue["priorities"]) != PRIORITIES:
        c.add("section 'queue'", "priorities", f"must be [{', '.join(PRIORITIES)}] (the queue's fixed levels), "
              f"not {queue['priorities']!r}: restore that list", data["queue"])
    if queue.get("default_priority", "normal") not in PRIORITIES:
        c.add("section 'queue'", "default_priority", f"{queue['default_priority']!r} is not a priority"
              f"{_did_you_mean(queue['default_priority'], PRIORITIES)}", data["queue"])

    profiles = (_profiles(c, data["profiles"], vram, vram_gb, limits or {}, ranges, rates)
                if "profiles" in data else {})
    # Checked against the names written, so a broken profile is not also called missing.
    named = data["profiles"] if isinstance(data.get("profiles"), dict) else {}
    if queue.get("default_profile") and named and queue["default_profile"] not in named:
        c.add("section 'queue'", "default_profile", f"{queue['default_profile']!r} is not a profile in this "
              f"file{_did_you_mean(queue['default_profile'], named)}", data["queue"])
    if c.problems:
        raise ProfileError(display, c.problems)

    # No problems: every section is present and complete from here on.
    base_dir = Path(output["base_dir"])
    limits = {k: v for k, v in limits.items() if k not in ranges}
    return ProfileConfig(
        path=path, profiles=profiles, vram_gb_by_batch=vram_gb, vram_model=vram.get("model", ""),
        safe_limit_gb=vram["safe_limit_gb"], usable_gb=vram["usable_gb"], hardware=Hardware(**sec["hardware"]),
        queue=QueueSettings(max_concurrent_batches=queue["max_concurrent_batches"], priorities=PRIORITIES,
                            default_priority=queue["default_priority"], default_profile=queue["default_profile"],
                            limits=QueueLimits(**limits, **ranges)),
        output=OutputSettings(**{**output, "base_dir": base_dir if base_dir.is_absolute()
                                 else Path(settings.BASE_DIR) / base_dir}),
        performance=Performance(**{**perf, "images_per_minute_by_batch_size": rates}),
    )


def _profiles(c: _Checker, data: Any, vram: dict[str, Any], vram_gb: dict[int, float], limits: dict[str, Any],
              ranges: dict[str, Range], rates: dict[int, float]) -> dict[str, Profile]:
    if not isinstance(data, dict):
        c.problems.append(f"{c.display}, section 'profiles': must be a mapping of profile names to settings, "
                          f"not {_describe(data)}: write each profile indented under `profiles:`")
        return {}
    for name in SEED_PROFILES:
        if name not in data:
            c.add("section 'profiles'", name, f"profile '{name}' is missing: all five seed profiles "
                  f"({', '.join(SEED_PROFILES)}) must be defined; copy another profile and adjust it")
    sizes = tuple(sorted(vram_gb)) or SEED_BATCH_SIZES
    multiple = limits.get("size_multiple_of", 8)
    profiles: dict[str, Profile] = {}
    for name, body in data.items():
        where = f"profile '{name}'"
        auto = isinstance(body, dict) and isinstance(body.get("batch_size"), str) and \
            body["batch_size"].strip().lower() == "auto"
        values = c.section(body, where, {**_PROFILE, "batch_size": _Key("str", "auto")} if auto else _PROFILE)
        if values is None:
            continue
        before = len(c.problems)
        if auto:  # the largest size allowed (used when VRAM is unknown); units are cut down per unit
            fitting = [s for s in sizes if vram_gb.get(s, 0) <= vram.get("safe_limit_gb", float("inf"))]
            values["batch_size"], values["batch_auto"] = (max(fitting) if fitting else min(sizes)), True
        size = values.get("batch_size")
        if size is not None and size not in sizes:
            c.add(where, "batch_size", f"{size} is not one of the batch sizes with a VRAM figure "
                  f"({', '.join(map(str, sizes))}): use one of them", body)
        elif size is not None and vram_gb.get(size, 0) > vram.get("safe_limit_gb", float("inf")):
            c.add(where, "batch_size", f"batch {size} needs {vram_gb[size]:g} GB, above safe_limit_gb "
                  f"({vram['safe_limit_gb']:g} GB): use a smaller batch size", body)
        for key, r in ranges.items():
            if key in values and values[key] not in r:
                c.add(where, key, f"{values[key]:g} is outside queue.limits.{key} ({r.min:g} to {r.max:g}): "
                      "change the value or widen the limit", body)
        for key in ("width", "height"):
            if key in values and values[key] % multiple:
                c.add(where, key, f"{values[key]} is not a multiple of {multiple}: use e.g. "
                      f"{values[key] // multiple * multiple or multiple}", body)
        if "finish" in values:
            values["finish"] = _finish(c, where, values["finish"], body)
        if len(c.problems) == before and all(k in values for k, r in _PROFILE.items() if r.required):
            values.setdefault("expected_images_per_minute", rates.get(size, 0.0))
            values.setdefault("title", str(name).replace("_", " ").title())
            profiles[name] = Profile(name=name, **values)
    return profiles


def _finish(c: _Checker, where: str, block: dict, body: Any) -> dict | None:
    """A profile's `finish:` block, checked by the same rules as a job's finishing flags."""
    from batches.sprites.plan import FinishError, from_profile

    try:
        return from_profile(block)
    except FinishError as exc:
        key = exc.field if exc.field in block else "finish"
        c.add(f"{where}, finish", key, str(exc), block if key in block else body, at=key if key in block else "finish")
        return None


# --- public API ----------------------------------------------------------------------------

# Keyed by resolved path; reused while the file's mtime and size are unchanged, so an edit is
# picked up on the next call without a restart. Replacing a dict entry is atomic under the GIL.
_cache: dict[Path, tuple[int, int, ProfileConfig]] = {}
