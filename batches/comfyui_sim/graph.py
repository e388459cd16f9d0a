"""Graph helpers: links, input lookup, cache signatures and the execution order.

Ports of comfy_execution/graph_utils.py (is_link), comfy_execution/graph.py (get_input_info,
TopologicalSort/ExecutionList with ux_friendly_pick_node) and comfy_execution/caching.py
(CacheKeySetInputSignature), reduced to what the simulated nodes need. The order matters to
clients: it decides the sequence of `executing` events.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from .nodes import Catalog, NodeDef


def is_link(obj: Any) -> bool:
    return (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], str)
            and isinstance(obj[1], (int, float)) and not isinstance(obj[1], bool))


def get_input_info(class_inputs: dict, input_name: str) -> tuple[Any, str | None, dict | None]:
    """(input_type, category, extra_info) of one input, or (None, None, None) when undeclared."""
    for category in ("required", "optional", "hidden"):
        if input_name in class_inputs.get(category, {}):
            info = class_inputs[category][input_name]
            if isinstance(info, str):  # hidden inputs are declared as bare strings ("PROMPT")
                return info, category, {}
            return info[0], category, (info[1] if len(info) > 1 else {})
    return None, None, None


def signatures(prompt: dict, registry: dict[str, NodeDef]) -> dict[str, str]:
    """A cache key per node: its class and inputs, with links replaced by the upstream node's key.

    Node ids, `_meta` and hidden inputs (the PNG metadata) are not part of the key, exactly as in
    CacheKeySetInputSignature, so resubmitting the same graph under other ids is a full cache hit.
    """
    keys: dict[str, str] = {}

    def key_of(node_id: str, visiting: frozenset[str]) -> str:
        if node_id in keys:
            return keys[node_id]
        node = prompt.get(node_id)
        if not isinstance(node, dict) or node.get("class_type") not in registry or node_id in visiting:
            return f"uncacheable:{node_id}"  # ComfyUI signs a missing node with NaN, which never matches
        parts: list[Any] = [node["class_type"]]
        inputs = node.get("inputs", {})
        for name in sorted(inputs):
            value = inputs[name]
            if is_link(value):
                parts.append([name, "ANCESTOR", key_of(value[0], visiting | {node_id}), value[1]])
            else:
                parts.append([name, value])
        keys[node_id] = hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()
        return keys[node_id]

    for node_id in prompt:
        key_of(node_id, frozenset())
    return keys


class DependencyCycleError(Exception):
    pass


class ExecutionList:
    """Which node runs next: ComfyUI's TopologicalSort plus its ux_friendly_pick_node heuristic.

    Cached upstream nodes are never added, which is why a partially cached graph only reports
    `executing` for the nodes that really run.
    """

    def __init__(self, prompt: dict, registry: dict[str, NodeDef], catalog: Catalog,
                 is_cached: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.registry = registry
        self.catalog = catalog
        self.is_cached = is_cached
        self.pending: dict[str, bool] = {}  # insertion-ordered, like pendingNodes
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, dict[Any, bool]]] = {}

    def _is_output(self, node_id: str) -> bool:
        return self.registry[self.prompt[node_id]["class_type"]].output_node

    def add_node(self, node_unique_id: str) -> None:
        node_ids = [node_unique_id]
        links: list[tuple[str, Any, str]] = []
        while node_ids:
            unique_id = node_ids.pop()
            if unique_id in self.pending:
                continue
            self.pending[unique_id] = True
            self.block_count[unique_id] = 0
            self.blocking[unique_id] = {}
            node = self.prompt[unique_id]
            class_inputs = self.registry[node["class_type"]].input_types(self.catalog)
            for input_name, value in node.get("inputs", {}).items():
                if not is_link(value) or get_input_info(class_inputs, input_name)[1] is None:
                    continue
                from_node_id, from_socket = value
                if not self.is_cached(from_node_id):
                    node_ids.append(from_node_id)
                links.append((from_node_id, from_socket, unique_id))
        for link in links:
            self._add_strong_link(*link)

    def _add_strong_link(self, from_node_id: str, from_socket: Any, to_node_id: str) -> None:
        if self.is_cached(from_node_id):
            return
        self.add_node(from_node_id)
        if to_node_id not in self.blocking[from_node_id]:
            self.blocking[from_node_id][to_node_id] = {}
            self.block_count[to_node_id] += 1
        self.blocking[from_node_id][to_node_id][from_socket] = True

    def is_empty(self) -> bool:
        return not self.pending

    def stage(self) -> str:
        ready = [node_id for node_id in self.pending if self.block_count[node_id] == 0]
        if not ready:
            raise DependencyCycleError("Dependency cycle detected")
        for node_id in ready:  # an output node first: its result shows up soonest
            if self._is_output(node_id):
                return node_id
        for node_id in ready:  # the VAEDecode -> preview case
            if any(self._is_output(blocked) for blocked in self.blocking[node_id]):
                return node_id
        for node_id in ready:  # the VAELoader -> VAEDecode -> preview case
            for blocked in self.blocking[node_id]:
                if any(self._is_output(b) for b in self.blocking[blocked]):
                    return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for blocked in self.blocking[node_id]:
            self.block_count[blocked] -= 1
        del self.blocking[node_id]
