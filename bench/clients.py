"""The two baselines of figure 1 (and of figure 2's CPU cost): minimal ComfyUI clients, `requests` only.

* seed-style: what the original batch system did. Submit one prompt, poll `/history/{id}` once a
  second until it is there, download its images, write them, then submit the next.
* plain: queue every prompt into ComfyUI at once, then collect. ComfyUI is never idle while
  prompts remain, so this is the physical limit of the executor (and it has no priorities, no
  cancel, no record).

Both take ready-made API graphs (built by the benchmark from the same workflow and parameters
as DGX Pixels' units) and write each image to `out_dir`.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import requests


def _images(entry: dict) -> list[dict]:
    return [image for output in (entry.get("outputs") or {}).values() if isinstance(output, dict)
            for image in output.get("images") or [] if image.get("type") == "output"]


def _download_all(session: requests.Session, url: str, entry: dict, out_dir: Path, prefix: str) -> int:
    made = 0
    for i, image in enumerate(_images(entry)):
        params = {"filename": image["filename"], "subfolder": image.get("subfolder", ""), "type": image["type"]}
        response = session.get(url + "/view", params=params, timeout=30)
        response.raise_for_status()
        (out_dir / f"{prefix}_{i}.png").write_bytes(response.content)
        made += 1
    return made


def seed_style(url: str, graphs: list[dict], out_dir: Path, *, poll_seconds: float = 1.0) -> int:
    """One prompt at a time, polling /history once a second; returns the images written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    client_id = uuid.uuid4().hex
    made = 0
    for n, graph in enumerate(graphs):
        prompt_id = str(uuid.uuid4())
        session.post(url + "/prompt", json={"prompt": graph, "prompt_id": prompt_id, "client_id": client_id},
                     timeout=30).raise_for_status()
        while True:
            time.sleep(poll_seconds)
            history = session.get(f"{url}/history/{prompt_id}", timeout=30).json()
            if prompt_id in history:
                break
        made += _download_all(session, url, history[prompt_id], out_dir, f"seed_{n:04d}")
    return made


def plain(url: str, graphs: list[dict], out_dir: Path, *, poll_seconds: float = 0.1) -> int:
    """Queue everything at once, wait for the queue to empty, then collect; returns images written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    client_id = uuid.uuid4().hex
    ids = []
    for graph in graphs:
        prompt_id = str(uuid.uuid4())
        session.post(url + "/prompt", json={"prompt": graph, "prompt_id": prompt_id, "client_id": client_id},
                     timeout=30).raise_for_status()
        ids.append(prompt_id)
    while True:
        queue = session.get(url + "/queue", timeout=30).json()
        if not queue["queue_running"] and not queue["queue_pending"]:
            break
        time.sleep(poll_seconds)
    made = 0
    for n, prompt_id in enumerate(ids):
        history = session.get(f"{url}/history/{prompt_id}", timeout=30).json()
        made += _download_all(session, url, history[prompt_id], out_dir, f"plain_{n:04d}")
    return made


def graphs_like_units(owner, *, units: int, steps: int, size: int, batch_size: int = 1) -> list[dict]:
    """API graphs exactly as the worker would send them (same workflow, parameters, own seeds).

    Made by queueing a throwaway job through the real service, building each unit's graph with
    the worker's own code, and deleting the job again.
    """
    from batches.models import Job
    from batches.services.recording import build_graph

    from bench.common import submit_units

    job = submit_units(owner, units=units, steps=steps, size=size, batch_size=batch_size, name="graphs")
    graphs = [build_graph(unit) for unit in job.units.select_related("job").order_by("index")]
    Job.objects.filter(pk=job.pk).delete()
    return graphs
