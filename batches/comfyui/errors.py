"""Errors raised by the ComfyUI client.

Every error says whether trying again later can help (`retryable`), in the manner of healthchecks'
TransportError(permanent=...): the worker retries a unit on a retryable error and fails it otherwise.
"""
from __future__ import annotations


class ComfyUIError(Exception):
    """Base class. `retryable` is True when the same request may succeed later."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ComfyUIUnreachable(ComfyUIError):
    """Connection refused or reset, a timeout, or an HTTP 5xx: the server is down or struggling."""

    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class ComfyUIBadResponse(ComfyUIError):
    """An answer the client cannot use: an unexpected 4xx, a body that is not the documented shape,
    or a file that is not what its name says. Trying again does not change that."""

    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class ComfyUIRejected(ComfyUIError):
    """ComfyUI refused the prompt at validation (HTTP 400), or queued only part of it (a 200 whose
    node_errors is not empty). The graph is wrong; sending it again fails again."""

    retryable = False

    def __init__(self, error: dict | None, node_errors: dict | None, *, prompt_id: str | None = None):
        self.error = error or {}
        self.node_errors = node_errors or {}
        self.prompt_id = prompt_id
        super().__init__(describe_rejection(self.error, self.node_errors))


class ComfyUIExecutionError(ComfyUIError):
    """A node raised while the prompt ran (ComfyUI's `execution_error`)."""

    retryable = False

    def __init__(self, prompt_id: str, data: dict | None = None):
        data = data or {}
        self.prompt_id = prompt_id
        self.data = data
        self.node_id: str | None = data.get("node_id")
        self.node_type: str | None = data.get("node_type")
        self.exception_type: str = data.get("exception_type") or ""
        self.exception_message: str = data.get("exception_message") or ""
        first_line = self.exception_message.strip().splitlines()[0] if self.exception_message.strip() else ""
        where = f"node {self.node_id} ({self.node_type})" if self.node_id else "an unknown node"
        what = ": ".join(p for p in (self.exception_type, first_line) if p) or "no error details in history"
        super().__init__(f"prompt {prompt_id} failed in {where}: {what}")

    @property
    def is_out_of_memory(self) -> bool:
        # execution.py reports full_type_name(type(ex)): torch >= 2.5 raises torch.OutOfMemoryError
        # (torch.cuda.OutOfMemoryError is an alias whose __module__ is "torch"), older torch names it
        # torch.cuda.OutOfMemoryError; cudaMallocAsync failures can surface as a RuntimeError or
        # torch.AcceleratorError whose text says "out of memory" / "Allocation on device".
        if self.exception_type.endswith("OutOfMemoryError"):
            return True
        text = self.exception_message.lower()
        return "out of memory" in text or "allocation on device" in text


class ComfyUIInterrupted(ComfyUIError):
    """The prompt was interrupted (ComfyUI's `execution_interrupted`)."""

    retryable = False

    def __init__(self, prompt_id: str, data: dict | None = None):
        data = data or {}
        self.prompt_id = prompt_id
        self.data = data
        self.node_id: str | None = data.get("node_id")
        self.node_type: str | None = data.get("node_type")
        where = f" at node {self.node_id} ({self.node_type})" if self.node_id else ""
        super().__init__(f"prompt {prompt_id} was interrupted{where}")


class ComfyUIPromptLost(ComfyUIError):
    """The prompt is in neither /queue nor /history: ComfyUI restarted (history lives in memory only)
    or someone deleted it. Submitting it again can succeed."""

    retryable = True

    def __init__(self, prompt_id: str):
        self.prompt_id = prompt_id
        super().__init__(f"prompt {prompt_id} is in neither the queue nor the history of ComfyUI "
                         f"(restarted, or the prompt was deleted)")


class ComfyUITimeout(ComfyUIError):
    """wait_for ran past its deadline; the prompt may still be queued or running."""

    retryable = True

    def __init__(self, prompt_id: str, timeout: float):
        self.prompt_id = prompt_id
        self.timeout = timeout
        super().__init__(f"prompt {prompt_id} did not finish within {timeout:g}s")


def describe_node_error(node_id: str, node: dict, err: dict) -> str:
    """One line per validation error: "node 4 (CheckpointLoaderSimple): ckpt_name: 'x' not in [...]
    (value_not_in_list)"."""
    class_type = node.get("class_type") or "?"
    kind = err.get("type") or "error"
    message = err.get("message") or ""
    details = str(err.get("details") or "")
    input_name = (err.get("extra_info") or {}).get("input_name")
    if input_name and (details.startswith(f"{input_name}:") or details.startswith(f"{input_name},")):
        text = details  # ComfyUI already wrote "ckpt_name: 'x' not in [...]"
    elif input_name:
        # required_input_missing puts only the input name in details; say the message instead
        text = f"{input_name}: {details if details and details != input_name else message}"
    else:
        text = ": ".join(p for p in (message, details) if p)
    return f"node {node_id} ({class_type}): {text} ({kind})"


def describe_rejection(error: dict, node_errors: dict) -> str:
    lines = []
    for node_id, node in node_errors.items():
        node = node if isinstance(node, dict) else {}
        errs = node.get("errors") or [{}]
        lines.extend(describe_node_error(str(node_id), node, e if isinstance(e, dict) else {}) for e in errs)
    if not lines:
        message = error.get("message") or "prompt rejected"
        details = error.get("details") or ""
        kind = error.get("type")
        text = f"{message}: {details}" if details and details != message else message
        lines.append(text + (f" ({kind})" if kind else ""))
    return "ComfyUI rejected the prompt: " + "; ".join(lines)
