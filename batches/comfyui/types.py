"""What ComfyUI answers, as small value objects: image references, queue state, history, events."""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ComfyUIBadResponse, ComfyUIExecutionError, ComfyUIInterrupted

@dataclass(frozen=True)
class ImageRef:
    filename: str
    subfolder: str
    type: str  # "output" (SaveImage) or "temp" (PreviewImage)


@dataclass
class Submitted:
    prompt_id: str
    number: float
    node_errors: dict


@dataclass
class QueueState:
    running: list[str]
    pending: list[str]  # run order: ComfyUI returns heap order, sorted here by (number, prompt_id)
    numbers: dict[str, float] = field(default_factory=dict)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending

    @property
    def remaining(self) -> int:
        return len(self.running) + len(self.pending)


@dataclass
class HistoryEntry:
    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    images: list[ImageRef]
    outputs: dict
    messages: list
    error: dict | None  # data of the execution_error / execution_interrupted message
    number: float | None = None

    def raise_for_status(self) -> None:
        if self.status == "interrupted":
            raise ComfyUIInterrupted(self.prompt_id, self.error)
        if self.status != "success":
            raise ComfyUIExecutionError(self.prompt_id, self.error)

    @classmethod
    def from_json(cls, prompt_id: str, entry: dict) -> "HistoryEntry":
        if not isinstance(entry, dict):
            raise ComfyUIBadResponse(f"history entry for {prompt_id} is not an object")
        outputs = entry.get("outputs") or {}
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        # Interrupt and failure both store status_str "error"; the last terminal message tells them apart.
        last_kind, last_data = None, None
        for message in messages:
            if isinstance(message, (list, tuple)) and len(message) == 2 and message[0] in (
                    "execution_error", "execution_interrupted"):
                last_kind, last_data = message[0], message[1]
        status_str = status.get("status_str")
        if status_str == "success" or (status_str is None and last_kind is None and status.get("completed", True)):
            kind = "success"
        elif last_kind == "execution_interrupted":
            kind = "interrupted"
        else:
            kind = "error"
        images = [
            ImageRef(str(image.get("filename", "")), str(image.get("subfolder") or ""), str(image.get("type")))
            for node_output in outputs.values() if isinstance(node_output, dict)
            for image in node_output.get("images") or [] if isinstance(image, dict) and image.get("type") == "output"
        ]
        prompt = entry.get("prompt")
        number = prompt[0] if isinstance(prompt, list) and prompt and isinstance(prompt[0], (int, float)) else None
        return cls(prompt_id, kind, images, outputs, messages, last_data if kind != "success" else None,
                   float(number) if number is not None else None)


@dataclass
class Event:
    type: str
    data: dict

    @property
    def prompt_id(self) -> str | None:
        value = self.data.get("prompt_id")
        return value if isinstance(value, str) else None

    @property
    def is_done_marker(self) -> bool:
        """`executing` with node null: the prompt is finished and its history is stored."""
        return self.type == "executing" and self.data.get("node") is None and self.prompt_id is not None
