"""The shapes the OpenAPI schema documents. Requests are validated by batches.services.job_requests
(the same messages as the form, the CLI and ZeroMQ); these declarations only describe them.

Response schemas name the fields scripts rely on and allow the rest (`extra="allow"`), so the
documents stay the services' own (job_document, progress, queue_statistics) with one definition.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field

from batches.services import job_requests

PriorityName = Literal["urgent", "high", "normal", "low"]


class JobRequest(Schema):
    """A job request: the CLI's long flags in snake_case. Give `prompt` or `prompts`, not both.
    With `compare` it queues a comparison (one job per combination of the axes' values)."""

    model_config = ConfigDict(extra="forbid")

    prompt: Optional[str] = Field(None, description="One prompt text.")
    prompts: Optional[Union[list[str], str]] = Field(None, description="Several prompt texts.")
    count: Optional[int] = Field(None, description="Images per prompt (default 1).")
    batch_size: Optional[Union[int, Literal["auto"]]] = Field(
        None, description='Images per ComfyUI prompt: 1, 4 or 8, or "auto": per unit, the largest size the '
                          "GPU's free VRAM allows.")
    steps: Optional[int] = None
    cfg_scale: Optional[float] = None
    sampler: Optional[str] = None
    scheduler: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    seed: Optional[int] = Field(None, description="Base seed; empty: random seeds.")
    negative_prompt: Optional[str] = None
    model: Optional[str] = Field(None, description="Checkpoint file name.")
    lora: Optional[str] = None
    lora_strength: Optional[float] = None
    profile: Optional[str] = None
    workflow: Optional[str] = None
    priority: Optional[PriorityName] = None
    name: Optional[str] = None
    webhook_url: Optional[str] = None
    finish: Optional[Union[dict[str, Any], bool]] = Field(None, description="Sprite finishing settings, or false.")
    compare: Optional[Union[dict[str, list[Any]], list[str]]] = Field(
        None, description='Comparison axes: {"cfg": [5, 8]} or ["cfg=5,8"].')


assert set(JobRequest.model_fields) == set(job_requests.FIELDS), "JobRequest must list every request key"


def request_body_openapi() -> dict:
    """The job request body for the operation's openapi_extra (the view reads the body itself)."""
    schema = JobRequest.model_json_schema()
    schema.pop("$defs", None)
    example = {"prompt": "pixel art knight, side view", "count": 4, "batch_size": 4, "priority": "normal"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema,
                                                                               "example": example}}}}


class Errors(Schema):
    """Every error: problems by request key (`__all__` for the request as a whole), and the status."""

    errors: dict[str, list[str]]
    status: int


class Open(BaseModel):
    """A document that names some fields and keeps every other one (a plain pydantic model: Ninja's
    Schema reads objects by attribute and would drop the undeclared keys)."""

    model_config = ConfigDict(extra="allow")


class JobLinks(Open):
    self: str
    images: str


class JobDocument(Open):
    id: int
    status: str
    priority: str
    images_planned: int
    images_done: int
    images_failed: int
    links: JobLinks


class ComparisonDocument(Open):
    id: int
    kind: Optional[Literal["comparison"]] = None
    cells: list[dict[str, Any]]
    images_done: int
    images_planned: int
    done: bool


class Page(Open):
    count: int
    page: int
    page_size: int
    next: Optional[str]
    previous: Optional[str]


class JobPage(Page):
    items: list[JobDocument]


class Unit(Open):
    index: int
    status: str
    seed: int


class UnitList(Open):
    items: list[Unit]


class ImageUrls(BaseModel):
    png: str
    thumb: str
    sprite: Optional[str]
    metadata: str


class ImageDocument(Open):
    id: int
    job: int
    sequence: int
    seed: int
    prompt: str
    review: str
    sprite_state: str
    urls: ImageUrls


class ImagePage(Page):
    items: list[ImageDocument]


class Priority(Schema):
    model_config = ConfigDict(extra="forbid")
    priority: PriorityName


class ActionResult(Open):
    job: JobDocument


class QueueState(Schema):
    paused: bool


class Stats(Open):
    queue_size: int
    active_jobs: int


class NodeList(Open):
    items: list[dict[str, Any]]


ERRORS = {400: Errors, 401: Errors, 404: Errors, 429: Errors}
