"""Load ComfyUI API-format workflows and inject job parameters into them.

Users drop their own graphs into `workflows/`, so node ids mean nothing: every parameter is placed
by following links from the output node back to the sampler, its text encoders, its latent and
its checkpoint loader. A parameter the graph has no node for is an error, never a silent no-op.
"""
from __future__ import annotations

import copy
import difflib
import json
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from batches.profiles import Profile

SAMPLER_CLASSES = {"KSampler": "seed", "KSamplerAdvanced": "noise_seed"}  # class -> its seed input
TEXT_INPUTS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeSDXL": ("text_g", "text_l"),
               "CLIPTextEncodeSDXLRefiner": ("text",)}
LATENT_CLASSES = ("EmptyLatentImage", "EmptySD3LatentImage")
CHECKPOINT_CLASSES = ("CheckpointLoaderSimple", "CheckpointLoader")
OUTPUT_CLASSES = ("SaveImage", "PreviewImage", "SaveAnimatedWEBP", "SaveAnimatedPNG")
UI_EXPORT_HINT = "this is a UI-format workflow; in ComfyUI use 'Export (API)' and save that file instead"


class WorkflowError(ValueError):
    """A workflow file or a parameter cannot be used. `problems` holds every reason found."""

    def __init__(self, problems: list[str], *, source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{source or 'the workflow'} has {len(problems)} problems:\n" + "\n".join(
                f"- {p}" for p in problems)
        super().__init__(message)


@dataclass(frozen=True)
class GenerationParams:
    """What a job asks of a workflow. None leaves the workflow's own value in place."""

    positive: str | None = None
    negative: str | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    denoise: float | None = None
    width: int | None = None
    height: int | None = None
    batch_size: int | None = None
    checkpoint: str | None = None
    lora: str | None = None
    lora_strength_model: float | None = None
    lora_strength_clip: float | None = None
    filename_prefix: str | None = None

    @classmethod
    def from_profile(cls, profile: Profile, **overrides: Any) -> GenerationParams:
        base = {"batch_size": profile.batch_size, "steps": profile.steps, "cfg": profile.cfg,
                "sampler": profile.sampler, "scheduler": profile.scheduler,
                "width": profile.width, "height": profile.height}
        return cls(**{**base, **overrides})


PARAMETERS = tuple(f.name for f in fields(GenerationParams))
_SAMPLER_INPUTS = {"steps": "steps", "cfg": "cfg", "sampler": "sampler_name", "scheduler": "scheduler",
                   "denoise": "denoise"}
_LORA_PARAMS = ("lora", "lora_strength_model", "lora_strength_clip")
_LORA_INPUTS = {"lora": "lora_name", "lora_strength_model": "strength_model", "lora_strength_clip": "strength_clip"}

# (kind, low, high): ComfyUI's own input limits, so a bad value is caught at submission.
_VALUE_RULES: dict[str, tuple[str, float | None, float | None]] = {
    "positive": ("text", None, None), "negative": ("text", None, None),
    "seed": ("int", 0, 2**64 - 1), "steps": ("int", 1, 10000), "cfg": ("number", 0.0, 100.0),
    "sampler": ("name", None, None), "scheduler": ("name", None, None), "denoise": ("number", 0.0, 1.0),
    "width": ("int", 16, 16384), "height": ("int", 16, 16384), "batch_size": ("int", 1, 4096),
    "checkpoint": ("name", None, None), "lora": ("name", None, None),
    "lora_strength_model": ("number", -100.0, 100.0), "lora_strength_clip": ("number", -100.0, 100.0),
    "filename_prefix": ("name", None, None),
}


@dataclass(frozen=True)
class Workflow:
    name: str  # "batch_optimized"
    path: Path
    source: str  # "workflows/batch_optimized.json", used in every message
    graph: dict[str, Any]  # never mutated: inject() returns a copy

    def inject(self, params: GenerationParams | dict[str, Any]) -> dict[str, Any]:
        return inject(self.graph, params, source=self.source)

    def check(self, params: GenerationParams | dict[str, Any]) -> list[str]:
        return check_injectable(self.graph, params, source=self.source)

    def describe(self) -> dict[str, Any]:
        return describe(self.graph, source=self.source)


