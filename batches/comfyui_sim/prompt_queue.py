"""The prompt queue and the in-memory history: a port of execution.PromptQueue (ComfyUI v0.3.64).

A heap of (number, prompt_id, prompt, extra_data, outputs_to_execute) items, so the lowest
number runs first and `front` (a negative number) jumps ahead. /queue shows the raw heap list,
which is why clients must sort pending items by number themselves.
"""
from __future__ import annotations

import copy
import heapq
import threading
from typing import Any, Callable, NamedTuple, Protocol

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

QueueItem = tuple  # (number, prompt_id, prompt, extra_data, outputs_to_execute)


class StatusSink(Protocol):
    def queue_updated(self) -> None: ...


class ExecutionStatus(NamedTuple):
    status_str: str  # 'success' | 'error'
    completed: bool
    messages: list


class PromptQueue:
    def __init__(self, server: StatusSink) -> None:
        self.server = server
        self.mutex = threading.RLock()
        self.not_empty = threading.Condition(self.mutex)
        self.task_counter = 0
        self.queue: list[QueueItem] = []
        self.currently_running: dict[int, QueueItem] = {}
        self.history: dict[str, dict] = {}
        self.flags: dict[str, Any] = {}

    def put(self, item: QueueItem) -> None:
        with self.mutex:
            heapq.heappush(self.queue, item)
            self.server.queue_updated()
            self.not_empty.notify()

    def get(self, timeout: float | None = None) -> tuple[QueueItem, int] | None:
        with self.not_empty:
            while len(self.queue) == 0:
                self.not_empty.wait(timeout=timeout)
                if timeout is not None and len(self.queue) == 0:
                    return None
            item = heapq.heappop(self.queue)
            i = self.task_counter
            self.currently_running[i] = copy.deepcopy(item)
            self.task_counter += 1
            self.server.queue_updated()
            return item, i

    def task_done(self, item_id: int, history_result: dict, status: ExecutionStatus | None) -> None:
        with self.mutex:
            prompt = self.currently_running.pop(item_id)
            if len(self.history) > MAXIMUM_HISTORY_SIZE:
                self.history.pop(next(iter(self.history)))
            status_dict = copy.deepcopy(status._asdict()) if status is not None else None
            for key in SENSITIVE_EXTRA_DATA_KEYS:
                prompt[3].pop(key, None)
            # Reusing a prompt_id overwrites the old entry (a dict keyed by id), as in ComfyUI.
            self.history[prompt[1]] = {"prompt": prompt, "outputs": {}, "status": status_dict}
            self.history[prompt[1]].update(history_result)
            self.server.queue_updated()

    def get_current_queue(self) -> tuple[list[QueueItem], list[QueueItem]]:
        with self.mutex:
            return list(self.currently_running.values()), copy.copy(self.queue)

    def get_tasks_remaining(self) -> int:
        with self.mutex:
            return len(self.queue) + len(self.currently_running)

    def is_running(self, prompt_id: str) -> bool:
        with self.mutex:
            return any(item[1] == prompt_id for item in self.currently_running.values())

    def wipe_queue(self) -> None:
        with self.mutex:
            self.queue = []
            self.server.queue_updated()

    def delete_queue_item(self, function: Callable[[QueueItem], bool]) -> bool:
        """Remove the first pending item that matches; the running one is never in self.queue."""
        with self.mutex:
            for x in range(len(self.queue)):
                if function(self.queue[x]):
                    if len(self.queue) == 1:
                        self.wipe_queue()
                    else:
                        self.queue.pop(x)
                        heapq.heapify(self.queue)
                    self.server.queue_updated()
                    return True
        return False

    def get_history(self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1) -> dict:
        with self.mutex:
            if prompt_id is None:
                out: dict[str, dict] = {}
                if offset < 0 and max_items is not None:
                    offset = len(self.history) - max_items
                for i, key in enumerate(self.history):
                    if i >= offset:
                        out[key] = self.history[key]
                        if max_items is not None and len(out) >= max_items:
                            break
                return copy.deepcopy(out)
            if prompt_id in self.history:
                return {prompt_id: copy.deepcopy(self.history[prompt_id])}
            return {}

    def wipe_history(self) -> None:
        with self.mutex:
            self.history = {}

    def delete_history_item(self, id_to_delete: str) -> None:
        with self.mutex:
            self.history.pop(id_to_delete, None)

    def set_flag(self, name: str, data: Any) -> None:
        with self.mutex:
            self.flags[name] = data
            self.not_empty.notify()

    def get_flags(self, reset: bool = True) -> dict[str, Any]:
        with self.mutex:
            if reset:
                ret, self.flags = self.flags, {}
                return ret
            return self.flags.copy()
