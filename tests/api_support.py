"""Shared by the API tests: one real daphne per test module on the test database, tokens, images."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image as PILImage

from batches.models import ApiToken, Image, Job
from batches.services.submission import job_submit
from tests.processes import free_port, start_daphne


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return "sqlite:///" + str(db["NAME"])
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Server:
    url: str
    output_root: Path
    comfyui_url: str


def start_api_server(tmp: Path, django_db_blocker, **env: str):
    """A daphne on the (session's) test database, its own OUTPUT_ROOT, a dead ComfyUI port."""
    with django_db_blocker.unblock():
        url = database_url()
    root = tmp / "outputs"
    root.mkdir(parents=True, exist_ok=True)
    comfyui = f"http://127.0.0.1:{free_port()}"
    proc, base = start_daphne(tmp, {"DATABASE_URL": url, "OUTPUT_ROOT": str(root), "COMFYUI_URL": comfyui,
                                    "GPU_NODE": "gpu-test", **env})
    return proc, Server(base, root, comfyui)


class Api:
    """requests with a Bearer token and the server's base URL: `api.get("/jobs/")`."""

    def __init__(self, server: Server, token: str | None):
        self.server = server
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        return f"{self.server.url}{path}" if path.startswith("/api/") else f"{self.server.url}/api/v1{path}"

    def get(self, path: str, **kw):
        return self.session.get(self.url(path), timeout=30, **kw)

    def post(self, path: str, body=None, **kw):
        if body is not None and "data" not in kw:
            kw["json"] = body
        return self.session.post(self.url(path), timeout=30, **kw)

    def request(self, method: str, path: str, **kw):
        return self.session.request(method, self.url(path), timeout=30, **kw)


def token_for(user) -> str:
    return ApiToken.issue(user, name="tests")[1]


def queue_job(owner, *, count: int = 4, **params) -> Job:
    base = {"count": count, "batch_size": 4, "steps": 4, "width": 64, "height": 64, "client": None, "wake": False}
    return job_submit(owner=owner, prompts=["pixel art slime"], **{**base, **params})


def make_images(job: Job, root: Path, n: int, *, sprite: bool = False) -> list[Image]:
    """`n` images of `job` with real PNG and metadata files under `root` (the daphne's OUTPUT_ROOT)."""
    folder = Path("batches") / f"job{job.pk}"
    (root / folder / "images").mkdir(parents=True, exist_ok=True)
    (root / folder / "metadata").mkdir(parents=True, exist_ok=True)
    units = list(job.units.order_by("index"))
    rows = []
    for i in range(n):
        seed = 1000 + i
        png = folder / "images" / f"sprite_{i + 1:04d}_{seed}.png"
        PILImage.new("RGB", (8, 8), (i * 20 % 255, 0, 0)).save(root / png)
        meta = folder / "metadata" / f"sprite_{i + 1:04d}.json"
        (root / meta).write_text(json.dumps({"seed": seed, "sequence": i + 1}))
        rows.append(Image(job=job, unit=units[min(i // 4, len(units) - 1)], sequence=i + 1, batch_index=i % 4,
                          prompt="pixel art slime", seed=seed, file_path=str(png), metadata_path=str(meta),
                          width=8, height=8, sprite_path=str(png) if sprite else ""))
    return Image.objects.bulk_create(rows)


def errors_of(response, status: int) -> dict:
    """The error shape every API error has; returns its `errors`."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    body = response.json()
    assert body["status"] == status and isinstance(body["errors"], dict) and body["errors"], body
    assert all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in body["errors"].values()), body
    return body["errors"]