# --- loading -------------------------------------------------------------------------------


def _workflows_dir(directory: Path | None) -> Path:
    return Path(directory if directory is not None else settings.WORKFLOWS_DIR).resolve()


def list_workflows(directory: Path | None = None) -> list[str]:
    """Names (without .json) of the workflows in the workflows folder, sorted."""
    base = _workflows_dir(directory)
    if not base.is_dir():
        return []
    return sorted(p.stem for p in base.glob("*.json") if p.is_file() and not p.name.startswith("."))


def load_workflow(name_or_path: str | Path, *, directory: Path | None = None) -> Workflow:
    """Load `name` (".json" optional) from the workflows folder and check it is an API-format graph."""
    base = _workflows_dir(directory)
    raw = Path(name_or_path)
    if not str(name_or_path).strip():
        raise WorkflowError([f"no workflow name given: choose one of {', '.join(list_workflows(base)) or '(none)'}"])
    if raw.suffix != ".json":
        raw = raw.with_name(raw.name + ".json")
    path = (base / raw).resolve()
    # A name comes from a form or the CLI; never let it read files outside the workflows folder.
    if not path.is_relative_to(base):
        raise WorkflowError([f"workflow {str(name_or_path)!r} is outside the workflows folder {base}: "
                             f"copy it into {base.name}/ and use its name"])
    source = f"{base.name}/{path.relative_to(base).as_posix()}"
    if not path.is_file():
        known = ", ".join(list_workflows(base)) or "(none)"
        raise WorkflowError([f"{source} does not exist: choose one of {known}, or add the file"], source=source)
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WorkflowError([f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
                             "fix it, or export the workflow again from ComfyUI with 'Export (API)'"],
                            source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError([f"{source} cannot be read ({exc}): check the file"], source=source) from None
    problems = _structure_problems(graph, source)
    if problems:
        raise WorkflowError(problems, source=source)
    return Workflow(name=path.relative_to(base).with_suffix("").as_posix(), path=path, source=source, graph=graph)


# --- graph structure -----------------------------------------------------------------------


def _is_link(value: Any) -> bool:
    # API format: ["node_id", output_index]. Literal lists are wrapped as {"__value__": [...]}.
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def _structure_problems(graph: Any, source: str) -> list[str]:
    """Why `graph` is not a usable API-format prompt (empty when it is)."""
    reexport = "export it again from ComfyUI with 'Export (API)'"
    if not isinstance(graph, dict):
        return [f"{source} is not an API-format graph (its top level is a {type(graph).__name__}, not an "
                f"object keyed by node id): {reexport}"]
    if isinstance(graph.get("nodes"), list) or isinstance(graph.get("links"), list):
        return [f"{source}: {UI_EXPORT_HINT}"]
    problems = []
    for node_id, node in graph.items():
        if not isinstance(node, dict):
            problems.append(f"{source}: node '{node_id}' is not an object: {reexport}")
        elif not isinstance(node.get("class_type"), str) or not node["class_type"]:
            problems.append(f"{source}: node '{node_id}' has no class_type, so this is not an API-format "
                            f"graph: {reexport}")
        elif not isinstance(node.get("inputs", {}), dict):
            problems.append(f"{source}: node '{node_id}' ({node['class_type']}) has inputs that are not an "
                            f"object: {reexport}")
        else:
            for name, value in node.get("inputs", {}).items():
                if _is_link(value) and (value[0] not in graph or value[1] < 0):
                    problems.append(f"{source}: node '{node_id}' ({node['class_type']}) input '{name}' links to "
                                    f"node '{value[0]}', which is not in the graph: fix the link or {reexport}")
    if not problems and not any(n["class_type"] in OUTPUT_CLASSES for n in graph.values()):
        problems.append(f"{source} has no output node (SaveImage or PreviewImage), so ComfyUI would refuse it "
                        "('Prompt has no outputs'): add a SaveImage node fed by a VAEDecode")
    return problems


def _inputs(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    return graph[node_id].get("inputs", {})


def _cls(graph: dict[str, Any], node_id: str) -> str:
    return graph[node_id]["class_type"]


def _link(graph: dict[str, Any], node_id: str, name: str) -> tuple[str, int] | None:
    value = _inputs(graph, node_id).get(name)
    return (value[0], value[1]) if _is_link(value) else None


@dataclass
class _Plan:
    """Where each parameter goes in one graph, or why it cannot go anywhere."""

    targets: dict[str, list[tuple[str, str]]]  # parameter -> [(node id, input name)]
    missing: dict[str, str]  # parameter -> the full error message
    checkpoint_id: str | None = None
    insert_lora: bool = False  # no LoraLoader on the model path: one is added when a LoRA is asked for


def _find_samplers(graph: dict[str, Any]) -> list[str]:
    """The nearest sampler upstream of each output node (not past it: a hires-fix first pass is not it)."""
    found: list[str] = []
    for out_id in (i for i, n in graph.items() if n["class_type"] in OUTPUT_CLASSES):
        queue, seen = deque([out_id]), {out_id}
        while queue:
            node_id = queue.popleft()
            if _cls(graph, node_id) in SAMPLER_CLASSES:
                if node_id not in found:
                    found.append(node_id)
                continue
            for value in _inputs(graph, node_id).values():
                if _is_link(value) and value[0] not in seen:
                    seen.add(value[0])
                    queue.append(value[0])
    return found


def _trace_text(graph: dict[str, Any], link: tuple[str, int] | None) -> list[tuple[str, str]]:
    """Follow a conditioning link back to its text encoder, through pass-through nodes."""
    seen: set[str] = set()
    while link and link[0] not in seen:
        node_id, index = link
        seen.add(node_id)
        cls, inputs = _cls(graph, node_id), _inputs(graph, node_id)
        if cls in TEXT_INPUTS:
            return [(node_id, name) for name in TEXT_INPUTS[cls]]
        if cls == "ConditioningZeroOut":
            return []  # its text never reaches the sampler: setting it would be a silent no-op
        if "positive" in inputs and "negative" in inputs:
            # ControlNetApplyAdvanced and friends: output 0 carries positive, output 1 negative.
            link = _link(graph, node_id, ("positive", "negative")[index]) if index in (0, 1) else None
        else:
            names = sorted(n for n in inputs if n.startswith("conditioning") and _is_link(inputs[n]))
            link = _link(graph, node_id, names[0]) if names else None
    return []


def _plan(graph: dict[str, Any], source: str) -> _Plan:
    plan = _Plan(targets={}, missing={})

    def cannot(params: tuple[str, ...] | list[str], why: str, fix: str) -> None:
        for p in params:
            plan.missing[p] = f"{source} {why}, so '{p}' cannot be set: {fix.format(p=p)}"

    saves = [i for i, n in graph.items() if n["class_type"] == "SaveImage"]
    if saves:
        plan.targets["filename_prefix"] = [(i, "filename_prefix") for i in saves]
    else:
        cannot(["filename_prefix"], "has no SaveImage node", "add one or leave {p} empty")

    sampler_params = ["seed", *_SAMPLER_INPUTS, "positive", "negative", "width", "height", "batch_size",
                      "checkpoint", *_LORA_PARAMS]
    samplers = _find_samplers(graph)
    if len(samplers) != 1:
        why = (f"has more than one sampler feeding its outputs (nodes {', '.join(samplers)})" if samplers else
               "has no KSampler or KSamplerAdvanced feeding its output node")
        cannot(sampler_params, why, "use a workflow with exactly one sampler before its SaveImage, or leave {p} empty")
        return plan
    sampler = samplers[0]
    sampler_cls = _cls(graph, sampler)
    plan.targets["seed"] = [(sampler, SAMPLER_CLASSES[sampler_cls])]
    for param, name in _SAMPLER_INPUTS.items():
        plan.targets[param] = [(sampler, name)]
    if sampler_cls == "KSamplerAdvanced":
        del plan.targets["denoise"]
        cannot(["denoise"], f"uses a KSamplerAdvanced (node '{sampler}'), which has no denoise input",
               "use a KSampler or leave {p} empty")

    texts = {role: _trace_text(graph, _link(graph, sampler, role)) for role in ("positive", "negative")}
    shared = {n for n, _ in texts["positive"]} & {n for n, _ in texts["negative"]}
    for role, targets in texts.items():
        if shared:
            cannot([role], f"feeds the same text encoder (node '{min(shared)}') to positive and negative",
                   "give each its own CLIPTextEncode or leave {p} empty")
        elif targets:
            plan.targets[role] = targets
        else:
            cannot([role], f"has no CLIPTextEncode linked to the sampler's {role} input",
                   "wire one in or leave {p} empty")

    latent = _link(graph, sampler, "latent_image")
    if latent and _cls(graph, latent[0]) in LATENT_CLASSES:
        for param in ("width", "height", "batch_size"):
            plan.targets[param] = [(latent[0], param)]
    else:
        cannot(["width", "height", "batch_size"], "has no EmptyLatentImage node linked to the sampler's "
               "latent_image", "add one or leave {p} empty")

    # Walk the model input back to the checkpoint, noting any LoraLoader on the way.
    loras, seen, link = [], set(), _link(graph, sampler, "model")
    while link and link[0] not in seen and _cls(graph, link[0]) not in CHECKPOINT_CLASSES:
        seen.add(link[0])
        if _cls(graph, link[0]) == "LoraLoader":
            loras.append(link[0])
        link = _link(graph, link[0], "model")
    if link and _cls(graph, link[0]) in CHECKPOINT_CLASSES:
        plan.checkpoint_id = link[0]
        plan.targets["checkpoint"] = [(link[0], "ckpt_name")]
    else:
        cannot(["checkpoint"], "has no CheckpointLoaderSimple feeding the sampler's model input",
               "add one or leave {p} empty")
    if len(loras) == 1:
        for param in _LORA_PARAMS:
            plan.targets[param] = [(loras[0], _LORA_INPUTS[param])]
    elif loras:
        cannot(_LORA_PARAMS, f"has {len(loras)} LoraLoader nodes on the sampler's model path "
               f"({', '.join(loras)}), so it is unclear which one to change",
               "keep one LoraLoader in the workflow or leave {p} empty")
    elif plan.checkpoint_id:
        plan.insert_lora = True
    else:
        cannot(_LORA_PARAMS, "has no CheckpointLoaderSimple feeding the sampler's model input to add a "
               "LoraLoader after", "add one or leave {p} empty")
    return plan


# --- parameters ----------------------------------------------------------------------------


def _values(params: GenerationParams | dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """The requested (non-None) parameters, and what is wrong with their names or values."""
    if isinstance(params, GenerationParams):
        raw = {name: getattr(params, name) for name in PARAMETERS}
    else:
        raw = dict(params)
    problems, values = [], {}
    for name, value in raw.items():
        if name not in _VALUE_RULES:
            close = difflib.get_close_matches(str(name), PARAMETERS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known ones: {', '.join(PARAMETERS)}"
            problems.append(f"{source}: '{name}' is not a workflow parameter: {hint}")
            continue
        if value is None:
            continue
        kind, low, high = _VALUE_RULES[name]
        ok = {"text": isinstance(value, str),
              "name": isinstance(value, str) and bool(value.strip()),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
        if ok and low is not None and not low <= value <= high:
            ok = False
        if name == "filename_prefix" and ok and (value.startswith("/") or ".." in value.split("/")):
            ok = False  # ComfyUI refuses a prefix outside its output folder, but only at run time
        if not ok:
            want = {"text": "text", "name": "a non-empty name", "int": "a whole number",
                    "number": "a number"}[kind]
            if low is not None:
                want += f" from {low:g} to {high:g}"
            if name == "filename_prefix":
                want += " that stays inside ComfyUI's output folder (no leading '/' or '..')"
            problems.append(f"{source}: '{name}' must be {want}, got {value!r}: correct it or leave {name} empty")
        else:
            values[name] = float(value) if kind == "number" else value
    return values, problems


def check_injectable(graph: Any, params: GenerationParams | dict[str, Any], *, source: str) -> list[str]:
    """Every reason `params` cannot be injected into `graph` (empty when they can)."""
    problems = _structure_problems(graph, source)
    if problems:
        return problems
    values, problems = _values(params, source)
    plan = _plan(graph, source)
    for name in values:
        if name in plan.missing:
            problems.append(plan.missing[name])
    if plan.insert_lora and "lora" not in values:
        for name in ("lora_strength_model", "lora_strength_clip"):
            if name in values:
                problems.append(f"{source} has no LoraLoader, so '{name}' cannot be set without a LoRA: "
                                f"choose a lora too, or leave {name} empty")
    return problems


def inject(workflow_graph: dict[str, Any], params: GenerationParams | dict[str, Any], *,
           source: str) -> dict[str, Any]:
    """Return a copy of `workflow_graph` with `params` set; WorkflowError lists every problem."""
    problems = check_injectable(workflow_graph, params, source=source)
    if problems:
        raise WorkflowError(problems, source=source)
    values, _ = _values(params, source)
    graph = copy.deepcopy(workflow_graph)
    plan = _plan(graph, source)
    if plan.insert_lora and "lora" in values:
        lora_id = _insert_lora(graph, plan.checkpoint_id)
        for param in _LORA_PARAMS:
            plan.targets[param] = [(lora_id, _LORA_INPUTS[param])]
    for name, value in values.items():
        # Replaces a link too (a seed fed by a primitive node, say): the job's value wins.
        for node_id, input_name in plan.targets[name]:
            graph[node_id].setdefault("inputs", {})[input_name] = value
    return graph


def _insert_lora(graph: dict[str, Any], ckpt_id: str) -> str:
    """Put a LoraLoader between the checkpoint and every consumer of its MODEL and CLIP outputs."""
    numbers = [int(i) for i in graph if i.isdigit()]
    number = max(numbers, default=0) + 1
    while str(number) in graph:
        number += 1
    lora_id = str(number)
    for node in graph.values():
        for name, value in node.get("inputs", {}).items():
            if _is_link(value) and value[0] == ckpt_id and value[1] in (0, 1):
                node["inputs"][name] = [lora_id, value[1]]
    # Strengths default to ComfyUI's own LoraLoader defaults; inject() overwrites them when given.
    graph[lora_id] = {"class_type": "LoraLoader",
                      "inputs": {"lora_name": "", "strength_model": 1.0, "strength_clip": 1.0,
                                 "model": [ckpt_id, 0], "clip": [ckpt_id, 1]},
                      "_meta": {"title": "Load LoRA (added by DGX Pixels)"}}
    return lora_id


def describe(graph: Any, *, source: str = "workflow") -> dict[str, Any]:
    """The parameters `graph` can take, each with its current value (None if linked or not there yet)."""
    problems = _structure_problems(graph, source)
    if problems:
        raise WorkflowError(problems, source=source)
    plan = _plan(graph, source)
    result: dict[str, Any] = {}
    for name in PARAMETERS:
        if name in plan.targets:
            node_id, input_name = plan.targets[name][0]
            value = _inputs(graph, node_id).get(input_name)
            result[name] = None if _is_link(value) else value
        elif plan.insert_lora and name in _LORA_PARAMS:
            result[name] = None
    return result
