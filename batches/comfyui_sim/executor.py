"""The one executor thread: PromptExecutor.execute and main.prompt_worker from ComfyUI v0.3.64.

Message order per prompt, as ComfyUI sends it:
  status (put) / status (taken off the queue) / execution_start / execution_cached /
  per executed node: progress_state(running), executing, [progress_state + progress per step],
  [executed], progress_state(finished) / execution_success | execution_error | execution_interrupted /
  history stored, status / executing {node: null}.
Execution events go only to the prompt's client_id socket; `progress`, `progress_state` and
`execution_interrupted` go to every socket when the prompt has no client_id (ComfyUI's sid=None).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Protocol

from .config import MODEL_WEIGHTS_GB, SimConfig, vram_needed_gb
from .files import Folders
from .graph import DependencyCycleError, ExecutionList, get_input_info, is_link, signatures
from .nodes import Catalog, NodeDef, SimModel
from .previews import preview_jpeg
from .prompt_queue import ExecutionStatus, PromptQueue
from .validation import full_type_name

log = logging.getLogger("batches.comfyui_sim")

OOM_TIPS = ("This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you might "
            "have accidentally set the batch_size to a large number.")


class InterruptProcessingException(Exception):
    """comfy.model_management.InterruptProcessingException: raised at a node start or sampler step."""


class OutOfMemoryError(RuntimeError):
    """Stands for torch.OutOfMemoryError, so execution_error reports exception_type 'torch.OutOfMemoryError'."""


OutOfMemoryError.__module__ = "torch"
OutOfMemoryError.__qualname__ = "OutOfMemoryError"


class MessageSink(Protocol):
    client_id: str | None
    last_node_id: str | None

    def send_sync(self, event: str, data: dict, sid: str | None = None) -> None: ...

    def send_preview(self, image: bytes, metadata: dict, sid: str | None = None) -> None: ...


@dataclass
class Stats:
    """Counters behind the simulator-only GET /sim/stats (benchmarks read them, clients never do)."""

    busy_seconds: float = 0.0
    executed: int = 0
    first_start: float | None = None
    last_end: float | None = None
    checkpoint_loads: int = 0

    def as_dict(self) -> dict:
        return {"busy_seconds": self.busy_seconds, "executed": self.executed, "first_start": self.first_start,
                "last_end": self.last_end, "checkpoint_loads": self.checkpoint_loads}


class ProgressRegistry:
    """comfy_execution/progress.py with its WebUIProgressHandler: one progress_state per change."""

    def __init__(self, prompt_id: str, server: MessageSink) -> None:
        self.prompt_id = prompt_id
        self.server = server
        self.nodes: dict[str, dict[str, Any]] = {}

    def _send(self) -> None:
        active = {node_id: {"value": s["value"], "max": s["max"], "state": s["state"], "node_id": node_id,
                            "prompt_id": self.prompt_id, "display_node_id": node_id, "parent_node_id": None,
                            "real_node_id": node_id}
                  for node_id, s in self.nodes.items() if s["state"] != "pending"}
        self.server.send_sync("progress_state", {"prompt_id": self.prompt_id, "nodes": active}, self.server.client_id)

    def start(self, node_id: str) -> None:
        self.nodes[node_id] = {"state": "running", "value": 0.0, "max": 1.0}
        self._send()

    def update(self, node_id: str, value: float, max_value: float) -> None:
        self.nodes[node_id] = {"state": "running", "value": value, "max": max_value}
        self._send()

    def finish(self, node_id: str) -> None:
        entry = self.nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})
        entry["state"], entry["value"] = "finished", entry["max"]
        self._send()


class NodeContext:
    """What a running node can do: spend simulated time, report steps, load models, ask for VRAM."""

    def __init__(self, executor: "PromptExecutor", prompt_id: str, node_id: str, progress: ProgressRegistry) -> None:
        self.executor = executor
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.progress = progress
        self.output_dir = executor.folders.output
        self.temp_dir = executor.folders.temp

    def load_model(self, model: SimModel) -> None:
        if self.executor.loaded_checkpoint != model.ckpt_name:
            time.sleep(self.executor.config.model_load_ms / 1000.0)
            self.executor.loaded_checkpoint = model.ckpt_name
            self.executor.stats.checkpoint_loads += 1

    def allocate(self, batch_size: int) -> None:
        needed = vram_needed_gb(batch_size)
        if needed > self.executor.config.vram_gb - self.executor.vram_others_gb:
            # With cudaMallocAsync (ComfyUI's default on CUDA) torch reports just this text.
            raise OutOfMemoryError("Allocation on device ")
        # Held while the sampler runs (sample_steps lets go): /system_stats shows it as used.
        self.executor.sampling_bytes = int((needed - MODEL_WEIGHTS_GB) * 1024**3)

    def sample_steps(self, total: int) -> None:
        try:
            for step in range(total):
                time.sleep(self.executor.config.step_ms / 1000.0)
                self.executor.progress_hook(self.prompt_id, self.node_id, step + 1, total, self.progress)
        finally:
            self.executor.sampling_bytes = 0


def format_value(x: Any) -> Any:
    if x is None or isinstance(x, (int, float, bool, str)):
        return x
    return str(x)


class PromptExecutor:
    def __init__(self, server: MessageSink, config: SimConfig, folders: Folders, registry: dict[str, NodeDef],
                 catalog: Catalog, stats: Stats) -> None:
        self.server = server
        self.config = config
        self.folders = folders
        self.registry = registry
        self.catalog = catalog
        self.stats = stats
        self.interrupted = threading.Event()  # nodes.interrupt_processing()
        self.loaded_checkpoint: str | None = None
        self.history_result: dict = {}
        self.vram_others_gb = config.vram_used_gb  # GB other programs hold (POST /sim/vram)
        self.sampling_bytes = 0  # the running sampler's activations
        self.reset()

    def reset(self) -> None:
        """POST /free {"free_memory": true}: forget every cached node output."""
        self.outputs_cache: dict[str, tuple] = {}
        self.ui_cache: dict[str, dict] = {}
        self.status_messages: list[tuple[str, dict]] = []
        self.success = True

    def unload_models(self) -> None:
        self.loaded_checkpoint = None

    def vram_used_bytes(self) -> int:
        """What this ComfyUI holds: the loaded checkpoint's weights, plus a running sampler's batch."""
        return (int(MODEL_WEIGHTS_GB * 1024**3) if self.loaded_checkpoint else 0) + self.sampling_bytes

    def vram_free_bytes(self, used: int | None = None) -> int:
        """/system_stats' vram_free: the total less what other programs and this ComfyUI hold
        (`used`: a vram_used_bytes() read once, so one answer's figures agree while a sampler
        starts or stops in the executor's thread)."""
        total = self.config.vram_bytes
        used = self.vram_used_bytes() if used is None else used
        return max(0, total - int(self.vram_others_gb * 1024**3) - used)

    def add_message(self, event: str, data: dict, broadcast: bool) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.status_messages.append((event, data))
        if self.server.client_id is not None or broadcast:
            self.server.send_sync(event, data, self.server.client_id)

    def progress_hook(self, prompt_id: str, node_id: str, value: int, total: int, progress: ProgressRegistry) -> None:
        """main.hijack_progress: the interrupt check comes first, so an interrupted step sends no progress."""
        if self.interrupted.is_set():
            raise InterruptProcessingException()
        progress.update(node_id, value, total)
        self.server.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id},
                              self.server.client_id)
        if self.config.preview_method != "none":
            # latent_preview: one JPEG per step, after the progress message, to the prompt's client.
            self.server.send_preview(preview_jpeg(value, total),
                                     {"node_id": node_id, "prompt_id": prompt_id, "display_node_id": node_id,
                                      "parent_node_id": None, "real_node_id": node_id, "image_type": "image/jpeg"},
                                     self.server.client_id)

    def handle_execution_error(self, prompt_id: str, prompt: dict, current_outputs: list[str], executed: list[str],
                               error: dict, ex: Exception) -> None:
        node_id = error["node_id"]
        mes = {"prompt_id": prompt_id, "node_id": node_id, "node_type": prompt[node_id]["class_type"],
               "executed": list(executed)}
        if isinstance(ex, InterruptProcessingException):
            self.add_message("execution_interrupted", mes, broadcast=True)
            return
        mes.update(exception_message=error["exception_message"], exception_type=error["exception_type"],
                   traceback=error["traceback"], current_inputs=error["current_inputs"],
                   current_outputs=list(current_outputs))
        self.add_message("execution_error", mes, broadcast=False)

    def execute(self, prompt: dict, prompt_id: str, extra_data: dict, execute_outputs: list[str]) -> None:
        self.interrupted.clear()  # an interrupt sent while idle must not hit this prompt
        self.server.client_id = extra_data.get("client_id") if "client_id" in extra_data else None
        self.status_messages = []
        self.add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)

        sigs = signatures(prompt, self.registry)
        # The classic cache keeps only what the current prompt uses (BasicCache.clean_unused).
        used = set(sigs.values())
        self.outputs_cache = {k: v for k, v in self.outputs_cache.items() if k in used}
        self.ui_cache = {k: v for k, v in self.ui_cache.items() if k in used}
        cached_nodes = [node_id for node_id in prompt if sigs[node_id] in self.outputs_cache]
        self.add_message("execution_cached", {"nodes": cached_nodes, "prompt_id": prompt_id}, broadcast=False)

        progress = ProgressRegistry(prompt_id, self.server)
        executed: list[str] = []
        results: dict[str, tuple] = {}
        execution_list = ExecutionList(prompt, self.registry, self.catalog,
                                       lambda node_id: sigs.get(node_id) in self.outputs_cache)
        current_outputs = list(prompt.keys())
        for node_id in execute_outputs:
            execution_list.add_node(node_id)

        while not execution_list.is_empty():
            try:
                node_id = execution_list.stage()
            except DependencyCycleError as ex:
                blamed = next(iter(execution_list.pending))
                self.handle_execution_error(prompt_id, prompt, current_outputs, executed, {
                    "node_id": blamed, "exception_message": str(ex), "exception_type": "graph.DependencyCycleError",
                    "traceback": [], "current_inputs": []}, ex)
                break
            error, ex = self._execute_node(prompt, prompt_id, node_id, sigs, extra_data, executed, results,
                                           progress)
            self.success = error is None
            if error is not None:
                self.handle_execution_error(prompt_id, prompt, current_outputs, executed, error, ex)
                break
            execution_list.complete(node_id)
        else:
            self.add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)

        ui_outputs, meta_outputs = {}, {}
        for node_id in prompt:
            ui_info = self.ui_cache.get(sigs[node_id])
            if ui_info is not None:
                ui_outputs[node_id] = ui_info["output"]
                meta_outputs[node_id] = ui_info["meta"]
        self.history_result = {"outputs": ui_outputs, "meta": meta_outputs}
        self.server.last_node_id = None

    def _gather_inputs(self, node: dict, node_def: NodeDef, node_id: str, prompt: dict, extra_data: dict,
                       results: dict[str, tuple], sigs: dict[str, str]) -> dict[str, Any]:
        class_inputs = node_def.input_types(self.catalog)
        values: dict[str, Any] = {}
        for name, value in node.get("inputs", {}).items():
            _, category, _ = get_input_info(class_inputs, name)
            if category is None:
                continue  # undeclared inputs are ignored, as ComfyUI does for literals
            if is_link(value):
                # Upstream outputs come from this run, or from the cache when that node did not run.
                upstream = results[value[0]] if value[0] in results else self.outputs_cache[sigs[value[0]]]
                values[name] = upstream[value[1]]
            else:
                values[name] = value
        for name, kind in class_inputs.get("hidden", {}).items():
            if kind == "PROMPT":
                values[name] = prompt
            elif kind == "EXTRA_PNGINFO":
                values[name] = extra_data.get("extra_pnginfo", None)
            elif kind == "UNIQUE_ID":
                values[name] = node_id
        return values

    def _execute_node(self, prompt: dict, prompt_id: str, node_id: str, sigs: dict[str, str], extra_data: dict,
                      executed: list[str], results: dict[str, tuple],
                      progress: ProgressRegistry) -> tuple[dict | None, Exception | None]:
        sig = sigs[node_id]
        node = prompt[node_id]
        node_def = self.registry[node["class_type"]]
        client_id = self.server.client_id
        if sig in self.outputs_cache:
            # Only a cached *output* node gets here: `executed` repeats its old file list.
            if client_id is not None:
                cached_ui = self.ui_cache.get(sig) or {}
                self.server.send_sync("executed", {"node": node_id, "display_node": node_id,
                                                   "output": cached_ui.get("output", None), "prompt_id": prompt_id},
                                      client_id)
            progress.finish(node_id)
            results[node_id] = self.outputs_cache[sig]
            return None, None

        input_data: dict[str, Any] | None = None
        try:
            progress.start(node_id)
            input_data = self._gather_inputs(node, node_def, node_id, prompt, extra_data, results, sigs)
            if client_id is not None:
                self.server.last_node_id = node_id
                self.server.send_sync("executing", {"node": node_id, "display_node": node_id,
                                                    "prompt_id": prompt_id}, client_id)
            if self.interrupted.is_set():  # nodes.before_node_execution()
                raise InterruptProcessingException()
            if not node_def.is_sampler:
                time.sleep(self.config.node_ms / 1000.0)  # no progress callback: not interruptible
            result = node_def.run(NodeContext(self, prompt_id, node_id, progress), **input_data)
            if result.ui:
                meta = {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
                self.ui_cache[sig] = {"meta": meta, "output": result.ui}
                if client_id is not None:
                    self.server.send_sync("executed", {"node": node_id, "display_node": node_id,
                                                       "output": result.ui, "prompt_id": prompt_id}, client_id)
            self.outputs_cache[sig] = result.outputs
            results[node_id] = result.outputs
        except InterruptProcessingException as iex:
            log.info("Processing interrupted")
            return {"node_id": node_id}, iex
        except Exception as ex:
            typ, _, tb = sys.exc_info()
            tips = ""
            if isinstance(ex, OutOfMemoryError):
                tips = OOM_TIPS
                log.error("Got an OOM, unloading all loaded models.")
                self.unload_models()
            else:
                log.error("!!! Exception during processing !!! %s", ex)
            formatted = {name: [format_value(v)] for name, v in (input_data or {}).items()}
            return {"node_id": node_id, "exception_message": "{}\n{}".format(ex, tips),
                    "exception_type": full_type_name(typ), "traceback": traceback.format_tb(tb),
                    "current_inputs": formatted}, ex
        progress.finish(node_id)
        executed.append(node_id)
        return None, None


def prompt_worker(queue: PromptQueue, server: Any, executor: PromptExecutor, stop: threading.Event) -> None:
    """main.prompt_worker: one prompt at a time, history stored before the final `executing` null."""
    while not stop.is_set():
        queue_item = queue.get(timeout=1.0)
        if queue_item is not None:
            item, item_id = queue_item
            prompt_id = item[1]
            server.last_prompt_id = prompt_id
            started = time.time()
            t0 = time.perf_counter()
            if executor.stats.first_start is None:
                executor.stats.first_start = started
            try:
                executor.execute(item[2], prompt_id, item[3], item[4])
            except Exception:  # a simulator bug must not kill the only worker thread
                log.exception("simulator failed while executing %s", prompt_id)
                executor.success = False
                executor.history_result = {"outputs": {}, "meta": {}}
            executor.stats.busy_seconds += time.perf_counter() - t0
            executor.stats.executed += 1
            executor.stats.last_end = time.time()
            queue.task_done(item_id, executor.history_result,
                            ExecutionStatus("success" if executor.success else "error", executor.success,
                                            executor.status_messages))
            if server.client_id is not None:
                server.send_sync("executing", {"node": None, "prompt_id": prompt_id}, server.client_id)

        flags = queue.get_flags()
        free_memory = flags.get("free_memory", False)
        if flags.get("unload_models", free_memory):
            executor.unload_models()
        if free_memory:
            executor.reset()


def start_worker(queue: PromptQueue, server: Any, executor: PromptExecutor) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=prompt_worker, args=(queue, server, executor, stop), name="prompt_worker",
                              daemon=True)
    thread.start()
    return thread, stop
