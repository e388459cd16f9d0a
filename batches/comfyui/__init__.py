"""ComfyUI client: HTTP routes, the /ws event stream, waiting for prompts, and its errors."""
from .client import ComfyUIClient
from .events import EventStream
from .types import Event, HistoryEntry, ImageRef, QueueState, Submitted
from .errors import (
    ComfyUIBadResponse,
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIInterrupted,
    ComfyUIPromptLost,
    ComfyUIRejected,
    ComfyUITimeout,
    ComfyUIUnreachable,
)

__all__ = [
    "ComfyUIBadResponse",
    "ComfyUIClient",
    "ComfyUIError",
    "ComfyUIExecutionError",
    "ComfyUIInterrupted",
    "ComfyUIPromptLost",
    "ComfyUIRejected",
    "ComfyUITimeout",
    "ComfyUIUnreachable",
    "Event",
    "EventStream",
    "HistoryEntry",
    "ImageRef",
    "QueueState",
    "Submitted",
]
